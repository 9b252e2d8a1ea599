// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /v1/vms: the VMs' CRUD and their actions.  A VM is named by its name or
 * its uuid.  What it is comes from the inventory, how it runs from the
 * supervisor (pid, uptime, restarts).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"

static json_t *described(struct request *rq, json_t *vm)
{
	supervisor_describe(rq->d->sv, vm);
	return vm;
}

/*
 * Answers are cached per inventory generation (inventory_generation()):
 * the list with 100 VMs is some 6,000 JSON values, one VM a few dozen and
 * three queries, and most GETs find nothing changed since the last.  The
 * list has a slot of its own, single VMs share VM_CACHE_SLOTS by the hash
 * of the name asked for.
 */
static bool cache_get(struct answer_cache *c, const char *key, uint64_t gen, struct reply *rp)
{
	pthread_mutex_lock(&c->lock);
	if (c->text && c->generation == gen && !strcmp(c->key, key)) {
		rp->text = malloc(c->len);
		if (rp->text) {
			memcpy(rp->text, c->text, c->len);
			rp->text_len = c->len;
			rp->type = "application/json";
			rp->status = 200;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return rp->text != NULL;
}

/* The answer as text into rp (a newline after it, as every JSON answer),
 * and into the cache for generation gen. */
static void cache_put(struct answer_cache *c, const char *key, uint64_t gen, json_t *v,
		      struct reply *rp)
{
	char *text = json_dumps(v, JSON_COMPACT), *copy;
	size_t len;

	json_decref(v);
	if (!text)
		return reply_error(rp, 500, "out of memory");
	len = strlen(text);
	rp->text = realloc(text, len + 2);
	if (!rp->text) {
		free(text);
		return reply_error(rp, 500, "out of memory");
	}
	rp->text[len++] = '\n';
	rp->text[len] = 0;
	rp->text_len = len;
	rp->type = "application/json";
	rp->status = 200;
	if (strlen(key) >= sizeof(c->key))
		return;
	pthread_mutex_lock(&c->lock);
	if (gen >= c->generation && (copy = malloc(len))) {
		memcpy(copy, rp->text, len);
		free(c->text);
		c->text = copy;
		c->len = len;
		c->generation = gen;
		strcpy(c->key, key);
	}
	pthread_mutex_unlock(&c->lock);
}

static struct answer_cache *vm_slot(struct vsrvd *d, const char *name)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return &d->vm_one[h % VM_CACHE_SLOTS];
}

void api_vm_list(struct request *rq, struct reply *rp)
{
	uint64_t gen = inventory_generation(rq->d->inv);	/* before reading */
	json_t *list, *vm;
	size_t i;

	if (cache_get(&rq->d->vm_list, "", gen, rp))
		return;
	inventory_vm_list(rq->d->inv, &list);
	json_array_foreach(list, i, vm)
		described(rq, vm);
	cache_put(&rq->d->vm_list, "", gen, list, rp);
}

void api_vm_get(struct request *rq, struct reply *rp)
{
	uint64_t gen = inventory_generation(rq->d->inv);
	struct answer_cache *c = vm_slot(rq->d, rq->params[0]);
	struct vsrvd_err e = { 0 };
	json_t *vm;

	if (cache_get(c, rq->params[0], gen, rp))
		return;
	if (inventory_vm_get(rq->d->inv, rq->params[0], &vm, &e) < 0)
		return reply_err(rp, &e);
	cache_put(c, rq->params[0], gen, described(rq, vm), rp);
}

void api_vm_create(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *spec = request_spec(rq, rp, SPEC_VM_CREATE), *vm;

	if (!spec)
		return;
	if (inventory_vm_create(rq->d->inv, spec, &vm, &e) < 0) {
		json_decref(spec);
		return reply_err(rp, &e);
	}
	events_log(rq->d->ev, "vm.created", json_string_value(json_object_get(spec, "name")),
		   "created");
	json_decref(spec);
	reply_json(rp, 201, described(rq, vm));
}

void api_vm_update(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *spec = request_spec(rq, rp, SPEC_VM_UPDATE), *vm, *v;
	const char *key, *name;

	if (!spec)
		return;
	if (inventory_vm_get(rq->d->inv, rq->params[0], &vm, &e) < 0)
		goto fail;
	name = json_string_value(json_object_get(vm, "name"));
	/* A saved VM's state holds its machine as it was: a restore onto
	 * another would be refused. */
	if (supervisor_is_active(rq->d->sv, name) ||
	    !strcmp(json_string_value(json_object_get(vm, "state")), "saved")) {
		json_object_foreach(spec, key, v) {
			if (!spec_field_live(key)) {
				vsrvd_fail(&e, 409, -EBUSY, supervisor_is_active(rq->d->sv, name) ?
					   "vm '%s': %s cannot change while it runs (power it off first)" :
					   "vm '%s': %s cannot change while it is saved (its state needs the VM as it was; power-off discards the state)",
					   name, key);
				json_decref(vm);
				goto fail;
			}
		}
	}
	/* A running VM's limits go into its cgroup first: a value the cgroup
	 * refuses is not stored. */
	if (supervisor_set_limits(rq->d->sv, name, vm, spec, &e) < 0) {
		json_decref(vm);
		goto fail;
	}
	json_decref(vm);
	if (inventory_vm_update(rq->d->inv, rq->params[0], spec, &vm, &e) < 0)
		goto fail;
	if (json_object_get(spec, "name"))
		supervisor_forget(rq->d->sv, rq->params[0]);
	events_log(rq->d->ev, "vm.updated", json_string_value(json_object_get(vm, "name")),
		   "updated");
	json_decref(spec);
	return reply_json(rp, 200, described(rq, vm));
fail:
	json_decref(spec);
	reply_err(rp, &e);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* The VM's folder and what it holds (logs, config, pid files, its saved
 * state and checkpoints), depth first, following no link. */
static void remove_dir(const char *dir)
{
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

void api_vm_delete(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	char dir[4096], name[65];
	json_t *vm;

	if (inventory_vm_get(rq->d->inv, rq->params[0], &vm, &e) < 0)
		return reply_err(rp, &e);
	snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(vm, "name")));
	snprintf(dir, sizeof(dir), "%s/vms/%lld", rq->d->cfg.state_dir,
		 (long long)json_integer_value(json_object_get(vm, "id")));
	json_decref(vm);
	if (supervisor_is_active(rq->d->sv, name))
		return reply_error(rp, 409, "vm '%s': running (power it off first)", name);
	if (inventory_vm_delete(rq->d->inv, name, &e) < 0)
		return reply_err(rp, &e);
	supervisor_forget(rq->d->sv, name);
	remove_dir(dir);
	events_log(rq->d->ev, "vm.deleted", name, "deleted");
	reply_json(rp, 200, json_pack("{s:s}", "deleted", name));
}

/* 409 if a disk job works on one of the VM's disks (api-jobs.c). */
static int disks_free(struct request *rq, struct vsrvd_err *e)
{
	json_t *vm, *disk;
	size_t i;
	int r = 0;

	if (inventory_vm_get(rq->d->inv, rq->params[0], &vm, e) < 0)
		return -ENOENT;
	json_array_foreach(json_object_get(vm, "disks"), i, disk)
		if (r == 0)
			r = jobs_busy(rq->d->jobs, json_string_value(json_object_get(disk, "path")), e);
	json_decref(vm);
	return r;
}

void api_vm_action(struct request *rq, struct reply *rp)
{
	const char *action = rq->action, *name = rq->params[0];
	struct vsrvd_err e = { 0 };
	json_t *args = NULL, *result = NULL;
	int r;

	/* shutdown may say its timeout, checkpoint must say its name; the
	 * rest take no body, and one is a client's mistake worth saying. */
	if (!strcmp(action, "checkpoint") || (!strcmp(action, "shutdown") && rq->len)) {
		args = request_spec(rq, rp, !strcmp(action, "shutdown") ? SPEC_SHUTDOWN :
				    SPEC_CHECKPOINT);
		if (!args)
			return;
	} else if (rq->len) {
		return reply_error(rp, 400, "%s: takes no body", action);
	}
	if (!strcmp(action, "start") || !strcmp(action, "restore"))
		r = disks_free(rq, &e) ?:
		    supervisor_start(rq->d->sv, name, !strcmp(action, "restore"), &e);
	else if (!strcmp(action, "power-off"))
		r = supervisor_power_off(rq->d->sv, name, &e);
	else
		r = supervisor_control(rq->d->sv, name, action, args, &result, &e);
	json_decref(args);
	if (r < 0)
		return reply_err(rp, &e);
	if (result)
		return reply_json(rp, 201, result);
	api_vm_get(rq, rp);
}

/* GET /v1/vms/{name}/checkpoints: the VMM's tree, or its folder's when
 * the VM is off. */
void api_vm_checkpoints(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *list = NULL;

	if (supervisor_control(rq->d->sv, rq->params[0], "checkpoints", NULL, &list, &e) < 0)
		return reply_err(rp, &e);
	reply_json(rp, 200, list);
}

/* POST .../checkpoints/{checkpoint}/revert, DELETE .../checkpoints/{checkpoint} */
void api_vm_checkpoint(struct request *rq, struct reply *rp)
{
	bool revert = !strcmp(rq->method, "POST");
	struct vsrvd_err e = { 0 };
	json_t *args, *result = NULL;
	int r;

	if (rq->len)
		return reply_error(rp, 400, "%s: takes no body", revert ? "revert" : "delete");
	if (!spec_valid_name(rq->params[1]))
		return reply_error(rp, 400, "checkpoint: expected 1 to 64 letters, digits, '.', '_' or '-' (not first '.' or '-')");
	args = json_pack("{s:s}", "name", rq->params[1]);
	r = supervisor_control(rq->d->sv, rq->params[0], revert ? "revert" : "delete-checkpoint",
			       args, &result, &e);
	json_decref(args);
	json_decref(result);
	if (r < 0)
		return reply_err(rp, &e);
	if (revert)
		return api_vm_get(rq, rp);
	reply_json(rp, 200, json_pack("{s:s}", "deleted", rq->params[1]));
}

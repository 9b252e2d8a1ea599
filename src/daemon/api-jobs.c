// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Disk jobs through the API (jobs.c runs them):
 *
 *   POST /v1/disks/{name}/convert|commit|compact   a job on an inventory disk
 *   POST /v1/jobs                                  the same on any file in
 *                                                  disk_dirs ("source")
 *   GET /v1/jobs, GET /v1/jobs/{id}                state and progress
 *   DELETE /v1/jobs/{id}                           cancel
 *
 * A job is accepted (202) only once what can be known before it runs is
 * right: the files are in disk_dirs (a commit's parent too), of the kind
 * the job needs, a convert's target is new, and nothing else works on
 * them: no other job, no running VM that has them (409), no process that
 * holds libvhd's lock on them (409, naming it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "vhd.h"

/* 409 if a running VM has path among its disks. */
static int vm_uses(struct vsrvd *d, const char *path, struct vsrvd_err *e)
{
	json_t *vms, *vm, *disk;
	size_t i, k;
	int r = 0;

	inventory_vm_list(d->inv, &vms);
	json_array_foreach(vms, i, vm) {
		const char *name = json_string_value(json_object_get(vm, "name"));

		json_array_foreach(json_object_get(vm, "disks"), k, disk) {
			if (r == 0 && !strcmp(json_string_value(json_object_get(disk, "path")), path) &&
			    supervisor_is_active(d->sv, name))
				r = vsrvd_fail(e, 409, -EBUSY, "%s: in use by VM '%s', which runs", path,
					       name);
		}
	}
	json_decref(vms);
	return r;
}

/* 409 if another process holds the file in a way the job cannot share
 * (libvhd's advisory lock: a VMM's disk, vsrv disk serve, ...). */
static int locked(const char *path, bool write, struct vsrvd_err *e)
{
	struct vhd_error err = { 0 };
	struct vhd_file *f;
	int r = vhd_file_open_posix(path, write, true, &f, &err);

	if (r == -EBUSY)
		return vsrvd_fail(e, 409, r, "%s", err.msg);
	if (r == 0)
		f->ops->close(f);
	return 0;
}

/* Opens a job's source VHD (no lock: only its headers are read) for a
 * check; 400 if it is not one. */
static int source_info(const char *path, struct vhd_info *info, struct vsrvd_err *e)
{
	struct vhd_open_opts oo = { .flags = VHD_OPEN_NO_LOCK };
	struct vhd_error err = { 0 };
	struct vhd *v;
	int r = vhd_open(path, &oo, &v, &err);

	if (r < 0)
		return vsrvd_fail(e, 400, r, "%s", err.msg[0] ? err.msg : strerror(-r));
	vhd_get_info(v, info);
	vhd_close(v);
	return 0;
}

/* What jobs.c cannot check without running: fills in source (a disk's
 * path) and a commit's parent. */
static int resolve(struct vsrvd *d, json_t *spec, struct vsrvd_err *e)
{
	const char *type = json_string_value(json_object_get(spec, "type"));
	const char *disk = json_string_value(json_object_get(spec, "disk"));
	const char *src, *dst = json_string_value(json_object_get(spec, "path"));
	const char *name = json_string_value(json_object_get(spec, "name"));
	struct vhd_info *info = NULL;
	json_t *rec;
	int r = 0;

	if (disk) {
		if (inventory_disk_get(d->inv, disk, &rec, e) < 0)
			return -ENOENT;
		json_object_set(spec, "source", json_object_get(rec, "path"));
		json_decref(rec);
	}
	src = json_string_value(json_object_get(spec, "source"));
	if (!strcmp(type, "convert")) {
		if (access(dst, F_OK) == 0)
			return vsrvd_fail(e, 409, -EEXIST, "path: %s exists", dst);
		if (name && inventory_disk_get(d->inv, name, &rec, NULL) == 0) {
			json_decref(rec);
			return vsrvd_fail(e, 409, -EEXIST, "name: disk '%s' exists", name);
		}
		return 0;
	}
	info = malloc(sizeof(*info));
	if (!info)
		return vsrvd_fail(e, 500, -ENOMEM, "out of memory");
	r = source_info(src, info, e);
	if (r == 0 && !strcmp(type, "commit")) {
		char *parent;

		if (info->type != VHD_TYPE_DIFF) {
			r = vsrvd_fail(e, 400, -EINVAL, "%s: not a differencing disk", src);
		} else if (config_path_allowed(d->cfg.disk_dirs, "parent", info->parent_path,
					       &parent, e) == 0) {
			json_object_set_new(spec, "parent", json_string(parent));
			free(parent);
		} else {
			r = -EACCES;
		}
	} else if (r == 0 && info->type == VHD_TYPE_FIXED) {
		r = vsrvd_fail(e, 400, -EINVAL,
			       "%s: a fixed disk has no blocks to drop; convert it to dynamic", src);
	}
	free(info);
	return r;
}

/* Outside vsrvd's jobs: a running VM's disks, and files another process
 * holds.  A convert only reads its source (a copy of a disk a VM writes
 * to would be of no moment, though); the others write theirs. */
static int in_use(struct vsrvd *d, json_t *spec, struct vsrvd_err *e)
{
	bool convert = !strcmp(json_string_value(json_object_get(spec, "type")), "convert");
	int r = 0;

	for (const char *const *k = (const char *const[]){ "source", "parent", NULL };
	     r == 0 && *k; k++) {
		const char *p = json_string_value(json_object_get(spec, *k));

		if (p)
			r = vm_uses(d, p, e);
		if (p && r == 0)
			r = locked(p, !convert, e);
	}
	return r;
}

static void submit(struct request *rq, struct reply *rp, json_t *spec)
{
	struct vsrvd_err e = { 0 };
	json_t *job;

	if (resolve(rq->d, spec, &e) < 0 || jobs_conflict(rq->d->jobs, spec, &e) < 0 ||
	    in_use(rq->d, spec, &e) < 0 || jobs_submit(rq->d->jobs, spec, &job, &e) < 0) {
		json_decref(spec);
		return reply_err(rp, &e);
	}
	json_decref(spec);
	reply_json(rp, 202, job);
}

void api_job_create(struct request *rq, struct reply *rp)
{
	json_t *spec = request_spec(rq, rp, SPEC_JOB);

	if (spec)
		submit(rq, rp, spec);
}

/* POST /v1/disks/{name}/convert|commit|compact: the route says what and
 * on which disk; a body (optional) the rest. */
void api_disk_job(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *body, *spec;

	if (!rq->len) {
		body = json_object();
	} else if (spec_parse_body(rq->body, rq->len, &body, &e) < 0) {
		return reply_err(rp, &e);
	}
	for (const char *const *k = (const char *const[]){ "type", "disk", "source", NULL }; *k;
	     k++) {
		if (json_object_get(body, *k)) {
			json_decref(body);
			return reply_error(rp, 400, "%s: given by the route (/v1/disks/NAME/%s)", *k,
					   rq->action);
		}
	}
	json_object_set_new(body, "type", json_string(rq->action));
	json_object_set_new(body, "disk", json_string(rq->params[0]));
	if (spec_check(SPEC_JOB, body, &rq->d->cfg, &spec, &e) < 0) {
		json_decref(body);
		return reply_err(rp, &e);
	}
	json_decref(body);
	submit(rq, rp, spec);
}

/* {id}: a positive decimal number. */
static int64_t job_id(struct request *rq, struct reply *rp)
{
	const char *s = rq->params[0];
	char *end;
	long long id = strtoll(s, &end, 10);

	if (*end || end == s || id <= 0 || s[0] == '+' || s[0] == ' ') {
		reply_error(rp, 404, "job '%.64s': no such job", s);
		return -1;
	}
	return id;
}

void api_job_list(struct request *rq, struct reply *rp)
{
	json_t *list;

	jobs_list(rq->d->jobs, &list);
	reply_json(rp, 200, list);
}

void api_job_get(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	int64_t id = job_id(rq, rp);
	json_t *job;

	if (id < 0)
		return;
	if (jobs_get(rq->d->jobs, id, &job, &e) < 0)
		return reply_err(rp, &e);
	reply_json(rp, 200, job);
}

void api_job_cancel(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	int64_t id = job_id(rq, rp);
	json_t *job;

	if (id < 0)
		return;
	if (jobs_cancel(rq->d->jobs, id, &job, &e) < 0)
		return reply_err(rp, &e);
	reply_json(rp, 200, job);
}

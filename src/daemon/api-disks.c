// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /v1/disks: VHD disks created through libvhd, in the directories the
 * configuration allows.  GET shows the inventory's record and what the
 * file says now (vhd_get_info), so a disk changed behind vsrvd's back
 * shows as it is.  Their long operations are jobs (api-jobs.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "vhd.h"

void api_disk_list(struct request *rq, struct reply *rp)
{
	json_t *list;

	inventory_disk_list(rq->d->inv, &list);
	reply_json(rp, 200, list);
}

static void add_info(json_t *disk)
{
	struct vhd_open_opts oo = { 0 };
	struct vhd_error err = { 0 };
	struct vhd_info info;
	struct vhd *v;
	char uuid[37];

	if (vhd_open(json_string_value(json_object_get(disk, "path")), &oo, &v, &err) < 0) {
		json_object_set_new(disk, "error", json_string(err.msg[0] ? err.msg : "cannot open"));
		return;
	}
	if (vhd_get_info(v, &info) == 0) {
		vhd_uuid_format(info.uuid, uuid);
		json_object_set_new(disk, "info", json_pack("{s:s, s:I, s:I, s:I, s:i, s:s}",
			"type", vhd_type_name(info.type),
			"virtual_size", (json_int_t)info.size,
			"file_size", (json_int_t)info.file_size,
			"block_size", (json_int_t)info.block_size,
			"allocated_blocks", (int)info.allocated_blocks,
			"uuid", uuid));
		if (info.parent_path[0])
			json_object_set_new(json_object_get(disk, "info"), "parent",
					    json_string(info.parent_path));
	}
	vhd_close(v);
}

void api_disk_get(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *disk;

	if (inventory_disk_get(rq->d->inv, rq->params[0], &disk, &e) < 0)
		return reply_err(rp, &e);
	add_info(disk);
	reply_json(rp, 200, disk);
}

void api_disk_create(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *spec = request_spec(rq, rp, SPEC_DISK), *disk;
	struct vhd_create_opts co = { 0 };
	struct vhd_error err = { 0 };
	const char *type, *path, *name;

	if (!spec)
		return;
	type = json_string_value(json_object_get(spec, "type"));
	path = json_string_value(json_object_get(spec, "path"));
	name = json_string_value(json_object_get(spec, "name"));
	if (inventory_disk_get(rq->d->inv, name, &disk, NULL) == 0) {
		json_decref(disk);
		reply_error(rp, 409, "disk '%s': exists", name);
		json_decref(spec);
		return;
	}
	if (access(path, F_OK) == 0) {
		reply_error(rp, 409, "path: %s exists", path);
		json_decref(spec);
		return;
	}
	co.type = !strcmp(type, "fixed") ? VHD_TYPE_FIXED : !strcmp(type, "diff") ?
		  VHD_TYPE_DIFF : VHD_TYPE_DYNAMIC;
	co.size = (uint64_t)json_integer_value(json_object_get(spec, "size"));
	co.parent = json_string_value(json_object_get(spec, "parent"));
	if (vhd_create(path, &co, &err) < 0) {
		reply_error(rp, 400, "%s", err.msg[0] ? err.msg : "cannot create the disk");
		json_decref(spec);
		return;
	}
	if (co.type == VHD_TYPE_DIFF) {
		struct vhd_open_opts oo = { 0 };
		struct vhd *v;

		if (vhd_open(path, &oo, &v, &err) == 0) {
			json_object_set_new(spec, "size", json_integer((json_int_t)vhd_size(v)));
			vhd_close(v);
		}
	}
	if (inventory_disk_add(rq->d->inv, spec, &e) < 0) {
		unlink(path);
		json_decref(spec);
		return reply_err(rp, &e);
	}
	events_log(rq->d->ev, "disk.created", NULL, "disk %s at %s", name, path);
	rq->params[0] = name;
	api_disk_get(rq, rp);
	json_decref(spec);
	if (rp->status == 200)
		rp->status = 201;
}

void api_disk_delete(struct request *rq, struct reply *rp)
{
	struct vsrvd_err e = { 0 };
	json_t *disk;

	if (inventory_disk_get(rq->d->inv, rq->params[0], &disk, &e) < 0)
		return reply_err(rp, &e);
	if (jobs_busy(rq->d->jobs, json_string_value(json_object_get(disk, "path")), &e) < 0 ||
	    inventory_disk_delete(rq->d->inv, rq->params[0], &e) < 0) {
		json_decref(disk);
		return reply_err(rp, &e);
	}
	unlink(json_string_value(json_object_get(disk, "path")));
	json_decref(disk);
	events_log(rq->d->ev, "disk.deleted", NULL, "disk %s", rq->params[0]);
	reply_json(rp, 200, json_pack("{s:s}", "deleted", rq->params[0]));
}

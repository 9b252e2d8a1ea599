/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The REST API's routes: api.c owns the HTTP side (libmicrohttpd, the
 * body, authentication, the route table); api-*.c hold the handlers, one
 * file per kind of object.
 */
#ifndef VSRVD_API_H
#define VSRVD_API_H

#include <microhttpd.h>

#include "vsrvd.h"

#define API_MAX_PARAMS	2

struct request {
	struct vsrvd *d;
	struct MHD_Connection *conn;
	const char *method;
	const char *url;
	const char *params[API_MAX_PARAMS];	/* the {name}s in the path */
	const char *action;			/* the {action} a route was matched for */
	char *body;
	size_t len;
};

/* After a 101 (Switching Protocols): the connection's socket, the bytes
 * read past the request, and a handle for api_upgrade_close(). */
typedef void (*upgrade_fn)(struct vsrvd *d, const char *arg, int fd, const char *early,
			   size_t len, void *handle);

struct reply {
	unsigned status;
	json_t *json;			/* the body, or */
	char *text;			/* a text body (malloc'd) of this type */
	size_t text_len;
	const char *type;
	struct MHD_Response *response;	/* a ready response (streams) */
	upgrade_fn upgrade;		/* status 101: where the connection goes */
	char upgrade_arg[72];		/* and what it is given (a VM's name) */
	struct {
		const char *name;
		char value[64];
	} headers[3];			/* more response headers (name NULL: none) */
};

typedef void (*route_fn)(struct request *rq, struct reply *rp);

struct route {
	const char *method;
	const char *path;		/* "/v1/vms/{name}": {x} is one segment */
	route_fn fn;
};

void reply_json(struct reply *rp, unsigned status, json_t *body);
void reply_error(struct reply *rp, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void reply_err(struct reply *rp, const struct vsrvd_err *e);
/* Adds a response header (at most three). */
void reply_header(struct reply *rp, const char *name, const char *value);
/* Closes an upgraded connection (libmicrohttpd's socket). */
void api_upgrade_close(void *handle);
/* The request's body through spec_check(), or an error reply and NULL. */
json_t *request_spec(struct request *rq, struct reply *rp, enum spec_kind kind);
const char *request_arg(struct request *rq, const char *key);

/* The route table, matched in order; NULL-terminated. */
extern const struct route api_routes[];
/* The route for METHOD PATH: its index, -404 (no such path) or -405 (no
 * such method on it); fills params (pointers into buf, a copy of path). */
int api_match(const char *method, const char *path, char *buf, size_t buflen,
	      const char *params[API_MAX_PARAMS]);

/* api-vms.c */
void api_vm_list(struct request *rq, struct reply *rp);
void api_vm_create(struct request *rq, struct reply *rp);
void api_vm_get(struct request *rq, struct reply *rp);
void api_vm_update(struct request *rq, struct reply *rp);
void api_vm_delete(struct request *rq, struct reply *rp);
void api_vm_action(struct request *rq, struct reply *rp);
void api_vm_checkpoints(struct request *rq, struct reply *rp);
void api_vm_checkpoint(struct request *rq, struct reply *rp);
/* api-console.c */
void api_vm_console(struct request *rq, struct reply *rp);
/* api-net.c */
void api_net_list(struct request *rq, struct reply *rp);
void api_net_create(struct request *rq, struct reply *rp);
void api_net_get(struct request *rq, struct reply *rp);
void api_net_delete(struct request *rq, struct reply *rp);
/* api-disks.c */
void api_disk_list(struct request *rq, struct reply *rp);
void api_disk_create(struct request *rq, struct reply *rp);
void api_disk_get(struct request *rq, struct reply *rp);
void api_disk_delete(struct request *rq, struct reply *rp);
/* api-jobs.c */
void api_disk_job(struct request *rq, struct reply *rp);
void api_job_create(struct request *rq, struct reply *rp);
void api_job_list(struct request *rq, struct reply *rp);
void api_job_get(struct request *rq, struct reply *rp);
void api_job_cancel(struct request *rq, struct reply *rp);
/* api-host.c */
void api_host(struct request *rq, struct reply *rp);
void api_version(struct request *rq, struct reply *rp);
void api_metrics(struct request *rq, struct reply *rp);
void api_events(struct request *rq, struct reply *rp);
void api_events_stream(struct request *rq, struct reply *rp);

#endif

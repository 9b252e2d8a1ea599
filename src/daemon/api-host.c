// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The service's own routes: /v1/host, /v1/version, /metrics, and the event
 * log, as a list (/v1/events) and as Server-Sent Events
 * (/v1/events/stream: "id:", "event:" and "data:" lines per event, a
 * comment every 15 s so that proxies and clients see the stream alive).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cgroup.h"

#define SSE_KEEPALIVE_MS	15000

void api_host(struct request *rq, struct reply *rp)
{
	json_t *info = host_info();

	json_object_set_new(info, "cgroups", cgroup_host_describe(rq->d->cgroups));
	reply_json(rp, 200, info);
}

void api_version(struct request *rq, struct reply *rp)
{
	reply_json(rp, 200, json_pack("{s:s, s:i, s:s}", "version", VSRV_VERSION,
				      "inventory_schema", inventory_schema_version(rq->d->inv),
				      "state_dir", rq->d->cfg.state_dir));
}

void api_metrics(struct request *rq, struct reply *rp)
{
	rp->text = metrics_render(rq->d, &rp->text_len);
	if (!rp->text)
		return reply_error(rp, 500, "metrics: out of memory");
	rp->status = 200;
	rp->type = "text/plain; version=0.0.4";
}

/* ?NAME=N: a non-negative integer, or def when absent; -1 if malformed. */
static long long int_arg(struct request *rq, const char *name, long long def, long long max)
{
	const char *s = request_arg(rq, name);
	char *end;
	long long v;

	if (!s)
		return def;
	v = strtoll(s, &end, 10);
	return *end || end == s || v < 0 || v > max ? -1 : v;
}

void api_events(struct request *rq, struct reply *rp)
{
	long long after = int_arg(rq, "after", 0, INT64_MAX), limit = int_arg(rq, "limit", 100, 1000);
	const char *vm = request_arg(rq, "vm");
	json_t *list;

	if (after < 0 || limit < 0)
		return reply_error(rp, 400, "after, limit: expected integers (limit at most 1000)");
	if (vm && !spec_valid_name(vm))
		return reply_error(rp, 400, "vm: not a VM name");
	inventory_event_list(rq->d->inv, after, (int)limit, vm, &list);
	reply_json(rp, 200, list);
}

struct stream {
	struct events *ev;
	int64_t last;
	char *buf;		/* formatted, not yet sent */
	size_t len, off;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *s = cls;
	size_t n;

	while (s->off == s->len) {
		json_t *list = events_wait(s->ev, &s->last, SSE_KEEPALIVE_MS), *e;
		FILE *f;
		size_t i;

		if (!list)
			return MHD_CONTENT_READER_END_OF_STREAM;
		free(s->buf);
		s->buf = NULL;
		s->off = 0;
		f = open_memstream(&s->buf, &s->len);
		if (!f) {
			json_decref(list);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (!json_array_size(list))
			fputs(": keep-alive\n\n", f);
		json_array_foreach(list, i, e) {
			char *data = json_dumps(e, JSON_COMPACT);

			fprintf(f, "id: %lld\nevent: %s\ndata: %s\n\n",
				(long long)json_integer_value(json_object_get(e, "id")),
				json_string_value(json_object_get(e, "type")), data ? data : "{}");
			free(data);
		}
		fclose(f);
		json_decref(list);
	}
	n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;

	free(s->buf);
	free(s);
}

void api_events_stream(struct request *rq, struct reply *rp)
{
	const char *resume = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
							 "Last-Event-ID");
	long long after = int_arg(rq, "after", -1, INT64_MAX);
	struct stream *s;

	if (resume) {
		char *end;

		after = strtoll(resume, &end, 10);
		if (*end || after < 0)
			return reply_error(rp, 400, "Last-Event-ID: expected an event id");
	} else if (request_arg(rq, "after") && after < 0) {
		return reply_error(rp, 400, "after: expected an event id");
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return reply_error(rp, 500, "out of memory");
	s->ev = rq->d->ev;
	/* From now on, unless the client asks for what it missed. */
	s->last = after >= 0 ? after : events_last_id(rq->d->ev);
	rp->response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s,
							 stream_free);
	if (!rp->response) {
		free(s);
		return reply_error(rp, 500, "out of memory");
	}
	MHD_add_response_header(rp->response, "Content-Type", "text/event-stream");
	MHD_add_response_header(rp->response, "Cache-Control", "no-cache");
	rp->status = 200;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The REST API's HTTP side, on libmicrohttpd: the listeners, the route
 * table, request bodies, authentication and replies.  docs/api.yaml
 * describes the same routes; tests/integration/test_vsrvd_api.py keeps
 * the two in agreement (`vsrvd routes` prints this table).
 *
 * Listeners: the Unix socket STATE/vsrvd.sock (mode 0660: whoever may open
 * it is an administrator), and optionally TCP, 127.0.0.1 unless told
 * otherwise, where every request needs "Authorization: Bearer TOKEN", and
 * which is HTTPS when the configuration gives a certificate (tls.c; TLS
 * 1.2 and 1.3 only, through libmicrohttpd's GnuTLS).
 * A thread per connection: a keep-alive client (wrk, the CLI) costs no
 * hand-offs, and an event stream may block in its thread.
 *
 * Every answer is JSON; every error is {"error": "one line"} with a status
 * that says whose fault it is: 400 malformed, 401 no token, 404 no such
 * object or route, 405 no such method on it, 409 the object's state, 413
 * the body too large, 501 not yet possible, 503 the VMM is busy, 504 the
 * VMM did not answer in time.  A disk job is accepted with 202 and runs on
 * (api-jobs.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"

const struct route api_routes[] = {
	{ "GET", "/v1/vms", api_vm_list },
	{ "POST", "/v1/vms", api_vm_create },
	{ "GET", "/v1/vms/{name}", api_vm_get },
	{ "PATCH", "/v1/vms/{name}", api_vm_update },
	{ "DELETE", "/v1/vms/{name}", api_vm_delete },
	{ "POST", "/v1/vms/{name}/start", api_vm_action },
	{ "POST", "/v1/vms/{name}/power-off", api_vm_action },
	{ "POST", "/v1/vms/{name}/shutdown", api_vm_action },
	{ "POST", "/v1/vms/{name}/reset", api_vm_action },
	{ "POST", "/v1/vms/{name}/pause", api_vm_action },
	{ "POST", "/v1/vms/{name}/resume", api_vm_action },
	{ "POST", "/v1/vms/{name}/save", api_vm_action },
	{ "POST", "/v1/vms/{name}/restore", api_vm_action },
	{ "POST", "/v1/vms/{name}/checkpoint", api_vm_action },
	{ "GET", "/v1/vms/{name}/checkpoints", api_vm_checkpoints },
	{ "POST", "/v1/vms/{name}/checkpoints/{checkpoint}/revert", api_vm_checkpoint },
	{ "DELETE", "/v1/vms/{name}/checkpoints/{checkpoint}", api_vm_checkpoint },
	{ "GET", "/v1/vms/{name}/console", api_vm_console },
	{ "GET", "/v1/networks", api_net_list },
	{ "POST", "/v1/networks", api_net_create },
	{ "GET", "/v1/networks/{name}", api_net_get },
	{ "DELETE", "/v1/networks/{name}", api_net_delete },
	{ "GET", "/v1/disks", api_disk_list },
	{ "POST", "/v1/disks", api_disk_create },
	{ "GET", "/v1/disks/{name}", api_disk_get },
	{ "DELETE", "/v1/disks/{name}", api_disk_delete },
	{ "POST", "/v1/disks/{name}/convert", api_disk_job },
	{ "POST", "/v1/disks/{name}/commit", api_disk_job },
	{ "POST", "/v1/disks/{name}/compact", api_disk_job },
	{ "GET", "/v1/jobs", api_job_list },
	{ "POST", "/v1/jobs", api_job_create },
	{ "GET", "/v1/jobs/{id}", api_job_get },
	{ "DELETE", "/v1/jobs/{id}", api_job_cancel },
	{ "GET", "/v1/events", api_events },
	{ "GET", "/v1/events/stream", api_events_stream },
	{ "GET", "/v1/host", api_host },
	{ "GET", "/v1/version", api_version },
	{ "GET", "/metrics", api_metrics },
	{ NULL, NULL, NULL },
};

struct api {
	struct vsrvd *d;
	struct MHD_Daemon *unix_daemon, *tcp_daemon;
};

/* Per connection and request: the body as it arrives. */
struct pending {
	char *body;
	size_t len;
	bool too_big;
	bool answered;
	upgrade_fn upgrade;		/* the reply's, for upgraded() */
	char upgrade_arg[72];
};

void api_print_routes(void)
{
	for (const struct route *r = api_routes; r->method; r++)
		printf("%s %s\n", r->method, r->path);
}

static bool segment_match(const char *pat, size_t plen, const char *seg, size_t slen)
{
	if (plen >= 2 && pat[0] == '{' && pat[plen - 1] == '}')
		return slen > 0;
	return plen == slen && !memcmp(pat, seg, plen);
}

/* Both are '/'-separated; a {x} in the pattern takes one whole segment. */
static bool path_match(const char *pat, char *path, const char *params[API_MAX_PARAMS])
{
	int np = 0;

	while (*pat && *path) {
		const char *pe = strchr(pat + 1, '/');
		char *se = strchr(path + 1, '/');
		size_t pl = pe ? (size_t)(pe - pat) : strlen(pat);
		size_t sl = se ? (size_t)(se - path) : strlen(path);

		if (pat[0] != '/' || path[0] != '/' ||
		    !segment_match(pat + 1, pl - 1, path + 1, sl - 1))
			return false;
		if (pat[1] == '{' && np < API_MAX_PARAMS)
			params[np++] = path + 1;
		pat += pl;
		path += sl;
	}
	return !*pat && !*path;
}

int api_match(const char *method, const char *path, char *buf, size_t buflen,
	      const char *params[API_MAX_PARAMS])
{
	bool path_found = false;

	if (strlen(path) >= buflen)
		return -404;
	for (int i = 0; api_routes[i].method; i++) {
		strcpy(buf, path);
		params[0] = params[1] = NULL;
		if (!path_match(api_routes[i].path, buf, params))
			continue;
		path_found = true;
		if (strcmp(api_routes[i].method, method))
			continue;
		/* Cut the parameters out of the copy. */
		for (char *p = buf + 1; *p; p++)
			if (*p == '/' && p > buf)
				*p = 0;
		return i;
	}
	return path_found ? -405 : -404;
}

void reply_json(struct reply *rp, unsigned status, json_t *body)
{
	rp->status = status;
	json_decref(rp->json);
	rp->json = body;
}

void reply_error(struct reply *rp, unsigned status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_json(rp, status, json_pack("{s:s}", "error", msg));
}

void reply_err(struct reply *rp, const struct vsrvd_err *e)
{
	reply_error(rp, e->status ? (unsigned)e->status : 500, "%s",
		    e->msg[0] ? e->msg : "internal error");
}

void reply_header(struct reply *rp, const char *name, const char *value)
{
	for (size_t i = 0; i < sizeof(rp->headers) / sizeof(rp->headers[0]); i++) {
		if (!rp->headers[i].name) {
			rp->headers[i].name = name;
			snprintf(rp->headers[i].value, sizeof(rp->headers[i].value), "%s", value);
			return;
		}
	}
}

/* libmicrohttpd has sent the 101: the socket is the route's now.  The
 * connection's context (struct pending) is still there, its `completed`
 * comes later. */
static void upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
		     size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct pending *p = con_cls;

	p->upgrade(cls, p->upgrade_arg, sock, extra_in, extra_in_size, urh);
}

void api_upgrade_close(void *handle)
{
	MHD_upgrade_action(handle, MHD_UPGRADE_ACTION_CLOSE);
}

json_t *request_spec(struct request *rq, struct reply *rp, enum spec_kind kind)
{
	struct vsrvd_err e = { 0 };
	json_t *body, *spec;

	if (spec_parse_body(rq->body, rq->len, &body, &e) < 0) {
		reply_err(rp, &e);
		return NULL;
	}
	if (spec_check(kind, body, &rq->d->cfg, &spec, &e) < 0) {
		json_decref(body);
		reply_err(rp, &e);
		return NULL;
	}
	json_decref(body);
	return spec;
}

const char *request_arg(struct request *rq, const char *key)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct reply *rp)
{
	struct MHD_Response *resp = rp->response;
	enum MHD_Result ret;

	if (!resp) {
		char *text = rp->text;
		size_t len = rp->text_len;

		if (!text) {
			text = json_dumps(rp->json ? rp->json : json_object(), JSON_COMPACT);
			len = text ? strlen(text) : 0;
			/* A newline: a terminal shows the answer whole. */
			if (text) {
				char *t = realloc(text, len + 2);

				if (t) {
					text = t;
					text[len++] = '\n';
					text[len] = 0;
				}
			}
			rp->type = "application/json";
		}
		resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(text);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type", rp->type);
		if (rp->status == 401)
			MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
	}
	for (size_t i = 0; i < sizeof(rp->headers) / sizeof(rp->headers[0]); i++)
		if (rp->headers[i].name)
			MHD_add_response_header(resp, rp->headers[i].name, rp->headers[i].value);
	ret = MHD_queue_response(c, rp->status, resp);
	MHD_destroy_response(resp);
	json_decref(rp->json);
	return ret;
}

static enum MHD_Result error_now(struct MHD_Connection *c, unsigned status, const char *msg)
{
	struct reply rp = { 0 };

	reply_error(&rp, status, "%s", msg);
	return send_reply(c, &rp);
}

static void dispatch(struct api *api, struct MHD_Connection *c, const char *method,
		     const char *url, struct pending *p, struct reply *rp)
{
	struct request rq = { .d = api->d, .conn = c, .method = method, .url = url,
			      .body = p->body, .len = p->len };
	char buf[1024];
	int i = api_match(method, url, buf, sizeof(buf), rq.params);

	if (i == -404) {
		reply_error(rp, 404, "%s: no such route", url);
		return;
	}
	if (i == -405) {
		reply_error(rp, 405, "%s: no %s here", url, method);
		return;
	}
	rq.action = strrchr(api_routes[i].path, '/') + 1;
	api_routes[i].fn(&rq, rp);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls, bool tcp)
{
	struct api *api = cls;
	struct pending *p = *con_cls;
	struct reply rp = { 0 };

	if (!p) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");

		p = calloc(1, sizeof(*p));
		if (!p)
			return MHD_NO;
		*con_cls = p;
		if (tcp && !auth_check(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								   "Authorization"), api->d->token)) {
			p->answered = true;
			return error_now(c, 401, "a bearer token is required (Authorization: Bearer TOKEN)");
		}
		if (cl && strtoull(cl, NULL, 10) > api->d->cfg.max_body) {
			p->answered = true;
			return error_now(c, 413, "body larger than the service accepts (max_body)");
		}
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (p->answered || p->too_big)
			return MHD_YES;
		if (p->len + n > api->d->cfg.max_body) {
			p->too_big = true;
			return MHD_YES;
		}
		char *nb = realloc(p->body, p->len + n + 1);

		if (!nb)
			return MHD_NO;
		p->body = nb;
		memcpy(p->body + p->len, upload, n);
		p->len += n;
		p->body[p->len] = 0;
		return MHD_YES;
	}
	if (p->answered)
		return MHD_YES;
	p->answered = true;
	if (p->too_big)
		return error_now(c, 413, "body larger than the service accepts (max_body)");
	dispatch(api, c, method, url, p, &rp);
	if (rp.upgrade) {
		p->upgrade = rp.upgrade;
		memcpy(p->upgrade_arg, rp.upgrade_arg, sizeof(p->upgrade_arg));
		rp.response = MHD_create_response_for_upgrade(upgraded, api->d);
		if (!rp.response)
			return MHD_NO;
	}
	return send_reply(c, &rp);
}

static enum MHD_Result handle_unix(void *cls, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, const char *upload,
				   size_t *upload_size, void **con_cls)
{
	return handle(cls, c, url, method, version, upload, upload_size, con_cls, false);
}

static enum MHD_Result handle_tcp(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	return handle(cls, c, url, method, version, upload, upload_size, con_cls, true);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct pending *p = *con_cls;

	if (p) {
		free(p->body);
		free(p);
		*con_cls = NULL;
	}
}

/* No Nagle on TCP: an answer larger than a segment goes out as its header
 * and then its body, and the body would wait for the client's delayed ACK
 * (40 ms a request). */
static void connection_started(void *cls, struct MHD_Connection *c, void **socket_ctx,
			       enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *info;
	int one = 1;

	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (info)
		setsockopt(info->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int unix_listener(const struct vsrvd_config *cfg, struct vsrvd_err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path))
		return vsrvd_fail(e, 0, -ENAMETOOLONG, "%s: longer than a Unix socket's path can be",
				  cfg->socket_path);
	strcpy(sa.sun_path, cfg->socket_path);
	/* vsrvd holds the state directory's lock: a socket there is a dead
	 * vsrvd's. */
	unlink(cfg->socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(cfg->socket_path, 0660) < 0 || listen(fd, 128) < 0) {
		int r = -errno;

		if (fd >= 0)
			close(fd);
		return vsrvd_fail(e, 0, r, "%s: %s", cfg->socket_path, strerror(-r));
	}
	if (cfg->socket_group) {
		struct group *g = getgrnam(cfg->socket_group);

		if (!g || chown(cfg->socket_path, (uid_t)-1, g->gr_gid) < 0) {
			close(fd);
			return vsrvd_fail(e, 0, -EINVAL, "%s: cannot give it to group '%s'",
					  cfg->socket_path, cfg->socket_group);
		}
	}
	return fd;
}

static struct MHD_Daemon *start_daemon(struct api *api, int listen_fd,
				       const struct sockaddr_in *sa, MHD_AccessHandlerCallback h)
{
	/* MHD_ALLOW_UPGRADE: the consoles' WebSockets (api-console.c), which
	 * over TLS libmicrohttpd relays through a socket pair. */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | MHD_ALLOW_UPGRADE;
	bool tls = sa && api->d->tls_cert_pem;
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, api->d->tls_cert_pem },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, api->d->tls_key_pem },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0,
		  (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" },
		{ MHD_OPTION_END, 0, NULL },
	};

	if (listen_fd >= 0)
		return MHD_start_daemon(flags, 0, NULL, NULL, h, api,
					MHD_OPTION_LISTEN_SOCKET, listen_fd,
					MHD_OPTION_NOTIFY_COMPLETED, completed, api,
					MHD_OPTION_CONNECTION_LIMIT, api->d->cfg.threads_max,
					MHD_OPTION_CONNECTION_TIMEOUT, 120u,
					MHD_OPTION_END);
	return MHD_start_daemon(flags | (tls ? MHD_USE_TLS : 0), ntohs(sa->sin_port), NULL, NULL,
				h, api,
				MHD_OPTION_ARRAY, tls ? tls_opts : &tls_opts[3],
				MHD_OPTION_SOCK_ADDR, sa,
				MHD_OPTION_NOTIFY_COMPLETED, completed, api,
				MHD_OPTION_NOTIFY_CONNECTION, connection_started, api,
				MHD_OPTION_CONNECTION_LIMIT, api->d->cfg.threads_max,
				MHD_OPTION_CONNECTION_TIMEOUT, 120u,
				MHD_OPTION_END);
}

/* "PORT", "ADDR:PORT": TCP on 127.0.0.1 unless an address is given. */
static int parse_listen(const char *s, struct sockaddr_in *sa)
{
	const char *colon = strrchr(s, ':');
	char addr[64] = "127.0.0.1", *end;
	unsigned long port;

	if (colon) {
		if ((size_t)(colon - s) >= sizeof(addr))
			return -EINVAL;
		memcpy(addr, s, (size_t)(colon - s));
		addr[colon - s] = 0;
		s = colon + 1;
	}
	port = strtoul(s, &end, 10);
	if (*end || end == s || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, addr, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

int api_start(struct api **out, struct vsrvd *d, struct vsrvd_err *e)
{
	struct api *api = calloc(1, sizeof(*api));
	int fd;

	if (!api)
		return -ENOMEM;
	api->d = d;
	/* TCP first: once the Unix socket answers, vsrvd.url is written. */
	if (d->cfg.tcp_listen) {
		struct sockaddr_in sa;
		const union MHD_DaemonInfo *info;
		char text[80], addr[INET_ADDRSTRLEN], path[4096];

		if (parse_listen(d->cfg.tcp_listen, &sa) < 0) {
			api_stop(api);
			return vsrvd_fail(e, 0, -EINVAL, "tcp: '%s' is not PORT or ADDRESS:PORT",
					  d->cfg.tcp_listen);
		}
		api->tcp_daemon = start_daemon(api, -1, &sa, handle_tcp);
		if (!api->tcp_daemon) {
			api_stop(api);
			return vsrvd_fail(e, 0, -EADDRINUSE, "tcp %s: cannot listen there",
					  d->cfg.tcp_listen);
		}
		/* The port it got (the configuration may say 0: any). */
		info = MHD_get_daemon_info(api->tcp_daemon, MHD_DAEMON_INFO_BIND_PORT);
		inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof(addr));
		snprintf(text, sizeof(text), "%s://%s:%u\n", d->tls_cert_pem ? "https" : "http",
			 addr, info ? info->port : ntohs(sa.sin_port));
		snprintf(path, sizeof(path), "%s/vsrvd.url", d->cfg.state_dir);
		write_file_atomic(path, text, strlen(text), 0644);
		fprintf(stderr, "vsrvd: listening on %s", text);
	}
	fd = unix_listener(&d->cfg, e);
	if (fd < 0) {
		api_stop(api);
		return fd;
	}
	api->unix_daemon = start_daemon(api, fd, NULL, handle_unix);
	if (!api->unix_daemon) {
		close(fd);
		api_stop(api);
		return vsrvd_fail(e, 0, -EIO, "%s: the HTTP server did not start",
				  d->cfg.socket_path);
	}
	fprintf(stderr, "vsrvd: listening on unix:%s\n", d->cfg.socket_path);
	*out = api;
	return 0;
}

void api_stop(struct api *api)
{
	if (!api)
		return;
	if (api->tcp_daemon)
		MHD_stop_daemon(api->tcp_daemon);
	if (api->unix_daemon)
		MHD_stop_daemon(api->unix_daemon);
	free(api);
}

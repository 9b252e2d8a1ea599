// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control protocol's messages and framing (protocol.h): what a line
 * must hold to be a request, the commands and their arguments, and the
 * shapes of replies, errors, events and the greeting.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol.h"

#define NO_ARGS		{ { .name = NULL } }
#define SECONDS_MAX	86400	/* a day: anything longer is a typo */
#define PATH_MAX_LEN	4095

/* What a checkpoint leaves the VM as (absent: as it was). */
static const char *const then_words[] = { "running", "paused", NULL };

const struct ctl_command ctl_commands[] = {
	{ "status", "the VM's state, uptime and configuration", NO_ARGS },
	{ "pause", "stop every vCPU and the devices' I/O", NO_ARGS },
	{ "resume", "run a paused VM again", NO_ARGS },
	{ "power-off", "turn the VM off now, as SIGTERM does", NO_ARGS },
	{ "reset", "reset the VM as a guest reboot does (honouring --on-reboot)", NO_ARGS },
	{ "shutdown", "press the power button (or Ctrl-Alt-Del), power off after a timeout", {
		{ "timeout", CTL_ARG_UINT, false, 1, SECONDS_MAX, NULL },
		{ "reboot", CTL_ARG_BOOL, false, 0, 0, NULL },
		{ .name = NULL } } },
	{ "stats", "the VM's counters", NO_ARGS },
	{ "events", "send this client events (or stop: enable false)", {
		{ "enable", CTL_ARG_BOOL, false, 0, 0, NULL },
		{ .name = NULL } } },
	{ "save", "save the VM's state to a file, then power off", {
		{ "file", CTL_ARG_STRING, true, 1, PATH_MAX_LEN, NULL },
		{ .name = NULL } } },
	{ "checkpoint", "save the VM's state as checkpoint NAME and go on (then: running, paused)", {
		{ "name", CTL_ARG_STRING, true, 1, CTL_NAME_MAX, NULL },
		{ "then", CTL_ARG_WORD, false, 0, 0, then_words },
		{ .name = NULL } } },
	{ "checkpoints", "the checkpoints, as a tree", NO_ARGS },
	{ "revert", "start the VM again from checkpoint NAME", {
		{ "name", CTL_ARG_STRING, true, 1, CTL_NAME_MAX, NULL },
		{ .name = NULL } } },
	{ "delete-checkpoint", "forget checkpoint NAME, removing or merging its disks' layers", {
		{ "name", CTL_ARG_STRING, true, 1, CTL_NAME_MAX, NULL },
		{ .name = NULL } } },
	{ "undo", "what the undo disks' changes come to when the VM ends: commit, discard, keep", {
		{ "mode", CTL_ARG_STRING, true, 1, 16, NULL },
		{ .name = NULL } } },
	{ .name = NULL },
};

static const char *const state_names[] = {
	[CTL_STATE_STARTING] = "starting", [CTL_STATE_RUNNING] = "running",
	[CTL_STATE_PAUSED] = "paused", [CTL_STATE_SHUTTING_DOWN] = "shutting-down",
	[CTL_STATE_SAVING] = "saving", [CTL_STATE_OFF] = "off",
};

const char *ctl_state_name(enum ctl_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

const struct ctl_command *ctl_command_find(const char *name)
{
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

/* A client's string quoted back in an error: printable ASCII, at most 64
 * bytes, so that the message is valid UTF-8 and one short line. */
static const char *quote(const char *s, char out[68])
{
	size_t n = 0;

	for (; *s && n < 64; s++)
		out[n++] = *s >= 0x20 && *s < 0x7f ? *s : '?';
	if (*s) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

static const struct ctl_arg *arg_find(const struct ctl_command *c, const char *name)
{
	for (const struct ctl_arg *a = c->args; a->name; a++)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

/* "then: expected running or paused" */
static void words_expected(const struct ctl_arg *a, char *why, size_t len)
{
	size_t n = (size_t)snprintf(why, len, "%s: expected ", a->name);

	for (const char *const *w = a->words; *w && n < len; w++)
		n += (size_t)snprintf(why + n, len - n, "%s%s", w == a->words ? "" :
				      w[1] ? ", " : " or ", *w);
}

/* An argument of the wrong type or out of range: the error's text. */
static bool arg_ok(const struct ctl_arg *a, json_t *v, char *why, size_t len)
{
	switch (a->type) {
	case CTL_ARG_STRING:
		if (!json_is_string(v) || json_string_length(v) < a->min ||
		    json_string_length(v) > a->max ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			snprintf(why, len, "%s: expected a string of %llu to %llu bytes", a->name,
				 (unsigned long long)a->min, (unsigned long long)a->max);
			return false;
		}
		return true;
	case CTL_ARG_UINT:
		if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)a->min ||
		    json_integer_value(v) > (json_int_t)a->max) {
			snprintf(why, len, "%s: expected an integer from %llu to %llu", a->name,
				 (unsigned long long)a->min, (unsigned long long)a->max);
			return false;
		}
		return true;
	case CTL_ARG_BOOL:
		if (!json_is_boolean(v)) {
			snprintf(why, len, "%s: expected true or false", a->name);
			return false;
		}
		return true;
	case CTL_ARG_WORD:
		for (const char *const *w = a->words; json_is_string(v) && *w; w++)
			if (!strcmp(*w, json_string_value(v)) &&
			    strlen(*w) == json_string_length(v))
				return true;
		words_expected(a, why, len);
		return false;
	}
	return false;
}

static bool id_ok(json_t *id)
{
	return json_is_integer(id) ||
	       (json_is_string(id) && json_string_length(id) <= CTL_ID_MAX);
}

int ctl_request_parse(const char *line, size_t len, struct ctl_request *req, json_t **reply)
{
	json_t *root, *id, *cmd, *args, *v;
	json_error_t je;
	const char *key;
	char why[160], q[68];

	memset(req, 0, sizeof(*req));
	*reply = NULL;
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		*reply = ctl_error(json_null(), CTL_E_BAD_JSON, "column %d: %s", je.column, je.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		*reply = ctl_error(json_null(), CTL_E_BAD_REQUEST, "a request is a JSON object");
		goto bad;
	}
	id = json_object_get(root, "id");
	if (!id || !id_ok(id)) {
		*reply = ctl_error(json_null(), CTL_E_BAD_REQUEST,
				   id ? "id: expected a string of at most %d bytes or an integer" :
				   "id: missing (every request has one, which its reply repeats)",
				   CTL_ID_MAX);
		goto bad;
	}
	json_object_foreach(root, key, v)
		if (strcmp(key, "id") && strcmp(key, "command") && strcmp(key, "arguments")) {
			*reply = ctl_error(id, CTL_E_BAD_REQUEST,
					   "unknown member '%s' (a request has id, command, arguments)",
					   quote(key, q));
			goto bad;
		}
	cmd = json_object_get(root, "command");
	if (!json_is_string(cmd)) {
		*reply = ctl_error(id, CTL_E_BAD_REQUEST, "command: %s",
				   cmd ? "expected a string" : "missing");
		goto bad;
	}
	req->cmd = ctl_command_find(json_string_value(cmd));
	if (!req->cmd) {
		*reply = ctl_error(id, CTL_E_UNKNOWN_COMMAND, "no command '%s'",
				   quote(json_string_value(cmd), q));
		goto bad;
	}
	args = json_object_get(root, "arguments");
	if (args && !json_is_object(args)) {
		*reply = ctl_error(id, CTL_E_BAD_ARGUMENTS, "arguments: expected an object");
		goto bad;
	}
	if (!args) {
		args = json_object();
		if (!args || json_object_set_new(root, "arguments", args) < 0)
			goto oom;
	}
	json_object_foreach(args, key, v) {
		const struct ctl_arg *a = arg_find(req->cmd, key);

		if (!a) {
			*reply = ctl_error(id, CTL_E_BAD_ARGUMENTS, "%s takes no argument '%s'",
					   req->cmd->name, quote(key, q));
			goto bad;
		}
		if (!arg_ok(a, v, why, sizeof(why))) {
			*reply = ctl_error(id, CTL_E_BAD_ARGUMENTS, "%s", why);
			goto bad;
		}
	}
	for (const struct ctl_arg *a = req->cmd->args; a->name; a++)
		if (a->required && !json_object_get(args, a->name)) {
			*reply = ctl_error(id, CTL_E_BAD_ARGUMENTS, "%s: missing", a->name);
			goto bad;
		}
	req->root = root;
	req->id = id;
	req->args = args;
	return 0;
oom:
	*reply = ctl_error(json_null(), CTL_E_FAILED, "out of memory");
bad:
	json_decref(root);
	memset(req, 0, sizeof(*req));
	return -EINVAL;
}

void ctl_request_free(struct ctl_request *req)
{
	json_decref(req->root);
	memset(req, 0, sizeof(*req));
}

const char *ctl_arg_str(const struct ctl_request *req, const char *name)
{
	return json_string_value(json_object_get(req->args, name));
}

uint64_t ctl_arg_uint(const struct ctl_request *req, const char *name, uint64_t def)
{
	json_t *v = json_object_get(req->args, name);

	return v ? (uint64_t)json_integer_value(v) : def;
}

bool ctl_arg_bool(const struct ctl_request *req, const char *name, bool def)
{
	json_t *v = json_object_get(req->args, name);

	return v ? json_is_true(v) : def;
}

/* --- messages --- */

json_t *ctl_greeting(const char *version)
{
	json_t *cmds = json_array();

	for (const struct ctl_command *c = ctl_commands; cmds && c->name; c++)
		json_array_append_new(cmds, json_string(c->name));
	return json_pack("{s:{s:i,s:s,s:o*}}", "greeting", "protocol", CTL_PROTOCOL_VERSION,
			 "vsrv", version, "commands", cmds);
}

json_t *ctl_reply(json_t *id, json_t *ret)
{
	return json_pack("{s:O,s:o}", "id", id ? id : json_null(), "return",
			 ret ? ret : json_object());
}

json_t *ctl_error(json_t *id, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The parser's words may quote a client's bytes: ASCII only. */
	for (char *p = msg; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
	return json_pack("{s:O,s:{s:s,s:s}}", "id", id ? id : json_null(), "error", "code",
			 code, "message", msg);
}

json_t *ctl_event(const char *name, json_t *data)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return json_pack("{s:s,s:o,s:{s:I,s:I}}", "event", name, "data",
			 data ? data : json_object(), "timestamp", "seconds", (json_int_t)t.tv_sec,
			 "microseconds", (json_int_t)(t.tv_nsec / 1000));
}

char *ctl_encode(json_t *msg, size_t *len)
{
	char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	size_t n;
	char *line;

	if (!s)
		return NULL;
	n = strlen(s);
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

/* --- framing --- */

int ctl_lines_init(struct ctl_lines *lb)
{
	memset(lb, 0, sizeof(*lb));
	lb->buf = malloc(CTL_LINE_MAX + 1);
	return lb->buf ? 0 : -ENOMEM;
}

void ctl_lines_free(struct ctl_lines *lb)
{
	free(lb->buf);
	memset(lb, 0, sizeof(*lb));
}

char *ctl_lines_space(struct ctl_lines *lb, size_t *n)
{
	if (lb->start) {
		memmove(lb->buf, lb->buf + lb->start, lb->len - lb->start);
		lb->len -= lb->start;
		lb->start = 0;
	}
	if (lb->len == CTL_LINE_MAX) {
		/* Only when the caller did not drain ctl_lines_next(). */
		lb->len = 0;
		lb->skipping = true;
	}
	*n = CTL_LINE_MAX - lb->len;
	return lb->buf + lb->len;
}

void ctl_lines_added(struct ctl_lines *lb, size_t n)
{
	lb->len += n;
}

int ctl_lines_next(struct ctl_lines *lb, char **line, size_t *len)
{
	for (;;) {
		char *p = lb->buf + lb->start;
		char *nl = memchr(p, '\n', lb->len - lb->start);

		if (!nl) {
			if (lb->skipping) {
				lb->start = lb->len = 0;
				return 0;
			}
			if (lb->len - lb->start < CTL_LINE_MAX)
				return 0;
			lb->skipping = true;
			lb->start = lb->len = 0;
			return -E2BIG;
		}
		lb->start = (size_t)(nl - lb->buf) + 1;
		if (lb->skipping) {
			lb->skipping = false;
			continue;
		}
		*nl = '\0';
		*line = p;
		*len = (size_t)(nl - p);
		return 1;
	}
}

// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the control protocol (src/control/protocol.c):
 * what a client controls, driven directly, with no server.  The input is
 * the byte stream a client sends, cut into reads at the places byte 0
 * picks (every 1 << (byte0 % 12) bytes), framed into lines, each parsed
 * as a request.  The invariants, checked on every line:
 *  - a line reaches the parser only whole, without its newline, never
 *    longer than CTL_LINE_MAX; an overlong one is reported once;
 *  - a request is accepted only with an id, a known command and
 *    arguments each of its declared type and range (a word one of its
 *    words), all required ones;
 *  - anything else gets an error reply that encodes as one line of JSON
 *    with a code, a message and the request's id (or null), the message
 *    printable ASCII;
 *  - a reply to an accepted request encodes as one line too.
 * A broken invariant calls bug(), which says which and aborts.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/control/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void bug(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bug(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz-ctl: bug: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* msg (consumed) encodes as one line that parses back to an object. */
static json_t *one_line(json_t *msg)
{
	size_t len;
	char *line = ctl_encode(msg, &len);
	json_t *back;

	json_decref(msg);
	if (!line)
		bug("a message did not encode");
	if (len < 3 || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
		bug("an encoded message is not one line");
	back = json_loadb(line, len - 1, 0, NULL);
	if (!json_is_object(back))
		bug("an encoded message does not parse back: %s", line);
	free(line);
	return back;
}

static void check_error(json_t *reply)
{
	json_t *back = one_line(reply), *err = json_object_get(back, "error");
	json_t *id = json_object_get(back, "id");
	const char *msg = json_string_value(json_object_get(err, "message"));

	if (!json_is_string(json_object_get(err, "code")) || !msg)
		bug("an error reply without a code or a message");
	if (!id || !(json_is_null(id) || json_is_integer(id) || json_is_string(id)))
		bug("an error reply's id is not the request's nor null");
	for (const char *p = msg; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			bug("an error message is not printable ASCII");
	json_decref(back);
}

static void check_request(const struct ctl_request *req)
{
	const char *key;
	json_t *v;

	if (!req->cmd || !req->id || !json_is_object(req->args) ||
	    ctl_command_find(req->cmd->name) != req->cmd)
		bug("an accepted request without an id, a command or arguments");
	if (!json_is_integer(req->id) &&
	    !(json_is_string(req->id) && json_string_length(req->id) <= CTL_ID_MAX))
		bug("an accepted id that is neither an integer nor a short string");
	json_object_foreach(req->args, key, v) {
		const struct ctl_arg *a = req->cmd->args;

		while (a->name && strcmp(a->name, key))
			a++;
		if (!a->name)
			bug("%s accepted an argument it does not take: %s", req->cmd->name, key);
		if (a->type == CTL_ARG_UINT &&
		    (ctl_arg_uint(req, key, 0) < a->min || ctl_arg_uint(req, key, 0) > a->max))
			bug("%s: %s accepted out of range", req->cmd->name, key);
		if (a->type == CTL_ARG_STRING && (!ctl_arg_str(req, key) ||
						  strlen(ctl_arg_str(req, key)) > a->max))
			bug("%s: %s accepted as a string it is not", req->cmd->name, key);
		if (a->type == CTL_ARG_WORD) {
			const char *const *w = a->words;

			while (*w && (!ctl_arg_str(req, key) || strcmp(*w, ctl_arg_str(req, key)) ||
				      strlen(*w) != json_string_length(v)))
				w++;
			if (!*w)
				bug("%s: %s accepted as none of its words", req->cmd->name, key);
		}
	}
	for (const struct ctl_arg *a = req->cmd->args; a->name; a++)
		if (a->required && !json_object_get(req->args, a->name))
			bug("%s accepted without %s", req->cmd->name, a->name);
	json_decref(one_line(ctl_reply(req->id, json_pack("{s:s}", "command", req->cmd->name))));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_lines lb;
	size_t chunk, pos = 1;
	bool overlong_pending = false;

	if (size < 1 || ctl_lines_init(&lb) < 0)
		return 0;
	chunk = (size_t)1 << (data[0] % 12);
	while (pos < size) {
		size_t room, n, len;
		char *p = ctl_lines_space(&lb, &room), *line;
		int r;

		if (!room)
			bug("no room to read into");
		n = size - pos < chunk ? size - pos : chunk;
		n = n < room ? n : room;
		memcpy(p, data + pos, n);
		ctl_lines_added(&lb, n);
		pos += n;
		while ((r = ctl_lines_next(&lb, &line, &len)) != 0) {
			struct ctl_request req;
			json_t *reply;

			if (r < 0) {
				if (overlong_pending)
					bug("one overlong line reported twice");
				overlong_pending = true;
				continue;
			}
			overlong_pending = false;
			if (len >= CTL_LINE_MAX || memchr(line, '\n', len) || line[len])
				bug("a line of %zu bytes, or with its newline", len);
			if (ctl_request_parse(line, len, &req, &reply) == 0) {
				if (reply)
					bug("an accepted request with an error reply");
				check_request(&req);
				ctl_request_free(&req);
			} else {
				if (!reply)
					bug("a refused request without an error reply");
				check_error(reply);
			}
		}
	}
	ctl_lines_free(&lb);
	return 0;
}

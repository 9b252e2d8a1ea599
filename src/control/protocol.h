/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control protocol (docs/control.md): one JSON object a line over a
 * Unix stream socket.  This is the protocol alone, with no KVM and no
 * sockets: framing lines, parsing and checking requests against the
 * command table, and encoding replies, errors, events and the greeting.
 * The server that speaks it is the supervisor's (src/vmm/control.c), the
 * client `vsrv ctl` (src/cli/ctl.c); the fuzzer drives this file directly.
 *
 * Everything a client sends is untrusted: a line is bounded
 * (CTL_LINE_MAX), a request must be an object with an id, a known
 * command and arguments of the types the command takes, and anything
 * else is answered with an error reply naming the problem.
 */
#ifndef VSRV_CONTROL_PROTOCOL_H
#define VSRV_CONTROL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Bumped when a command or reply changes meaning; additions keep it. */
#define CTL_PROTOCOL_VERSION	1
/* The longest line either side sends, newline included. */
#define CTL_LINE_MAX		(64u << 10)
/* An id is a string of at most this many bytes, or an integer. */
#define CTL_ID_MAX		256
/* A checkpoint's name: letters, digits, '.', '_', '-' (it names a file). */
#define CTL_NAME_MAX		64

/* The VM's states, as `status` and the `state` event name them. */
enum ctl_state {
	CTL_STATE_STARTING,	/* a boot's process sets the VM up */
	CTL_STATE_RUNNING,
	CTL_STATE_PAUSED,
	CTL_STATE_SHUTTING_DOWN,	/* asked to shut down, not off yet */
	CTL_STATE_SAVING,
	CTL_STATE_OFF,		/* ended: vsrv is exiting */
};
const char *ctl_state_name(enum ctl_state s);

/* CTL_ARG_WORD: a string that is one of the argument's words. */
enum ctl_arg_type { CTL_ARG_STRING, CTL_ARG_UINT, CTL_ARG_BOOL, CTL_ARG_WORD };

struct ctl_arg {
	const char *name;
	enum ctl_arg_type type;
	bool required;
	uint64_t min, max;	/* CTL_ARG_UINT's range; a string's length */
	const char *const *words;	/* CTL_ARG_WORD's, ended by NULL */
};

#define CTL_ARGS_MAX	4

struct ctl_command {
	const char *name;
	const char *summary;	/* for `vsrv ctl --help` and docs */
	struct ctl_arg args[CTL_ARGS_MAX];	/* ended by a NULL name */
};

/* Every command, ended by a NULL name. */
extern const struct ctl_command ctl_commands[];
const struct ctl_command *ctl_command_find(const char *name);

/* A checked request: root owns everything, the rest points into it. */
struct ctl_request {
	json_t *root;
	json_t *id;
	const struct ctl_command *cmd;
	json_t *args;		/* an object, empty when none were given */
};

/* Error codes (docs/control.md, "Errors"). */
#define CTL_E_BAD_JSON		"bad-json"
#define CTL_E_BAD_REQUEST	"bad-request"
#define CTL_E_UNKNOWN_COMMAND	"unknown-command"
#define CTL_E_BAD_ARGUMENTS	"bad-arguments"
#define CTL_E_LINE_TOO_LONG	"line-too-long"
#define CTL_E_WRONG_STATE	"wrong-state"
#define CTL_E_BUSY		"busy"
#define CTL_E_FAILED		"failed"
#define CTL_E_VM_ENDED		"vm-ended"
#define CTL_E_NOT_SUPPORTED	"not-supported"

/*
 * Parses and checks one line (without its newline).  0 and req filled;
 * or -EINVAL and *reply an error reply to send (its id the request's
 * when it had a usable one, else null).
 */
int ctl_request_parse(const char *line, size_t len, struct ctl_request *req, json_t **reply);
void ctl_request_free(struct ctl_request *req);
/* The arguments, by name (defaults when absent). */
const char *ctl_arg_str(const struct ctl_request *req, const char *name);
uint64_t ctl_arg_uint(const struct ctl_request *req, const char *name, uint64_t def);
bool ctl_arg_bool(const struct ctl_request *req, const char *name, bool def);

/* Messages.  Each returns a new object (NULL only when out of memory);
 * those taking a json_t * for data steal the reference. */
json_t *ctl_greeting(const char *version);
json_t *ctl_reply(json_t *id, json_t *ret);
json_t *ctl_error(json_t *id, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
json_t *ctl_event(const char *name, json_t *data);
/* One line, newline included, in a malloc'd buffer: *len its length. */
char *ctl_encode(json_t *msg, size_t *len);

/*
 * Framing: bytes in, lines out.  A line longer than CTL_LINE_MAX is
 * reported once (-E2BIG) and skipped up to its newline, so that one
 * oversized request costs its sender one error and the stream goes on.
 */
struct ctl_lines {
	char *buf;
	size_t len;		/* bytes held, none of them a newline */
	size_t start;		/* where the next line begins */
	bool skipping;		/* inside an overlong line */
};

int ctl_lines_init(struct ctl_lines *lb);
void ctl_lines_free(struct ctl_lines *lb);
/* Room to read into: *n bytes at the returned pointer (never 0). */
char *ctl_lines_space(struct ctl_lines *lb, size_t *n);
void ctl_lines_added(struct ctl_lines *lb, size_t n);
/* 1 and the next whole line (NUL-terminated, without its newline);
 * 0 when none is complete; -E2BIG for an overlong one. */
int ctl_lines_next(struct ctl_lines *lb, char **line, size_t *len);

#endif

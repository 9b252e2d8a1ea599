/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A client of vsrvd's API (client.c), for `vsrv vm` and `vsrv net`.
 */
#ifndef VSRV_CLIENT_H
#define VSRV_CLIENT_H

#include <jansson.h>

struct client {
	void *curl;
	char *socket;		/* unix: the socket's path, else NULL */
	char *base;		/* "http://localhost" for a socket */
	char *where;		/* for messages */
	char *token;
};

/* 0, or an exit status after printing why. */
int client_init(struct client *c, const char *connect, const char *token_file);
void client_free(struct client *c);
/* The HTTP status (< 400) and the answer in *out; -1 after printing the
 * service's error (or why it could not be reached). */
int client_call(struct client *c, const char *method, const char *path, json_t *body,
		json_t **out);

/* Options every client subcommand takes. */
enum {
	OPT_CONNECT = 0x2000,
	OPT_TOKEN_FILE,
	OPT_CLIENT_JSON,
	OPT_CLIENT_HELP,
};
#define CLIENT_OPTS \
	{ "connect", required_argument, NULL, OPT_CONNECT }, \
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE }, \
	{ "json", no_argument, NULL, OPT_CLIENT_JSON }, \
	{ "help", no_argument, NULL, OPT_CLIENT_HELP }

/* vm.c: vsrv vm, vsrv net (argv[0] is "vm" or "net"). */
int client_vm_main(int argc, char **argv);
int client_net_main(int argc, char **argv);
/* console.c: vsrv console NAME. */
int client_console_main(int argc, char **argv);

#endif

/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A client of vsrvd's API (client.c), for `vsrv vm`, `vsrv net`,
 * `vsrv console` and `vsrv job`.
 */
#ifndef VSRV_CLIENT_H
#define VSRV_CLIENT_H

#include <stdbool.h>

#include <jansson.h>

struct client {
	void *curl;
	char *socket;		/* unix: the socket's path, else NULL */
	char *base;		/* "http://localhost" for a socket */
	char *where;		/* for messages */
	char *token;
	char *cacert;		/* https: the CA to verify vsrvd by, else the system's */
	char error[256];	/* libcurl's detail (CURL_ERROR_SIZE) */
};

/* 0, or an exit status after printing why. */
int client_init(struct client *c, const char *connect, const char *token_file,
		const char *cacert);
void client_free(struct client *c);
/* The HTTP status (< 400) and the answer in *out; -1 after printing the
 * service's error (or why it could not be reached). */
int client_call(struct client *c, const char *method, const char *path, json_t *body,
		json_t **out);
/* What every transfer needs, after curl_easy_reset: the socket, TLS's
 * CA, no signals. */
void client_setup(struct client *c);
/* Prints why a transfer failed (a CURLcode). */
void client_failed(struct client *c, int curl_code);

/* The API's JSON as it is (--json), indented. */
void client_print_json(json_t *v);
/* "key value" lines, in the answer's order, arrays and objects as JSON. */
void client_print_fields(json_t *o);

/* Options every client subcommand takes. */
enum {
	OPT_CONNECT = 0x2000,
	OPT_TOKEN_FILE,
	OPT_CACERT,
	OPT_CLIENT_JSON,
	OPT_CLIENT_HELP,
};
/* What CLIENT_OPTS set. */
struct client_opts {
	const char *connect, *token_file, *cacert;
	bool json;
};
/* 1 if c is one of CLIENT_OPTS (taken into o), -1 for --help (usage
 * printed), 0 for any other option. */
int client_opt(int c, struct client_opts *o, const char *usage);
/* A client for o's --connect, --token-file and --cacert (client_init). */
int client_init_opts(struct client *c, const struct client_opts *o);
#define CLIENT_OPTS \
	{ "connect", required_argument, NULL, OPT_CONNECT }, \
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE }, \
	{ "cacert", required_argument, NULL, OPT_CACERT }, \
	{ "json", no_argument, NULL, OPT_CLIENT_JSON }, \
	{ "help", no_argument, NULL, OPT_CLIENT_HELP }
#define CLIENT_CONNECT_USAGE \
	"[--connect unix:PATH|http://HOST:PORT|https://HOST:PORT] [--token-file FILE]\n" \
	"  [--cacert FILE]"
#define CLIENT_USAGE \
	"every command: " CLIENT_CONNECT_USAGE " [--json]\n" \
	"(default: $VSRV_CONNECT, else vsrvd's standard socket; over TCP, $VSRV_TOKEN;\n" \
	"over https, $VSRV_CACERT, else the system's CAs)"

/* vm.c: vsrv vm, vsrv net (argv[0] is "vm" or "net"). */
int client_vm_main(int argc, char **argv);
int client_net_main(int argc, char **argv);
/* console.c: vsrv console NAME. */
int client_console_main(int argc, char **argv);
/* job.c: vsrv job (argv[0] is "job"). */
int client_job_main(int argc, char **argv);

#endif

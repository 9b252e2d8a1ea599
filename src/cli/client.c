// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The command line's side of vsrvd's API, on libcurl: where the service is
 * (--connect unix:PATH|http://HOST:PORT|https://HOST:PORT, else
 * $VSRV_CONNECT, else the standard socket), one request, and its answer as
 * JSON.  Over TCP the bearer token comes from $VSRV_TOKEN or --token-file;
 * over https the service is verified (its name or address in its
 * certificate, which a CA vouches for): the CA is --cacert's or
 * $VSRV_CACERT's, else the system's.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"

struct buf {
	char *data;
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *opaque)
{
	struct buf *b = opaque;
	char *nd = realloc(b->data, b->len + size * n + 1);

	if (!nd)
		return 0;
	memcpy(nd + b->len, p, size * n);
	b->data = nd;
	b->len += size * n;
	b->data[b->len] = 0;
	return size * n;
}

static char *default_socket(void)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char *p = NULL;

	if (geteuid() == 0)
		return strdup("/var/lib/vsrv/vsrvd.sock");
	if (xdg && xdg[0] == '/')
		return asprintf(&p, "%s/vsrv/vsrvd.sock", xdg) < 0 ? NULL : p;
	if (home)
		return asprintf(&p, "%s/.local/share/vsrv/vsrvd.sock", home) < 0 ? NULL : p;
	return NULL;
}

int client_init(struct client *c, const char *connect, const char *token_file,
		const char *cacert)
{
	const char *spec = connect ? connect : getenv("VSRV_CONNECT");
	const char *token = getenv("VSRV_TOKEN");

	memset(c, 0, sizeof(*c));
	if (!cacert && getenv("VSRV_CACERT") && *getenv("VSRV_CACERT"))
		cacert = getenv("VSRV_CACERT");
	/* Said here: libcurl would only say that the CA file is bad. */
	if (cacert && access(cacert, R_OK) < 0) {
		cli_err("%s: %s", cacert, strerror(errno));
		return 1;
	}
	if (!spec || !*spec) {
		c->socket = default_socket();
		c->base = strdup("http://localhost");
		c->where = c->socket ? strdup(c->socket) : NULL;
	} else if (!strncmp(spec, "unix:", 5) && spec[5]) {
		c->socket = strdup(spec + 5);
		c->base = strdup("http://localhost");
		c->where = strdup(spec);
	} else if ((!strncmp(spec, "http://", 7) && spec[7]) ||
		   (!strncmp(spec, "https://", 8) && spec[8])) {
		size_t n = strlen(spec);

		c->base = strndup(spec, spec[n - 1] == '/' ? n - 1 : n);
		c->where = strdup(spec);
	} else {
		cli_err("--connect: '%s' is not unix:PATH, http://HOST:PORT or https://HOST:PORT",
			spec);
		return EXIT_USAGE;
	}
	if (!c->base || !c->where) {
		cli_err("no service to connect to: give --connect or set VSRV_CONNECT");
		return EXIT_USAGE;
	}
	if (token_file) {
		char buf[256] = "";
		FILE *f = fopen(token_file, "re");

		if (!f || !fgets(buf, sizeof(buf), f)) {
			cli_err("%s: %s", token_file, f ? "empty" : strerror(errno));
			if (f)
				fclose(f);
			return 1;
		}
		fclose(f);
		buf[strcspn(buf, "\r\n")] = 0;
		c->token = strdup(buf);
	} else if (token) {
		c->token = strdup(token);
	}
	c->cacert = cacert ? strdup(cacert) : NULL;
	c->curl = curl_easy_init();
	return c->curl ? 0 : 1;
}

void client_free(struct client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->socket);
	free(c->base);
	free(c->where);
	free(c->token);
	free(c->cacert);
}

void client_setup(struct client *c)
{
	if (c->socket)
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket);
	if (c->cacert)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->cacert);
	c->error[0] = 0;
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->error);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
}

void client_failed(struct client *c, int code)
{
	switch (code) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		/* vsrvd is there, but TLS failed: libcurl's detail says why
		 * ("SSL certificate problem: self-signed certificate"). */
		cli_err("%s: %s", c->where, c->error[0] ? c->error : curl_easy_strerror(code));
		break;
	default:
		cli_err("%s: %s (is vsrvd running?)", c->where, curl_easy_strerror(code));
	}
}

int client_call(struct client *c, const char *method, const char *path, json_t *body,
		json_t **out)
{
	struct curl_slist *hdrs = NULL;
	struct buf b = { 0 };
	char *text = NULL, *url = NULL, auth[300];
	json_error_t je;
	long status = 0;
	CURLcode cr;

	*out = NULL;
	if (asprintf(&url, "%s%s", c->base, path) < 0)
		return -1;
	curl_easy_reset(c->curl);
	client_setup(c);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, text);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
	}
	if (c->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	cr = curl_easy_perform(c->curl);
	curl_slist_free_all(hdrs);
	free(text);
	free(url);
	if (cr != CURLE_OK) {
		client_failed(c, cr);
		free(b.data);
		return -1;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	*out = b.len ? json_loadb(b.data, b.len, 0, &je) : NULL;
	if (status >= 400) {
		const char *msg = json_string_value(json_object_get(*out, "error"));

		cli_err("%s", msg ? msg : b.data ? b.data : "request failed");
		json_decref(*out);
		*out = NULL;
	} else if (!*out) {
		cli_err("%s: the answer is not JSON", c->where);
	}
	free(b.data);
	return status >= 400 || !*out ? -1 : (int)status;
}

void client_print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		puts(s);
	free(s);
}

void client_print_fields(json_t *o)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		printf("%-16s %s\n", key, s ? s : json_string_value(v));
		free(s);
	}
}

int client_opt(int c, struct client_opts *o, const char *usage)
{
	switch (c) {
	case OPT_CONNECT:
		o->connect = optarg;
		return 1;
	case OPT_TOKEN_FILE:
		o->token_file = optarg;
		return 1;
	case OPT_CACERT:
		o->cacert = optarg;
		return 1;
	case OPT_CLIENT_JSON:
		o->json = true;
		return 1;
	case OPT_CLIENT_HELP:
		printf("usage: %s\n", usage);
		return -1;
	}
	return 0;
}

int client_init_opts(struct client *c, const struct client_opts *o)
{
	return client_init(c, o->connect, o->token_file, o->cacert);
}

// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The TCP listener's certificate and key (tls_cert, tls_key), checked
 * before anything starts so that a bad one is one line naming the file
 * and the problem, not a listener that does not start for reasons only
 * libmicrohttpd's log would tell.  Parsed with GnuTLS, which
 * libmicrohttpd serves HTTPS with: what passes here, it takes.
 *
 * The key must not be readable by others (mode 0600, or 0640 for a group
 * such as Debian's ssl-cert); the certificate must be valid now and be the
 * key's (its public key's id); a key with a passphrase is refused, as
 * nobody is there to type it.  The files are read once, at start: a
 * renewed certificate takes a restart, which running VMs do not notice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "vsrvd.h"

#define PEM_MAX		(1u << 20)

/* The file, NUL-terminated, and its mode. */
static int read_pem(const char *what, const char *path, char **out, mode_t *mode,
		    struct vsrvd_err *e)
{
	struct stat st;
	size_t len = 0;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return vsrvd_fail(e, 0, r, "%s: %s: %s", what, path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode) || st.st_size > PEM_MAX) {
		close(fd);
		return vsrvd_fail(e, 0, -EINVAL, "%s: %s: %s", what, path,
				  S_ISREG(st.st_mode) ? "larger than 1 MiB: not a PEM file" :
				  "not a file");
	}
	buf = malloc((size_t)st.st_size + 1);
	while (buf && len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf || len != (size_t)st.st_size) {
		free(buf);
		return vsrvd_fail(e, 0, -EIO, "%s: %s: %s", what, path,
				  buf ? "changed while read" : "out of memory");
	}
	buf[len] = 0;
	*out = buf;
	*mode = st.st_mode;
	return 0;
}

/* GnuTLS's message, without its full stop. */
static const char *gnutls_why(int r, char *buf, size_t len)
{
	snprintf(buf, len, "%s", gnutls_strerror(r));
	if (buf[0] && buf[strlen(buf) - 1] == '.')
		buf[strlen(buf) - 1] = 0;
	return buf;
}

static void utc(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "%lld", (long long)t);
}

static int check_cert(const char *path, const char *pem, gnutls_x509_crt_t *out,
		      struct vsrvd_err *e)
{
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };
	gnutls_x509_crt_t *list = NULL;
	unsigned n = 0;
	char why[128], when[40];
	time_t now = time(NULL), t;
	int r;

	r = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	if (r == GNUTLS_E_NO_CERTIFICATE_FOUND || (r >= 0 && !n))
		return vsrvd_fail(e, 0, -EINVAL, "tls_cert: %s: no PEM certificate in it", path);
	if (r < 0)
		return vsrvd_fail(e, 0, -EINVAL, "tls_cert: %s: not a valid certificate: %s", path,
				  gnutls_why(r, why, sizeof(why)));
	/* The first is the server's; the rest, if any, its chain. */
	r = 0;
	if ((t = gnutls_x509_crt_get_expiration_time(list[0])) != (time_t)-1 && t < now) {
		utc(t, when, sizeof(when));
		r = vsrvd_fail(e, 0, -EINVAL, "tls_cert: %s: expired on %s", path, when);
	} else if ((t = gnutls_x509_crt_get_activation_time(list[0])) != (time_t)-1 && t > now) {
		utc(t, when, sizeof(when));
		r = vsrvd_fail(e, 0, -EINVAL, "tls_cert: %s: not valid before %s", path, when);
	}
	for (unsigned i = r ? 0 : 1; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	if (!r)
		*out = list[0];
	gnutls_free(list);
	return r;
}

static int check_key(const char *path, const char *pem, mode_t mode, gnutls_x509_crt_t crt,
		     const char *cert_path, struct vsrvd_err *e)
{
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };
	unsigned char kid[64], cid[64];
	size_t klen = sizeof(kid), clen = sizeof(cid);
	gnutls_x509_privkey_t key;
	char why[128];
	int r;

	if (mode & 0007)
		return vsrvd_fail(e, 0, -EPERM,
				  "tls_key: %s: readable by others (mode %04o): make it 0600 or 0640",
				  path, (unsigned)(mode & 07777));
	if (!strstr(pem, "-----BEGIN "))
		return vsrvd_fail(e, 0, -EINVAL, "tls_key: %s: no PEM private key in it", path);
	if (strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
	    strstr(pem, "Proc-Type: 4,ENCRYPTED"))
		return vsrvd_fail(e, 0, -EINVAL,
				  "tls_key: %s: encrypted with a passphrase, which vsrvd cannot be given",
				  path);
	if (gnutls_x509_privkey_init(&key) < 0)
		return vsrvd_fail(e, 0, -ENOMEM, "tls_key: out of memory");
	r = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		gnutls_x509_privkey_deinit(key);
		return vsrvd_fail(e, 0, -EINVAL, "tls_key: %s: not a valid private key: %s", path,
				  gnutls_why(r, why, sizeof(why)));
	}
	r = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, kid, &klen);
	if (r >= 0)
		r = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, cid, &clen);
	gnutls_x509_privkey_deinit(key);
	if (r < 0)
		return vsrvd_fail(e, 0, -EINVAL, "tls_key: %s: %s", path,
				  gnutls_why(r, why, sizeof(why)));
	if (klen != clen || memcmp(kid, cid, klen))
		return vsrvd_fail(e, 0, -EINVAL, "tls_key: %s: not the key of the certificate in %s",
				  path, cert_path);
	return 0;
}

int tls_load(const struct vsrvd_config *cfg, char **cert, char **key, struct vsrvd_err *e)
{
	gnutls_x509_crt_t crt = NULL;
	mode_t cmode, kmode;
	int r;

	*cert = *key = NULL;
	r = read_pem("tls_cert", cfg->tls_cert, cert, &cmode, e);
	if (!r)
		r = check_cert(cfg->tls_cert, *cert, &crt, e);
	if (!r)
		r = read_pem("tls_key", cfg->tls_key, key, &kmode, e);
	if (!r)
		r = check_key(cfg->tls_key, *key, kmode, crt, cfg->tls_cert, e);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (r) {
		free(*cert);
		free(*key);
		*cert = *key = NULL;
	}
	return r;
}

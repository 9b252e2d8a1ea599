/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What a VM's configuration accepts as its name and uuid (config.c,
 * docs/vm-config.md); vsrvd, which writes such configurations, narrows
 * both (src/daemon/vmspec.c) and so calls these too.
 */
#ifndef VSRV_IDENT_H
#define VSRV_IDENT_H

#include <stdbool.h>
#include <string.h>

/* 1 to 64 letters, digits, '.', '_' and '-'. */
static inline bool ident_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* 8-4-4-4-12 hex digits; upper-case ones only when upper_ok. */
static inline bool ident_uuid_ok(const char *s, bool upper_ok)
{
	const char *hex = upper_ok ? "0123456789abcdefABCDEF" : "0123456789abcdef";

	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !strchr(hex, s[i]))
			return false;
	}
	return true;
}

#endif

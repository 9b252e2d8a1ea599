/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers shared by the unit tests: a temporary directory per test
 * program, disk creation and opening that fail the test with libvhd's own
 * message, and deterministic pseudo-random bytes. */
#ifndef VSRV_TEST_UTIL_H
#define VSRV_TEST_UTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "vhd-private.h"

/* NAME inside the test directory; the last eight results stay valid. */
const char *tpath(const char *name);
void tcreate(const char *path, enum vhd_type type, uint64_t size,
	     uint32_t block_size, const char *parent);
struct vhd *topen(const char *path, unsigned flags);
uint64_t trand(void);
/* vhd_map() over the whole of v agrees with model: every DATA extent's
 * bytes are in its layer's file at file_off, every ZERO extent is zeros. */
void texpect_extents(struct vhd *v, const uint8_t *model, uint64_t size);
void tfill(uint8_t *buf, size_t len);
/* Makes the test directory, runs the group, removes the directory when
 * every test passed (a failure leaves it for inspection). */
int trun(const char *name, const struct CMUnitTest *tests, size_t n);

#define TRUN(tests) trun(__FILE__, tests, sizeof(tests) / sizeof(tests[0]))

#endif

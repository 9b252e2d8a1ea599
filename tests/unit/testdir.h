/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef TESTDIR_H
#define TESTDIR_H

#include <stddef.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

/* Makes the directory `dir` (a mkdtemp template), runs the tests, and
 * removes it when they all pass (a failure leaves it to look at). */
int testdir_run(char *dir, const char *name, const struct CMUnitTest *tests,
		size_t n);

#define TESTDIR_RUN(dir, tests) \
	testdir_run(dir, #tests, tests, sizeof(tests) / sizeof((tests)[0]))

#endif

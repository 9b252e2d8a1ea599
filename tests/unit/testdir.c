// SPDX-License-Identifier: GPL-2.0-or-later
#include <stdio.h>
#include <stdlib.h>

#include "testdir.h"

int testdir_run(char *dir, const char *name, const struct CMUnitTest *tests,
		size_t n)
{
	char cmd[300];
	int r;

	if (!mkdtemp(dir))
		return 1;
	r = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	if (r == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return r;
}

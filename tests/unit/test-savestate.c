// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The saved-state reader (src/vmm/snapshot.c, vmstate.c, savefile.c, the
 * devices' loads) on files made here with savefile.c's writer, whose
 * checksums are right: what the fuzzer (tests/fuzz/fuzz-savefile.c) found
 * the reader took or said wrongly, each refused now with its exact line.
 * No KVM: the VM is guest memory and a device registry.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/devices/state.h"
#include "../../src/vmm/savefile.h"
#include "../../src/vmm/vmm.h"

static char tmpdir[64] = "/tmp/vsrv-test-savestate-XXXXXX";
static char path[128];

struct section {
	const char *tag;
	uint32_t index;
	const void *data;
	size_t len;
};

/* A saved state of these sections, at path. */
static void write_state(const struct section *secs, unsigned n)
{
	struct sf_writer w;
	uint64_t bytes;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(sf_writer_init(&w, fd), 0);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(sf_begin(&w, secs[i].tag, secs[i].index), 0);
		assert_int_equal(sf_write(&w, secs[i].data, secs[i].len), 0);
		assert_int_equal(sf_end(&w), 0);
	}
	assert_int_equal(sf_finish(&w, "test", &bytes), 0);
	sf_writer_free(&w);
	close(fd);
}

/* vm_restore_config() of a file whose configuration is conf: its line,
 * "" when it takes it. */
static const char *config_line(const char *conf)
{
	static char err[600];
	struct section s = { "CONF", 0, conf, strlen(conf) };
	struct vmm_config cfg = { .restore = path };

	write_state(&s, 1);
	err[0] = '\0';
	if (vm_restore_config(&cfg, err, sizeof(err)) == 0)
		assert_string_equal(err, "");
	else
		assert_true(err[0]);
	vmm_config_free(&cfg);
	return err;
}

static void expect_config(const char *conf, const char *why)
{
	char want[600];

	snprintf(want, sizeof(want), "%s: corrupt: its configuration does not read%s", path, why);
	assert_string_equal(config_line(conf), want);
}

/* The fuzzer's first find: a configuration of 0 vCPUs was taken, and one
 * of 17 or more would have been made, past the VM's VM_MAX_CPUS vCPUs;
 * memory in no whole pages, or below what a VM can have. */
static void test_config_bounds(void **state)
{
	static const char ok[] = "{\"vcpus\":16,\"memory\":16777216,\"kernel\":null,"
				 "\"rng\":true}";

	assert_string_equal(config_line(ok), "");
	expect_config("{\"vcpus\":0,\"memory\":16777216}", " (vcpus: expected 1 to 16)");
	expect_config("{\"vcpus\":17,\"memory\":16777216}", " (vcpus: expected 1 to 16)");
	expect_config("{\"vcpus\":-1,\"memory\":16777216}", " (vcpus: expected 1 to 16)");
	expect_config("{\"vcpus\":\"2\",\"memory\":16777216}", " (vcpus: expected 1 to 16)");
	expect_config("{\"vcpus\":1,\"memory\":16777217}",
		      " (memory: expected whole pages from 16 MiB to 1 TiB)");
	expect_config("{\"vcpus\":1,\"memory\":4096}",
		      " (memory: expected whole pages from 16 MiB to 1 TiB)");
	expect_config("{\"vcpus\":1,\"memory\":-4096}",
		      " (memory: expected whole pages from 16 MiB to 1 TiB)");
	expect_config("{\"vcpus\":1,\"memory\":16777216,\"kernel\":5}",
		      " (kernel: expected a string)");
	expect_config("{\"vcpus\":1,\"memory\":16777216,\"rng\":\"yes\"}",
		      " (rng: expected true or false)");
	expect_config("[1]", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_bounds),
	};
	char cmd[128];
	int r;

	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(path, sizeof(path), "%s/vm.state", tmpdir);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		r = r ? r : 1;
	return r;
}

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

#include "../../src/devices/devices.h"
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
	expect_config("{\"vcpus\":1,\"memory\":16777216,\"halt_poll_ns\":-1}",
		      " (halt_poll_ns: expected 0 to 1000000000)");
	expect_config("{\"vcpus\":1,\"memory\":16777216,\"halt_poll_ns\":1000000001}",
		      " (halt_poll_ns: expected 0 to 1000000000)");
	expect_config("{\"vcpus\":1,\"memory\":16777216,\"halt_poll_ns\":\"0\"}",
		      " (halt_poll_ns: expected 0 to 1000000000)");
	assert_string_equal(config_line("{\"vcpus\":1,\"memory\":16777216,"
					"\"halt_poll_ns\":1000000000}"), "");
	expect_config("[1]", "");
}

/* A VMST stream that reads: both PICs, the IOAPIC, the PIT, the clock. */
static void vmst(struct dev_state *s)
{
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit = { 0 };
	struct kvm_clock_data clock = { 0 };

	state_put_section(s, "VMST", 1);
	for (uint32_t i = 0; i < 3; i++) {
		chip = (struct kvm_irqchip){ .chip_id = i };
		state_put_u32(s, sizeof(chip));
		state_put_bytes(s, &chip, sizeof(chip));
	}
	state_put_u32(s, sizeof(pit));
	state_put_bytes(s, &pit, sizeof(pit));
	state_put_u32(s, sizeof(clock));
	state_put_bytes(s, &clock, sizeof(clock));
}

static int no_load(void *opaque, struct dev_state *s)
{
	return -EIO;
}

static int no_save(void *opaque, struct dev_state *s)
{
	return -EIO;
}

/* The fuzzer's second find: a device's name in the file, quoted in the
 * refusal of another device, could hold a newline or any byte: now each
 * that is not printable is '?', and at most 64 are quoted. */
static void test_device_name_quoted(void **state)
{
	static const struct vm_device_ops ops = {
		.quiesce = state_quiesce_none, .resume = state_resume_none,
		.save = no_save, .load = no_load,
	};
	struct vm_device d = { .name = "uart-com1", .ops = &ops };
	struct dev_state v, dev;
	struct vm_restore *rs;
	struct section secs[2];
	char err[600], want[600];
	char name[80];
	struct vm vm;

	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = vm.memfd = -1;
	vm_add_device(&vm, &d);
	state_init(&v);
	vmst(&v);
	state_init(&dev);
	state_put_u16(&dev, 10);
	state_put_bytes(&dev, "uart\ncom1\x7f", 10);
	secs[0] = (struct section){ "VMST", 0, v.buf, v.len };
	secs[1] = (struct section){ "DEV ", 0, dev.buf, dev.len };
	write_state(secs, 2);
	assert_int_equal(vm_restore_read(&vm, path, &rs, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: saved with uart?com1? where this VM has uart-com1 (a "
		 "restore needs the same devices)", path);
	assert_string_equal(err, want);

	memset(name, 'x', sizeof(name));
	state_free(&dev);
	state_put_u16(&dev, sizeof(name));
	state_put_bytes(&dev, name, sizeof(name));
	secs[1] = (struct section){ "DEV ", 0, dev.buf, dev.len };
	write_state(secs, 2);
	assert_int_equal(vm_restore_read(&vm, path, &rs, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: saved with %.64s where this VM has uart-com1 (a "
		 "restore needs the same devices)", path, name);
	assert_string_equal(err, want);
	state_free(&v);
	state_free(&dev);
	vm_remove_device(&vm, &d);
}

/* An RTC state whose offset from the host's time is `offset` seconds:
 * the device's own, with that offset put in. */
static int rtc_load_offset(struct vm *vm, int64_t offset)
{
	struct vm_device *d = vm->devices;
	struct dev_state s;
	int r;

	state_init(&s);
	assert_int_equal(d->ops->save(d->opaque, &s), 0);
	/* "RTC ", its version, the index register, the RAM, the offset. */
	assert_true(s.len > 137 + 8);
	for (unsigned i = 0; i < 8; i++)
		s.buf[137 + i] = (uint8_t)((uint64_t)offset >> (8 * i));
	r = d->ops->load(d->opaque, &s);
	state_free(&s);
	return r;
}

/* Found by reading the devices' loads, which the fuzz target reached
 * without hitting this value (its input now:
 * tests/fuzz/corpus/savefile/regress-rtc-offset): an RTC offset near the
 * largest int64_t overflowed at every read of the time (the host's
 * seconds added to it).  Offsets as far as a guest can set (years to
 * 25599) still load. */
static void test_rtc_offset(void **state)
{
	static const int64_t year = 366ll * 86400, max = 40000 * year;
	struct rtc *rtc;
	struct vm vm;

	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = vm.memfd = -1;
	vm.opts.nr_cpus = 1;
	assert_int_equal(rtc_init(&vm, &rtc), 0);
	assert_int_equal(rtc_load_offset(&vm, 0), 0);
	assert_int_equal(rtc_load_offset(&vm, 25600 * year), 0);
	assert_int_equal(rtc_load_offset(&vm, -2000 * year), 0);
	assert_int_equal(rtc_load_offset(&vm, max), 0);
	assert_int_equal(rtc_load_offset(&vm, -max), 0);
	assert_int_equal(rtc_load_offset(&vm, max + 1), -EINVAL);
	assert_int_equal(rtc_load_offset(&vm, -max - 1), -EINVAL);
	assert_int_equal(rtc_load_offset(&vm, INT64_MAX - 255), -EINVAL);
	assert_int_equal(rtc_load_offset(&vm, INT64_MIN), -EINVAL);
	rtc_destroy(rtc);
	free(vm.pio.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_bounds),
		cmocka_unit_test(test_device_name_quoted),
		cmocka_unit_test(test_rtc_offset),
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

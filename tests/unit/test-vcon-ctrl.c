// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * virtio-console's multiport protocol (src/devices/virtio/console-ctrl.c)
 * with no device around it: the messages it answers with, byte for byte;
 * the host side's changes folded into one message a port; the queue's
 * bound whatever the driver sends; saved state that comes back exactly,
 * and saved state that does not fit refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <linux/virtio_console.h>

#include "../../src/devices/state.h"
#include "../../src/devices/virtio/console-ctrl.h"

static const char *const names[] = { NULL, "org.vsrv.agent", "b" };

static void ports3(struct vcon_ctrl *c)
{
	vcon_ctrl_init(c, 3, names, true);
	vcon_ctrl_host_open(c, 0, true);
}

static int say(struct vcon_ctrl *c, uint32_t id, uint16_t event, uint16_t value)
{
	uint8_t m[VCON_MSG_LEN] = {
		(uint8_t)id, (uint8_t)(id >> 8), (uint8_t)(id >> 16), (uint8_t)(id >> 24),
		(uint8_t)event, (uint8_t)(event >> 8), (uint8_t)value, (uint8_t)(value >> 8),
	};
	char why[200];

	return vcon_ctrl_receive(c, m, sizeof(m), why, sizeof(why));
}

/* The next message is (id, event, value) [+ name]; it is then sent. */
static void next_is(struct vcon_ctrl *c, uint32_t id, uint16_t event, uint16_t value,
		    const char *name)
{
	uint8_t buf[VCON_MSG_MAX], want[VCON_MSG_MAX] = {
		(uint8_t)id, (uint8_t)(id >> 8), (uint8_t)(id >> 16), (uint8_t)(id >> 24),
		(uint8_t)event, (uint8_t)(event >> 8), (uint8_t)value, (uint8_t)(value >> 8),
	};
	size_t n = vcon_ctrl_next(c, buf);
	size_t len = VCON_MSG_LEN + (name ? strlen(name) : 0);

	if (name)
		memcpy(want + VCON_MSG_LEN, name, strlen(name));
	assert_int_equal(n, len);
	assert_memory_equal(buf, want, len);
	vcon_ctrl_sent(c);
}

static void nothing_next(struct vcon_ctrl *c)
{
	uint8_t buf[VCON_MSG_MAX];

	assert_int_equal(vcon_ctrl_next(c, buf), 0);
}

/* DEVICE_READY, answered by every port added. */
static void device_ready(struct vcon_ctrl *c)
{
	assert_int_equal(say(c, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1), 0);
	for (uint32_t p = 0; p < 3; p++)
		next_is(c, p, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
}

static void handshake(struct vcon_ctrl *c)
{
	device_ready(c);
	for (uint32_t p = 0; p < 3; p++)
		assert_int_equal(say(c, p, VIRTIO_CONSOLE_PORT_READY, 1), 0);
	next_is(c, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
	next_is(c, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	next_is(c, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "org.vsrv.agent");
	next_is(c, 2, VIRTIO_CONSOLE_PORT_NAME, 1, "b");
	nothing_next(c);
}

static void test_handshake(void **s)
{
	struct vcon_ctrl c;

	ports3(&c);
	assert_false(vcon_ctrl_takes_input(&c, 1));
	assert_true(vcon_ctrl_takes_input(&c, 0));	/* the console */
	handshake(&c);
	assert_int_equal(say(&c, 1, VIRTIO_CONSOLE_PORT_OPEN, 1), 0);
	assert_true(vcon_ctrl_takes_input(&c, 1));
	assert_false(vcon_ctrl_takes_input(&c, 2));
	assert_false(vcon_ctrl_takes_input(&c, 3));
}

static void test_host_side(void **s)
{
	struct vcon_ctrl c;

	ports3(&c);
	/* Before the port is ready: told after its name. */
	vcon_ctrl_host_open(&c, 2, true);
	device_ready(&c);
	assert_int_equal(say(&c, 2, VIRTIO_CONSOLE_PORT_READY, 1), 0);
	next_is(&c, 2, VIRTIO_CONSOLE_PORT_NAME, 1, "b");
	next_is(&c, 2, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	/* Changes while one is queued: one message with the latest state. */
	vcon_ctrl_host_open(&c, 2, false);
	vcon_ctrl_host_open(&c, 2, true);
	vcon_ctrl_host_open(&c, 2, false);
	assert_int_equal(c.len, 1);
	next_is(&c, 2, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
	/* What the driver knows already: nothing to say. */
	vcon_ctrl_host_open(&c, 2, false);
	nothing_next(&c);
	/* A reset forgets the driver's side, not the host's. */
	vcon_ctrl_host_open(&c, 1, true);
	vcon_ctrl_reset(&c);
	nothing_next(&c);
	device_ready(&c);
	assert_int_equal(say(&c, 1, VIRTIO_CONSOLE_PORT_READY, 1), 0);
	next_is(&c, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "org.vsrv.agent");
	next_is(&c, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
}

static void test_refusals(void **s)
{
	static const struct {
		uint32_t id;
		uint16_t event, value;
		const char *why;
	} bad[] = {
		{ 0, VIRTIO_CONSOLE_PORT_READY, 1, "control message: PORT_READY for port 0 before DEVICE_READY" },
		{ 0, VIRTIO_CONSOLE_DEVICE_READY, 3, "control message: DEVICE_READY with value 3 (0 or 1 expected)" },
		{ 3, VIRTIO_CONSOLE_PORT_OPEN, 1, "control message: PORT_OPEN for port 3, which does not exist (3 ports)" },
		{ 0, VIRTIO_CONSOLE_RESIZE, 0, "control message: event 5 (RESIZE) is not one a driver sends" },
		{ 0, 8, 0, "control message: event 8 is not one a driver sends" },
	};
	struct vcon_ctrl c;
	char why[200];
	uint8_t m[4] = { 0 };

	ports3(&c);
	assert_int_equal(vcon_ctrl_receive(&c, m, sizeof(m), why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "a control message of 4 bytes (8 expected)");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t b[VCON_MSG_LEN] = {
			(uint8_t)bad[i].id, 0, 0, 0, (uint8_t)bad[i].event, 0, (uint8_t)bad[i].value, 0,
		};

		assert_int_equal(vcon_ctrl_receive(&c, b, sizeof(b), why, sizeof(why)), -EINVAL);
		assert_string_equal(why, bad[i].why);
	}
	nothing_next(&c);
	/* The driver's own failure: taken, and worth a line. */
	assert_int_equal(say(&c, 0, VIRTIO_CONSOLE_DEVICE_READY, 0), 1);
	nothing_next(&c);
	/* A port the driver has not been told of yet. */
	assert_int_equal(say(&c, 0, VIRTIO_CONSOLE_DEVICE_READY, 1), 0);
	assert_int_equal(vcon_ctrl_receive(&c, (uint8_t[]){ 2, 0, 0, 0, 3, 0, 1, 0 },
					   VCON_MSG_LEN, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "control message: PORT_READY for port 2 before its PORT_ADD");
}

/* Whatever the driver says, in any order and again and again, the queue
 * holds at most three messages a port. */
static void test_bound(void **s)
{
	struct vcon_ctrl c;

	ports3(&c);
	for (int round = 0; round < 50; round++)
		for (uint32_t id = 0; id < 4; id++)
			for (uint16_t e = 0; e < 9; e++)
				for (uint16_t v = 0; v < 3; v++) {
					say(&c, id, e, v);
					vcon_ctrl_host_open(&c, id % 3, (round + e) & 1);
					assert_true(c.len <= 3 * c.nr_ports);
				}
}

static void test_save_load(void **s)
{
	const char *other[] = { NULL, "org.vsrv.agent", "c" };
	struct vcon_ctrl c, d;
	struct dev_state st;

	ports3(&c);
	handshake(&c);
	assert_int_equal(say(&c, 1, VIRTIO_CONSOLE_PORT_OPEN, 1), 0);
	vcon_ctrl_host_open(&c, 1, true);	/* queued, not yet sent */
	state_init(&st);
	vcon_ctrl_save(&c, &st);
	assert_int_equal(st.err, 0);

	/* The same ports, a client there now too: exactly what was. */
	ports3(&d);
	vcon_ctrl_host_open(&d, 1, true);
	state_rewind(&st);
	assert_int_equal(vcon_ctrl_load(&d, &st), 0);
	assert_true(vcon_ctrl_takes_input(&d, 1));
	next_is(&d, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
	nothing_next(&d);
	assert_int_equal(say(&d, 1, VIRTIO_CONSOLE_PORT_READY, 1), -EINVAL);

	/* The client gone meanwhile: the queued message says so. */
	ports3(&d);
	state_rewind(&st);
	assert_int_equal(vcon_ctrl_load(&d, &st), 0);
	next_is(&d, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);

	/* Other names, or another number of ports: refused, left reset. */
	vcon_ctrl_init(&d, 3, other, true);
	state_rewind(&st);
	assert_int_equal(vcon_ctrl_load(&d, &st), -EINVAL);
	assert_false(d.device_ready);
	nothing_next(&d);
	vcon_ctrl_init(&d, 2, names, true);
	state_rewind(&st);
	assert_int_equal(vcon_ctrl_load(&d, &st), -EINVAL);

	/* A queued message no device would have queued: a second PORT_OPEN
	 * for port 1 (port 2's, renumbered). */
	state_free(&st);
	state_init(&st);
	vcon_ctrl_host_open(&c, 2, true);
	assert_int_equal(c.len, 2);
	vcon_ctrl_save(&c, &st);
	st.buf[st.len - 8] = 1;
	ports3(&d);
	state_rewind(&st);
	assert_int_equal(vcon_ctrl_load(&d, &st), -EINVAL);
	st.buf[st.len - 8] = 2;
	ports3(&d);
	state_rewind(&st);
	assert_int_equal(vcon_ctrl_load(&d, &st), 0);
	/* Cut short: refused. */
	st.len -= 3;
	ports3(&d);
	state_rewind(&st);
	assert_int_not_equal(vcon_ctrl_load(&d, &st), 0);
	state_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_host_side),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_save_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

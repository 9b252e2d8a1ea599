// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The PC's keyboard controller (an 8042: data port 0x60, status and
 * command port 0x64) with an AT keyboard on its first port and nothing on
 * its second (mouse) port, and the PC's other reset path, the reset
 * control register at 0xcf9.
 *
 * What it is for: resetting the machine (command 0xFE, Linux's reboot=k;
 * 0xcf9, reboot=p), Linux's probe answering as a controller does (self
 * test, interface tests, the command byte, the port enable bits, the AUX
 * loopback), and a keyboard that is really there so that Ctrl-Alt-Del
 * pressed from outside (i8042_ctrl_alt_del) reaches Linux's atkbd driver.
 *
 * Bytes for the guest wait in a small output queue (a real 8042 has one
 * output register and the keyboard holds the rest); the head sets OBF, and
 * AUXDATA when it came from the mouse port.  IRQ 1 (keyboard) and IRQ 12
 * (mouse) follow OBF as the command byte enables them, dropping after each
 * read so every byte is an edge.
 *
 * The mouse port answers as an empty PS/2 socket: the controller's own
 * AUX loopback works, and a byte sent to the device (0xD4) comes back as a
 * timeout (status bit 6) with 0xFE, so Linux's psmouse probe fails fast.
 *
 * The keyboard: scan code set 2 with the controller translating to set 1
 * when the command byte says so; the commands Linux's atkbd sends are
 * acknowledged (0xFA) and answered (reset: 0xAA; identify: 0xAB 0x83, or
 * 0xAB 0x41 translated).  Its bytes wait while the keyboard port is
 * disabled in the command byte.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "state.h"

#define I8042_DATA		0x60
#define I8042_CMD		0x64
#define I8042_IRQ_KBD		1
#define I8042_IRQ_AUX		12
#define RESET_CONTROL_PORT	0xcf9

#define STR_OBF		0x01	/* output buffer full */
#define STR_SYS		0x04	/* system flag: self test passed */
#define STR_CMD		0x08	/* last write was to 0x64 */
#define STR_UNLOCKED	0x10	/* keyboard not inhibited by the keylock */
#define STR_AUXDATA	0x20	/* the output byte is from the mouse port */
#define STR_TIMEOUT	0x40

#define CTR_KBDINT	0x01
#define CTR_AUXINT	0x02
#define CTR_SYS		0x04
#define CTR_KBDDIS	0x10
#define CTR_AUXDIS	0x20
#define CTR_XLATE	0x40

#define OUTPORT_RESET	0x01	/* low resets the CPU */
#define OUTPORT_A20	0x02

#define KBD_ACK		0xfa
#define KBD_RESEND	0xfe
#define KBD_BAT_OK	0xaa

#define QUEUE_SIZE	16

struct byte_queue {
	uint8_t b[QUEUE_SIZE];
	bool aux[QUEUE_SIZE];
	unsigned head, count;
};

struct i8042 {
	pthread_mutex_t lock;
	struct vm *vm;
	uint8_t ram[32];	/* ram[0] is the command byte */
	uint8_t outport;
	uint8_t pending;	/* controller command waiting for its data byte */
	bool last_was_cmd;
	bool timeout;
	uint8_t last_out;	/* what reading an empty output buffer gives */
	struct byte_queue out;	/* what the guest reads from 0x60 */
	bool irq_kbd, irq_aux;

	/* The keyboard. */
	struct byte_queue kbd;	/* its bytes, waiting for the port to be enabled */
	uint8_t kbd_pending;	/* command waiting for its parameter */
	uint8_t kbd_set;	/* scan code set */
	bool kbd_scanning;

	/* 0xcf9 */
	atomic_uchar rcr;
	struct vm_device vmdev;
};

static bool queue_push(struct byte_queue *q, uint8_t b, bool aux)
{
	unsigned i = (q->head + q->count) % QUEUE_SIZE;

	if (q->count == QUEUE_SIZE)
		return false;
	q->b[i] = b;
	q->aux[i] = aux;
	q->count++;
	return true;
}

static uint8_t queue_pop(struct byte_queue *q, bool *aux)
{
	uint8_t b = q->b[q->head];

	if (aux)
		*aux = q->aux[q->head];
	q->head = (q->head + 1) % QUEUE_SIZE;
	q->count--;
	return b;
}

static void set_irq(struct i8042 *k, unsigned irq, bool *cur, bool level)
{
	if (*cur != level) {
		*cur = level;
		vm_irq_line(k->vm, irq, level);
	}
}

static void update_irq(struct i8042 *k)
{
	bool aux = k->out.count && k->out.aux[k->out.head];

	set_irq(k, I8042_IRQ_KBD, &k->irq_kbd,
		k->out.count && !aux && (k->ram[0] & CTR_KBDINT));
	set_irq(k, I8042_IRQ_AUX, &k->irq_aux,
		k->out.count && aux && (k->ram[0] & CTR_AUXINT));
}

static void out_push(struct i8042 *k, uint8_t b, bool aux)
{
	queue_push(&k->out, b, aux);
}

/* The keyboard's bytes cross to the controller while its port is enabled. */
static void kbd_flush(struct i8042 *k)
{
	while (k->kbd.count && !(k->ram[0] & CTR_KBDDIS) && k->out.count < QUEUE_SIZE)
		out_push(k, queue_pop(&k->kbd, NULL), false);
}

static void kbd_send(struct i8042 *k, uint8_t b)
{
	queue_push(&k->kbd, b, false);
	kbd_flush(k);
}

static void kbd_defaults(struct i8042 *k)
{
	k->kbd_set = 2;
	k->kbd_pending = 0;
}

/* A byte the guest sends to the keyboard. */
static void kbd_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->kbd_pending;

	if (cmd) {
		k->kbd_pending = 0;
		kbd_send(k, KBD_ACK);
		if (cmd == 0xf0) {
			if (v == 0)
				kbd_send(k, k->kbd_set);
			else if (v <= 3)
				k->kbd_set = v;
		}
		/* 0xed LEDs, 0xf3 typematic rate: nothing to show. */
		return;
	}
	switch (v) {
	case 0xed:	/* set LEDs */
	case 0xf0:	/* get/set scan code set */
	case 0xf3:	/* typematic rate */
		kbd_send(k, KBD_ACK);
		k->kbd_pending = v;
		break;
	case 0xee:	/* echo */
		kbd_send(k, 0xee);
		break;
	case 0xf2:	/* identify: an MF2 keyboard */
		kbd_send(k, KBD_ACK);
		kbd_send(k, 0xab);
		kbd_send(k, k->ram[0] & CTR_XLATE ? 0x41 : 0x83);
		break;
	case 0xf4:	/* enable scanning */
		k->kbd_scanning = true;
		kbd_send(k, KBD_ACK);
		break;
	case 0xf5:	/* disable scanning, defaults */
		kbd_defaults(k);
		k->kbd_scanning = false;
		kbd_send(k, KBD_ACK);
		break;
	case 0xf6:	/* defaults */
		kbd_defaults(k);
		kbd_send(k, KBD_ACK);
		break;
	case 0xf7: case 0xf8: case 0xf9: case 0xfa:
	case 0xfb: case 0xfc: case 0xfd:	/* set 3 key modes */
		kbd_send(k, KBD_ACK);
		break;
	case 0xff:	/* reset: self test passed */
		kbd_defaults(k);
		k->kbd_scanning = true;
		kbd_send(k, KBD_ACK);
		kbd_send(k, KBD_BAT_OK);
		break;
	default:
		kbd_send(k, KBD_RESEND);
	}
}

static void reset_cpu(struct i8042 *k, const char *why)
{
	vm_request_exit(k->vm, VM_EXIT_REBOOT, 0, "%s", why);
}

static void command(struct i8042 *k, uint8_t c)
{
	k->pending = 0;
	if (c >= 0x20 && c < 0x40) {
		out_push(k, k->ram[c & 0x1f], false);
		return;
	}
	if ((c >= 0x60 && c < 0x80) || (c >= 0xd1 && c <= 0xd4)) {
		k->pending = c;
		return;
	}
	if (c >= 0xf0) {
		/* Pulse the output port lines whose bits are 0: line 0 is
		 * the CPU's reset. */
		if (!(c & 0x01))
			reset_cpu(k, "keyboard controller reset");
		return;
	}
	switch (c) {
	case 0xa7:	/* disable the mouse port */
		k->ram[0] |= CTR_AUXDIS;
		break;
	case 0xa8:
		k->ram[0] &= (uint8_t)~CTR_AUXDIS;
		break;
	case 0xa9:	/* mouse port test: no fault */
	case 0xab:	/* keyboard port test */
		out_push(k, 0x00, false);
		break;
	case 0xaa:	/* self test */
		k->ram[0] |= CTR_SYS;
		out_push(k, 0x55, false);
		break;
	case 0xad:	/* disable the keyboard port */
		k->ram[0] |= CTR_KBDDIS;
		break;
	case 0xae:
		k->ram[0] &= (uint8_t)~CTR_KBDDIS;
		kbd_flush(k);
		break;
	case 0xc0:	/* input port: keyboard not inhibited */
		out_push(k, 0x80, false);
		break;
	case 0xd0:	/* output port */
		out_push(k, k->outport, false);
		break;
	case 0xdd:
		k->outport &= (uint8_t)~OUTPORT_A20;
		break;
	case 0xdf:
		k->outport |= OUTPORT_A20;
		break;
	default:
		/* What an 8042 does not know, it ignores. */
		break;
	}
}

static void data_write(struct i8042 *k, uint8_t v)
{
	uint8_t c = k->pending;

	k->pending = 0;
	if (c >= 0x60 && c < 0x80) {
		k->ram[c & 0x1f] = v;
		if (c == 0x60)
			kbd_flush(k);
		return;
	}
	switch (c) {
	case 0xd1:	/* write the output port */
		k->outport = v;
		if (!(v & OUTPORT_RESET))
			reset_cpu(k, "keyboard controller reset");
		break;
	case 0xd2:	/* as if from the keyboard */
		out_push(k, v, false);
		break;
	case 0xd3:	/* as if from the mouse: the AUX loopback */
		out_push(k, v, true);
		break;
	case 0xd4:	/* to the mouse: nothing there */
		k->timeout = true;
		out_push(k, KBD_RESEND, true);
		break;
	default:
		kbd_write(k, v);
	}
}

static uint8_t status(const struct i8042 *k)
{
	uint8_t s = STR_UNLOCKED | (k->ram[0] & CTR_SYS ? STR_SYS : 0);

	if (k->out.count)
		s |= STR_OBF | (k->out.aux[k->out.head] ? STR_AUXDATA : 0);
	if (k->last_was_cmd)
		s |= STR_CMD;
	if (k->timeout)
		s |= STR_TIMEOUT;
	return s;
}

static uint8_t data_read(struct i8042 *k)
{
	if (k->out.count) {
		k->last_out = queue_pop(&k->out, NULL);
		k->timeout = false;
		/* Drop the line so that a next byte is a new edge. */
		set_irq(k, I8042_IRQ_KBD, &k->irq_kbd, false);
		set_irq(k, I8042_IRQ_AUX, &k->irq_aux, false);
		kbd_flush(k);
	}
	return k->last_out;
}

static uint8_t port_read(struct i8042 *k, bool data)
{
	uint8_t v;

	pthread_mutex_lock(&k->lock);
	v = data ? data_read(k) : status(k);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return v;
}

static void port_write(struct i8042 *k, bool data, uint8_t v)
{
	pthread_mutex_lock(&k->lock);
	k->last_was_cmd = !data;
	if (data)
		data_write(k, v);
	else
		command(k, v);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

/* Wider accesses reach the one port only: the next is not ours. */
static void data_port_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	*(uint8_t *)data = port_read(opaque, true);
}

static void data_port_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	port_write(opaque, true, *(const uint8_t *)data);
}

static void cmd_port_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	*(uint8_t *)data = port_read(opaque, false);
}

static void cmd_port_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	port_write(opaque, false, *(const uint8_t *)data);
}

static const struct io_ops data_ops = { .read = data_port_read, .write = data_port_write };
static const struct io_ops cmd_ops = { .read = cmd_port_read, .write = cmd_port_write };

/* The reset control register: bit 2 going to 1 resets (bit 1 asks for a
 * hard reset, bit 3 a full one; a VM's reset is all of them). */
static void rcr_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	struct i8042 *k = opaque;

	*(uint8_t *)data = atomic_load(&k->rcr);
}

static void rcr_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	struct i8042 *k = opaque;
	uint8_t v = *(const uint8_t *)data;

	if (v & 0x04)
		reset_cpu(k, "reset control register");
	atomic_store(&k->rcr, v & 0x0a);
}

static const struct io_ops rcr_ops = { .read = rcr_read, .write = rcr_write };

int i8042_ctrl_alt_del(struct i8042 *k)
{
	/* Make codes, then breaks, in scan code set 2 and set 1. */
	static const uint8_t set2[] = { 0x14, 0x11, 0xe0, 0x71,
					0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14 };
	static const uint8_t set1[] = { 0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d };
	const uint8_t *codes = set1;
	size_t n = sizeof(set1);
	int r = 0;

	pthread_mutex_lock(&k->lock);
	if (k->kbd_set == 2 && !(k->ram[0] & CTR_XLATE)) {
		codes = set2;
		n = sizeof(set2);
	}
	if (!k->kbd_scanning || QUEUE_SIZE - k->kbd.count < n) {
		r = -EBUSY;
	} else {
		for (size_t i = 0; i < n; i++)
			queue_push(&k->kbd, codes[i], false);
		kbd_flush(k);
		update_irq(k);
	}
	pthread_mutex_unlock(&k->lock);
	return r;
}

/* --- saved state: the controller, the keyboard, both queues --- */

static void queue_save(struct dev_state *s, const struct byte_queue *q)
{
	state_put_u8(s, (uint8_t)q->count);
	for (unsigned i = 0; i < q->count; i++) {
		state_put_u8(s, q->b[(q->head + i) % QUEUE_SIZE]);
		state_put_u8(s, q->aux[(q->head + i) % QUEUE_SIZE]);
	}
}

static void queue_load(struct dev_state *s, struct byte_queue *q)
{
	unsigned n = state_get_u8(s);

	memset(q, 0, sizeof(*q));
	if (n > QUEUE_SIZE) {
		s->err = s->err ? s->err : -EINVAL;
		return;
	}
	for (unsigned i = 0; i < n && !s->err; i++) {
		uint8_t b = state_get_u8(s);

		queue_push(q, b, state_get_u8(s));
	}
}

static int i8042_save(void *opaque, struct dev_state *s)
{
	struct i8042 *k = opaque;

	pthread_mutex_lock(&k->lock);
	state_put_section(s, "KBC ", 1);
	state_put_bytes(s, k->ram, sizeof(k->ram));
	state_put_bytes(s, (uint8_t[]){ k->outport, k->pending, k->last_was_cmd, k->timeout,
					k->last_out, k->kbd_pending, k->kbd_set, k->kbd_scanning,
					atomic_load(&k->rcr) }, 9);
	queue_save(s, &k->out);
	queue_save(s, &k->kbd);
	pthread_mutex_unlock(&k->lock);
	return s->err;
}

static int i8042_load(void *opaque, struct dev_state *s)
{
	struct i8042 *k = opaque;
	struct byte_queue out, kbd;
	uint8_t ram[32], r[9];

	if (!state_get_section(s, "KBC ", 1))
		return s->err;
	state_get_bytes(s, ram, sizeof(ram));
	state_get_bytes(s, r, sizeof(r));
	queue_load(s, &out);
	queue_load(s, &kbd);
	if (s->err)
		return s->err;
	pthread_mutex_lock(&k->lock);
	memcpy(k->ram, ram, sizeof(ram));
	k->outport = r[0];
	k->pending = r[1];
	k->last_was_cmd = r[2];
	k->timeout = r[3];
	k->last_out = r[4];
	k->kbd_pending = r[5];
	k->kbd_set = r[6] >= 1 && r[6] <= 3 ? r[6] : 2;
	k->kbd_scanning = r[7];
	atomic_store(&k->rcr, r[8]);
	k->out = out;
	k->kbd = kbd;
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static const struct vm_device_ops i8042_vm_ops = {
	.quiesce = state_quiesce_none, .resume = state_resume_none,
	.save = i8042_save, .load = i8042_load,
};

int i8042_init(struct vm *vm, struct i8042 **out)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int r;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	k->vm = vm;
	/* As firmware leaves it: keyboard interrupt on, translation on,
	 * self test passed; the mouse port off. */
	k->ram[0] = CTR_KBDINT | CTR_SYS | CTR_XLATE | CTR_AUXDIS;
	k->outport = OUTPORT_RESET | OUTPORT_A20;
	kbd_defaults(k);
	k->kbd_scanning = true;
	r = vm_register_pio(vm, I8042_DATA, 1, &data_ops, k, "i8042-data");
	if (r >= 0)
		r = vm_register_pio(vm, I8042_CMD, 1, &cmd_ops, k, "i8042-cmd");
	if (r >= 0)
		r = vm_register_pio(vm, RESET_CONTROL_PORT, 1, &rcr_ops, k, "reset-control");
	if (r < 0) {
		pthread_mutex_destroy(&k->lock);
		free(k);
		return r;
	}
	k->vmdev = (struct vm_device){ .name = "i8042", .ops = &i8042_vm_ops, .opaque = k };
	vm_add_device(vm, &k->vmdev);
	*out = k;
	return 0;
}

void i8042_destroy(struct i8042 *k)
{
	if (!k)
		return;
	vm_remove_device(k->vm, &k->vmdev);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

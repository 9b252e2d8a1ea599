// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ACPI's fixed hardware (ACPI 6.3, 4.8), as the FADT describes it
 * (src/vmm/acpi.c): the PM1a event block (status, enable), the PM1a
 * control block, and the PM timer, at VM_ACPI_PM_BASE; the SCI on GSI 9.
 *
 * - PM1 status bits are set by events and cleared by writing 1 to them.
 *   The events: the power button (acpi_pm_press_power_button(), what
 *   `vsrv ctl shutdown` presses), the timer's carry (TMR_STS: bit 31 of
 *   the timer changed, latched when the guest reads PM1_STS; no SCI of
 *   its own, as nothing runs between reads), and the wake after a sleep
 *   request (WAK_STS).
 * - The SCI is a level interrupt, asserted while any status bit is set
 *   whose enable bit is set, through KVM's irqchip (IOAPIC pin 9, 8259
 *   IRQ 9), active high as the MADT says.
 * - SCI_EN reads 1 whatever is written: there is no SMM and no legacy
 *   mode to leave (the FADT has no SMI_CMD), and the spec leaves the bit
 *   to the hardware.
 * - SLP_EN with SLP_TYP = the DSDT's \_S5 powers the VM off.  Any other
 *   sleep type is a state vsrv does not have: the guest "wakes" at once
 *   (WAK_STS set), so one that tries is not left waiting for it.
 * - The PM timer counts at 3.579545 MHz from the host's monotonic clock,
 *   32 bits wide (TMR_VAL_EXT), from 0 when the VM starts.
 *
 * The guest is untrusted: any port of the blocks, any width (each byte
 * is its own access, as the registers allow), any value.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "devices.h"
#include "state.h"
#include "../vmm/acpi.h"

/* The enable bits that exist (the others read 0); of the status bits
 * only these are ever set. */
#define PM1_EN_MASK	(ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_SLPBTN | \
			 ACPI_PM1_RTC | ACPI_PM1_PCIEXP_WAKE)
/* What PM1_CNT keeps: BM_RLD and SLP_TYP (SLP_EN and GBL_RLS are
 * write-only, reserved bits read 0). */
#define PM1_CNT_MASK	(ACPI_PM1_BM_RLD | ACPI_PM1_SLP_TYP)
/* The status bits that raise the SCI when enabled (PCIEXP_WAKE's enable
 * bit is a disable, and it only wakes). */
#define PM1_SCI_MASK	(ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_SLPBTN | \
			 ACPI_PM1_RTC)

#define NSEC		1000000000ull

_Static_assert(ACPI_PM1_CNT_ADDR == ACPI_PM1_EVT_ADDR + ACPI_PM1_EVT_LEN,
	       "the event and control blocks are one port range");

struct acpi_pm {
	pthread_mutex_t lock;
	struct vm *vm;
	uint16_t sts, en, cnt;
	bool sci;		/* the line's level, as last set */
	struct timespec start;	/* the timer's 0 */
	uint64_t carry_seen;	/* timer ticks >> 31 at the last PM1_STS read */
	struct vm_device vmdev;
};

/* Ticks since the VM started, in 64 bits (the register is the low 32). */
static uint64_t ticks(const struct acpi_pm *pm)
{
	struct timespec now;
	uint64_t sec, nsec;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sec = (uint64_t)(now.tv_sec - pm->start.tv_sec);
	if (now.tv_nsec >= pm->start.tv_nsec) {
		nsec = (uint64_t)(now.tv_nsec - pm->start.tv_nsec);
	} else {
		sec--;
		nsec = (uint64_t)(now.tv_nsec + (long)NSEC - pm->start.tv_nsec);
	}
	return sec * ACPI_PM_TMR_HZ + nsec * ACPI_PM_TMR_HZ / NSEC;
}

/* Called with the lock held, after any change of sts or en. */
static void update_sci(struct acpi_pm *pm)
{
	bool level = pm->sts & pm->en & PM1_SCI_MASK;

	if (level == pm->sci)
		return;
	pm->sci = level;
	vm_irq_line(pm->vm, VM_ACPI_SCI_GSI, level);
}

static uint16_t read_sts(struct acpi_pm *pm)
{
	uint64_t carry = ticks(pm) >> 31;

	if (carry != pm->carry_seen) {
		pm->carry_seen = carry;
		pm->sts |= ACPI_PM1_TMR;
		update_sci(pm);
	}
	return pm->sts;
}

static uint16_t read_reg(struct acpi_pm *pm, unsigned reg)
{
	switch (reg) {
	case 0:
		return read_sts(pm);
	case 1:
		return pm->en;
	default:
		return pm->cnt | ACPI_PM1_SCI_EN;
	}
}

static void sleep_request(struct acpi_pm *pm)
{
	unsigned type = (pm->cnt & ACPI_PM1_SLP_TYP) >> ACPI_PM1_SLP_TYP_SHIFT;

	if (type == ACPI_S5_SLP_TYP) {
		vm_request_exit(pm->vm, VM_EXIT_POWEROFF, 0, "powered off (ACPI S5)");
		return;
	}
	pm->sts |= ACPI_PM1_WAK;
}

/* A byte of a register: `high` is its upper byte. */
static void write_byte(struct acpi_pm *pm, unsigned reg, bool high, uint8_t v)
{
	unsigned shift = high ? 8 : 0;
	uint16_t bits = (uint16_t)(v << shift);

	switch (reg) {
	case 0:
		pm->sts &= (uint16_t)~bits;
		break;
	case 1:
		pm->en = (uint16_t)((pm->en & ~(0xff << shift)) | (bits & PM1_EN_MASK));
		break;
	default:
		pm->cnt = (uint16_t)((pm->cnt & ~(0xff << shift)) | (bits & PM1_CNT_MASK));
		if (bits & ACPI_PM1_SLP_EN)
			sleep_request(pm);
		break;
	}
	update_sci(pm);
}

/* Block 1: PM1a_STS (0-1), PM1a_EN (2-3), PM1a_CNT (4-5). */
static void pm1_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	struct acpi_pm *pm = opaque;
	uint8_t *d = data;

	pthread_mutex_lock(&pm->lock);
	for (unsigned i = 0; i < len && addr + i < 6; i++) {
		unsigned off = (unsigned)addr + i;

		d[i] = (uint8_t)(read_reg(pm, off / 2) >> (off % 2 ? 8 : 0));
	}
	pthread_mutex_unlock(&pm->lock);
}

static void pm1_write(void *opaque, uint64_t addr, const void *data, unsigned len)
{
	struct acpi_pm *pm = opaque;
	const uint8_t *d = data;

	pthread_mutex_lock(&pm->lock);
	for (unsigned i = 0; i < len && addr + i < 6; i++) {
		unsigned off = (unsigned)addr + i;

		write_byte(pm, off / 2, off % 2, d[i]);
	}
	pthread_mutex_unlock(&pm->lock);
}

static const struct io_ops pm1_ops = { .read = pm1_read, .write = pm1_write };

/* Block 2: the PM timer, read-only. */
static void tmr_read(void *opaque, uint64_t addr, void *data, unsigned len)
{
	struct acpi_pm *pm = opaque;
	uint32_t t = (uint32_t)ticks(pm);
	uint8_t *d = data;

	for (unsigned i = 0; i < len && addr + i < 4; i++)
		d[i] = (uint8_t)(t >> (8 * (addr + i)));
}

static const struct io_ops tmr_ops = { .read = tmr_read };

int acpi_pm_press_power_button(struct acpi_pm *pm)
{
	int r;

	pthread_mutex_lock(&pm->lock);
	pm->sts |= ACPI_PM1_PWRBTN;
	update_sci(pm);
	r = pm->en & ACPI_PM1_PWRBTN ? 0 : -EAGAIN;
	pthread_mutex_unlock(&pm->lock);
	return r;
}

/* --- saved state: the registers, and the timer's count, which goes on
 * from where it was --- */

static int pm_save(void *opaque, struct dev_state *s)
{
	struct acpi_pm *pm = opaque;

	pthread_mutex_lock(&pm->lock);
	state_put_section(s, "PM1 ", 1);
	state_put_u16(s, pm->sts);
	state_put_u16(s, pm->en);
	state_put_u16(s, pm->cnt);
	state_put_u64(s, ticks(pm));
	state_put_u64(s, pm->carry_seen);
	pthread_mutex_unlock(&pm->lock);
	return s->err;
}

static int pm_load(void *opaque, struct dev_state *s)
{
	struct acpi_pm *pm = opaque;
	uint16_t sts, en, cnt;
	uint64_t t, carry;
	struct timespec now;

	if (!state_get_section(s, "PM1 ", 1))
		return s->err;
	sts = state_get_u16(s);
	en = state_get_u16(s);
	cnt = state_get_u16(s);
	t = state_get_u64(s);
	carry = state_get_u64(s);
	/* Beyond a century of ticks: not a state this device wrote. */
	if (s->err || t > 100ull * 365 * 86400 * ACPI_PM_TMR_HZ)
		return s->err ? s->err : -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&pm->lock);
	pm->sts = sts & PM1_SCI_MASK;
	pm->en = en & PM1_EN_MASK;
	pm->cnt = cnt & PM1_CNT_MASK;
	pm->carry_seen = carry;
	/* start = now - t ticks. */
	pm->start.tv_sec = now.tv_sec - (time_t)(t / ACPI_PM_TMR_HZ);
	pm->start.tv_nsec = now.tv_nsec -
			    (long)((t % ACPI_PM_TMR_HZ) * NSEC / ACPI_PM_TMR_HZ);
	if (pm->start.tv_nsec < 0) {
		pm->start.tv_nsec += (long)NSEC;
		pm->start.tv_sec--;
	}
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

static const struct vm_device_ops pm_vm_ops = {
	.quiesce = state_quiesce_none, .resume = state_resume_none,
	.save = pm_save, .load = pm_load,
};

int acpi_pm_init(struct vm *vm, struct acpi_pm **out)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));
	int r;

	*out = NULL;
	if (!pm)
		return -ENOMEM;
	pthread_mutex_init(&pm->lock, NULL);
	pm->vm = vm;
	clock_gettime(CLOCK_MONOTONIC, &pm->start);
	r = vm_register_pio(vm, ACPI_PM1_EVT_ADDR, ACPI_PM1_EVT_LEN + ACPI_PM1_CNT_LEN,
			    &pm1_ops, pm, "acpi-pm1");
	if (r >= 0)
		r = vm_register_pio(vm, ACPI_PM_TMR_ADDR, ACPI_PM_TMR_LEN, &tmr_ops, pm,
				    "acpi-pm-timer");
	if (r < 0) {
		pthread_mutex_destroy(&pm->lock);
		free(pm);
		return r;
	}
	pm->vmdev = (struct vm_device){ .name = "acpi-pm", .ops = &pm_vm_ops, .opaque = pm };
	vm_add_device(vm, &pm->vmdev);
	*out = pm;
	return 0;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	if (!pm)
		return;
	vm_remove_device(pm->vm, &pm->vmdev);
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

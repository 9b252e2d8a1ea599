// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The ACPI tables (ACPI 6.3, chapter 5): how a guest finds its CPUs and
 * interrupt controllers (MADT), PCI's configuration space (MCFG), the
 * fixed hardware of power management (FADT: the PM1 registers, the PM
 * timer, the SCI; src/devices/acpi-pm.c) and its devices (DSDT,
 * acpi-dsdt.c).  All of them are written at boot into the BIOS area, which
 * the memory map reserves:
 *
 *   RSDP -> XSDT -> FADT -> FACS, DSDT
 *               -> MADT
 *               -> MCFG
 *
 * Only an XSDT (64-bit pointers), no RSDT: the RSDP is of revision 2 and
 * every OS of the last twenty years takes the XSDT from it.  The FADT's
 * 32-bit FACS and DSDT fields are zero because the spec wants them so
 * when the 64-bit ones are set.  The hardware is the full (not reduced)
 * ACPI model: PM1 event and control blocks, the PM timer, an SCI, a
 * fixed-feature power button.  There is no SMI_CMD: the machine is always
 * in ACPI mode (SCI_EN reads 1), as the spec allows when SMI_CMD is 0.
 *
 * The structures are the spec's; tests/guests/acpi-*.c read them back by
 * byte offset and tests/integration/test_acpi.py has iasl (ACPICA)
 * disassemble them, so neither shares these structs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acpi.h"
#include "aml.h"
#include "boot.h"

#define OEM_ID		"VSRV  "
#define OEM_TABLE_ID	"VSRVVMM "
#define CREATOR_ID	"VSRV"

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
	char signature[8];	/* "RSD PTR " */
	uint8_t checksum;	/* of the first 20 bytes (ACPI 1.0's RSDP) */
	char oem_id[6];
	uint8_t revision;	/* 2: has the XSDT */
	uint32_t rsdt_addr;
	uint32_t length;
	uint64_t xsdt_addr;
	uint8_t ext_checksum;	/* of all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

/* Generic Address Structure (5.2.3.2). */
struct acpi_gas {
	uint8_t space_id;	/* 1: system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;	/* 1 byte, 2 word, 3 dword */
	uint64_t address;
} __attribute__((packed));

struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg, sleep_status_reg;
	uint64_t hypervisor_id;
} __attribute__((packed));

struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_addr;
	uint32_t flags;
} __attribute__((packed));

struct madt_lapic {
	uint8_t type, length;	/* 0, 8 */
	uint8_t uid;		/* ACPI processor UID */
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length;	/* 1, 12 */
	uint8_t id;
	uint8_t reserved;
	uint32_t addr;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type, length;	/* 2, 10 */
	uint8_t bus;		/* 0: ISA */
	uint8_t source;		/* the ISA IRQ */
	uint32_t gsi;
	uint16_t flags;		/* MPS INTI: polarity bits 1:0, trigger 3:2 */
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length;	/* 4, 6 */
	uint8_t uid;		/* 0xff: every processor */
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

struct acpi_mcfg {
	struct acpi_header h;
	uint64_t reserved;
} __attribute__((packed));

struct mcfg_allocation {
	uint64_t base;
	uint16_t segment;
	uint8_t start_bus, end_bus;
	uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_header) == 36, "table header");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT (ACPI 6.x)");
_Static_assert(__builtin_offsetof(struct acpi_fadt, flags) == 112 &&
	       __builtin_offsetof(struct acpi_fadt, x_pm1a_evt_blk) == 148 &&
	       __builtin_offsetof(struct acpi_fadt, hypervisor_id) == 268, "FADT offsets");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS");
_Static_assert(sizeof(struct acpi_madt) == 44 && sizeof(struct madt_lapic) == 8 &&
	       sizeof(struct madt_ioapic) == 12 && sizeof(struct madt_iso) == 10 &&
	       sizeof(struct madt_lapic_nmi) == 6, "MADT");
_Static_assert(sizeof(struct acpi_mcfg) == 44 && sizeof(struct mcfg_allocation) == 16,
	       "MCFG");

/* FADT flags (5.2.9, table 5.10) and IA-PC boot architecture (table 5.11). */
#define FADT_WBINVD		(1u << 0)
#define FADT_PROC_C1		(1u << 2)
#define FADT_SLP_BUTTON		(1u << 5)	/* no fixed-feature sleep button */
#define FADT_FIX_RTC		(1u << 6)	/* no RTC_STS in fixed hardware */
#define FADT_TMR_VAL_EXT	(1u << 8)	/* 32-bit PM timer */
#define FADT_RESET_REG_SUP	(1u << 10)
#define BOOT_ARCH_LEGACY	(1u << 0)	/* ISA devices: the UART, RTC */
#define BOOT_ARCH_8042		(1u << 1)
#define BOOT_ARCH_NO_VGA	(1u << 2)
#define BOOT_ARCH_NO_ASPM	(1u << 4)
/* C2/C3 latencies above these mean "not supported". */
#define FADT_NO_C2		101
#define FADT_NO_C3		1001
/* The reset control register (src/devices/i8042.c): 0x06, a warm reset. */
#define RESET_PORT		0xcf9
#define RESET_VALUE		0x06
#define RTC_CENTURY_INDEX	0x32	/* src/devices/rtc.c */

#define MADT_PCAT_COMPAT	1	/* 8259s present (and masked by the OS) */
#define MADT_CPU_ENABLED	1
#define ISO_CONFORMS		0x0	/* the bus's polarity and trigger */
#define ISO_ACTIVE_HIGH		0x1
#define ISO_LEVEL		0xc

/* The SCI's ISA IRQ: the GSI it is wired to (KVM's default routing sends
 * GSI n to IOAPIC pin n and to 8259 input n). */
#define SCI_IRQ			VM_ACPI_SCI_GSI

/* Bump allocation in the tables' area. */
struct area {
	uint8_t *base;
	size_t used;
	bool full;
};

static void *area_alloc(struct area *a, size_t len, size_t align, uint64_t *gpa)
{
	size_t at = (a->used + align - 1) & ~(align - 1);

	if (a->full || at > ACPI_TABLES_SIZE || len > ACPI_TABLES_SIZE - at) {
		a->full = true;
		return NULL;
	}
	a->used = at + len;
	*gpa = ACPI_TABLES_ADDR + at;
	return a->base + at;
}

static void header(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, OEM_ID, 6);
	memcpy(h->oem_table_id, OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, CREATOR_ID, 4);
	h->creator_revision = 1;
}

static void finish(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = boot_checksum(h, h->length);
}

static struct acpi_gas io_gas(uint16_t port, unsigned bytes, uint8_t access)
{
	return (struct acpi_gas){ .space_id = 1, .bit_width = (uint8_t)(8 * bytes),
				  .access_size = access, .address = port };
}

static void fadt_fill(struct acpi_fadt *f, uint64_t facs, uint64_t dsdt)
{
	header(&f->h, "FACP", sizeof(*f), 6);
	f->minor_version = 3;			/* ACPI 6.3 */
	f->x_firmware_ctrl = facs;
	f->x_dsdt = dsdt;
	f->pm_profile = 4;			/* enterprise server */
	f->sci_int = SCI_IRQ;
	f->pm1a_evt_blk = ACPI_PM1_EVT_ADDR;
	f->pm1a_cnt_blk = ACPI_PM1_CNT_ADDR;
	f->pm_tmr_blk = ACPI_PM_TMR_ADDR;
	f->pm1_evt_len = ACPI_PM1_EVT_LEN;
	f->pm1_cnt_len = ACPI_PM1_CNT_LEN;
	f->pm_tmr_len = ACPI_PM_TMR_LEN;
	f->p_lvl2_lat = FADT_NO_C2;
	f->p_lvl3_lat = FADT_NO_C3;
	f->century = RTC_CENTURY_INDEX;
	f->iapc_boot_arch = BOOT_ARCH_LEGACY | BOOT_ARCH_8042 | BOOT_ARCH_NO_VGA |
			    BOOT_ARCH_NO_ASPM;
	/* PWR_BUTTON clear: the power button is the fixed feature. */
	f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC |
		   FADT_TMR_VAL_EXT | FADT_RESET_REG_SUP;
	f->reset_reg = io_gas(RESET_PORT, 1, 1);
	f->reset_value = RESET_VALUE;
	/* The X fields' widths must be the lengths above (ACPICA checks);
	 * the event block is two 16-bit registers, so word access. */
	f->x_pm1a_evt_blk = io_gas(ACPI_PM1_EVT_ADDR, ACPI_PM1_EVT_LEN, 2);
	f->x_pm1a_cnt_blk = io_gas(ACPI_PM1_CNT_ADDR, ACPI_PM1_CNT_LEN, 2);
	f->x_pm_tmr_blk = io_gas(ACPI_PM_TMR_ADDR, ACPI_PM_TMR_LEN, 3);
	finish(&f->h);
}

static void madt_fill(struct acpi_madt *m, unsigned nr_cpus)
{
	uint8_t *p = (uint8_t *)(m + 1);
	uint8_t ioapic_id = (uint8_t)nr_cpus;	/* as in the MP table */
	/* ISA IRQ0 (the PIT) reaches GSI 0, where KVM's default routing
	 * delivers it (see mptable.c's isa_irq_pin); said explicitly.  The
	 * SCI is level-triggered, active high: KVM's IOAPIC takes the line's
	 * level as given, and acpi-pm.c raises it while an event is on. */
	const struct madt_iso isos[] = {
		{ 2, 10, 0, 0, 0, ISO_CONFORMS },
		{ 2, 10, 0, SCI_IRQ, VM_ACPI_SCI_GSI, ISO_ACTIVE_HIGH | ISO_LEVEL },
	};

	m->lapic_addr = (uint32_t)VM_LAPIC_ADDR;
	m->flags = MADT_PCAT_COMPAT;
	/* The boot processor first, as the spec asks. */
	for (unsigned i = 0; i < nr_cpus; i++) {
		*(struct madt_lapic *)p = (struct madt_lapic){
			.type = 0, .length = 8, .uid = (uint8_t)i, .apic_id = (uint8_t)i,
			.flags = MADT_CPU_ENABLED,
		};
		p += sizeof(struct madt_lapic);
	}
	*(struct madt_ioapic *)p = (struct madt_ioapic){
		.type = 1, .length = 12, .id = ioapic_id,
		.addr = (uint32_t)VM_IOAPIC_ADDR, .gsi_base = 0,
	};
	p += sizeof(struct madt_ioapic);
	memcpy(p, isos, sizeof(isos));
	p += sizeof(isos);
	/* NMI on every processor's LINT1, as the MP table says. */
	*(struct madt_lapic_nmi *)p = (struct madt_lapic_nmi){
		.type = 4, .length = 6, .uid = 0xff, .flags = ISO_CONFORMS, .lint = 1,
	};
	p += sizeof(struct madt_lapic_nmi);
	header(&m->h, "APIC", (uint32_t)(p - (uint8_t *)m), 5);
	finish(&m->h);
}

static size_t madt_size(unsigned nr_cpus)
{
	return sizeof(struct acpi_madt) + nr_cpus * sizeof(struct madt_lapic) +
	       sizeof(struct madt_ioapic) + 2 * sizeof(struct madt_iso) +
	       sizeof(struct madt_lapic_nmi);
}

static void mcfg_fill(struct acpi_mcfg *m)
{
	struct mcfg_allocation *e = (void *)(m + 1);

	header(&m->h, "MCFG", sizeof(*m) + sizeof(*e), 1);
	/* Bus 0 only: 1 MiB of ECAM (VM_PCI_MMCONFIG_SIZE). */
	*e = (struct mcfg_allocation){
		.base = VM_PCI_MMCONFIG_BASE, .segment = 0, .start_bus = 0,
		.end_bus = (uint8_t)((VM_PCI_MMCONFIG_SIZE >> 20) - 1),
	};
	finish(&m->h);
}

int acpi_write(struct vm *vm, unsigned nr_cpus, struct boot_info *bi,
	       char *err, size_t errlen)
{
	struct area a = { .base = vm_gpa(vm, ACPI_TABLES_ADDR, ACPI_TABLES_SIZE) };
	uint64_t rsdp_at, facs_at, xsdt_at, fadt_at, madt_at, mcfg_at, dsdt_at;
	struct acpi_rsdp *rsdp;
	struct acpi_facs *facs;
	struct acpi_header *xsdt, *dsdt;
	struct acpi_fadt *fadt;
	struct acpi_madt *madt;
	struct acpi_mcfg *mcfg;
	uint64_t entries[3];
	struct aml aml;

	if (!a.base || nr_cpus < 1 || nr_cpus > VM_MAX_CPUS) {
		snprintf(err, errlen, "ACPI tables: %u vCPUs do not fit", nr_cpus);
		return -EINVAL;
	}
	memset(a.base, 0, ACPI_TABLES_SIZE);
	rsdp = area_alloc(&a, sizeof(*rsdp), 16, &rsdp_at);
	facs = area_alloc(&a, sizeof(*facs), 64, &facs_at);
	xsdt = area_alloc(&a, sizeof(*xsdt) + sizeof(entries), 16, &xsdt_at);
	fadt = area_alloc(&a, sizeof(*fadt), 16, &fadt_at);
	madt = area_alloc(&a, madt_size(nr_cpus), 16, &madt_at);
	mcfg = area_alloc(&a, sizeof(*mcfg) + sizeof(struct mcfg_allocation), 16, &mcfg_at);
	/* The DSDT last: it takes what it needs of the rest. */
	dsdt = area_alloc(&a, sizeof(*dsdt), 16, &dsdt_at);
	if (a.full) {
		snprintf(err, errlen, "ACPI tables: more than %u bytes", ACPI_TABLES_SIZE);
		return -ENOSPC;
	}
	aml_init(&aml, (uint8_t *)(dsdt + 1), ACPI_TABLES_SIZE - a.used);
	acpi_dsdt(&aml);
	if (aml.error || aml.depth) {
		snprintf(err, errlen, "ACPI tables: the DSDT does not fit");
		return -ENOSPC;
	}
	a.used += aml.len;
	/* Revision 2: 64-bit integers in the DSDT's AML. */
	header(dsdt, "DSDT", (uint32_t)(sizeof(*dsdt) + aml.len), 2);
	finish(dsdt);

	memcpy(facs->signature, "FACS", 4);
	facs->length = sizeof(*facs);
	facs->version = 2;
	fadt_fill(fadt, facs_at, dsdt_at);
	madt_fill(madt, nr_cpus);
	mcfg_fill(mcfg);
	entries[0] = fadt_at;
	entries[1] = madt_at;
	entries[2] = mcfg_at;
	header(xsdt, "XSDT", sizeof(*xsdt) + sizeof(entries), 1);
	memcpy(xsdt + 1, entries, sizeof(entries));	/* unaligned, at 36 */
	finish(xsdt);

	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_addr = xsdt_at;
	rsdp->checksum = boot_checksum(rsdp, 20);
	rsdp->ext_checksum = boot_checksum(rsdp, sizeof(*rsdp));
	boot_describe(bi, "acpi 0x%llx %u cpus %zu bytes\n",
		      (unsigned long long)rsdp_at, nr_cpus, a.used);
	return 0;
}

/* ---- --dump-acpi: the tables as a guest finds them ---- */

static int dump_one(struct vm *vm, const char *dir, const char *name, uint64_t gpa,
		    uint64_t len, char *err, size_t errlen)
{
	const uint8_t *p = vm_gpa(vm, gpa, len);
	char path[4096];
	size_t done = 0;
	int fd;

	if (!p || len > ACPI_TABLES_SIZE) {
		snprintf(err, errlen, "--dump-acpi: %s at 0x%llx (%llu bytes) is outside guest memory",
			 name, (unsigned long long)gpa, (unsigned long long)len);
		return -ERANGE;
	}
	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "--dump-acpi: %s: %s", path, strerror(errno));
		return -errno;
	}
	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0) {
			int e = errno;

			snprintf(err, errlen, "--dump-acpi: %s: %s", path, strerror(e));
			close(fd);
			return -e;
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
}

static uint64_t rd(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = v << 8 | p[bytes];
	return v;
}

/* A table's length from its header, 0 when it is not in guest memory. */
static uint64_t table_len(struct vm *vm, uint64_t gpa, char name[5])
{
	const uint8_t *h = vm_gpa(vm, gpa, 8);

	if (!h)
		return 0;
	for (int i = 0; i < 4; i++)
		name[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] | 0x20 : h[i]);
	name[4] = 0;
	return rd(h + 4, 4);
}

int acpi_dump(struct vm *vm, const char *dir, char *err, size_t errlen)
{
	const uint8_t *rsdp = vm_gpa(vm, ACPI_RSDP_ADDR, sizeof(struct acpi_rsdp));
	uint64_t xsdt, xlen;
	char name[5];
	int r;

	if (!rsdp) {
		snprintf(err, errlen, "--dump-acpi: no RSDP");
		return -ENOENT;
	}
	xsdt = rd(rsdp + 24, 8);
	r = dump_one(vm, dir, "rsdp", ACPI_RSDP_ADDR, sizeof(struct acpi_rsdp), err, errlen);
	xlen = table_len(vm, xsdt, name);
	if (r >= 0)
		r = dump_one(vm, dir, name, xsdt, xlen, err, errlen);
	for (uint64_t off = 36; r >= 0 && off + 8 <= xlen; off += 8) {
		const uint8_t *e = vm_gpa(vm, xsdt + off, 8);
		uint64_t at = e ? rd(e, 8) : 0, len = table_len(vm, at, name);

		r = dump_one(vm, dir, name, at, len, err, errlen);
		if (r >= 0 && !strcmp(name, "facp")) {
			const uint8_t *f = vm_gpa(vm, at, sizeof(struct acpi_fadt));
			uint64_t facs = f ? rd(f + 132, 8) : 0, dsdt = f ? rd(f + 140, 8) : 0;

			r = dump_one(vm, dir, "facs", facs, table_len(vm, facs, name), err, errlen);
			if (r >= 0)
				r = dump_one(vm, dir, "dsdt", dsdt, table_len(vm, dsdt, name),
					     err, errlen);
		}
	}
	return r;
}

// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the saved-state reader: what `vsrv run --restore
 * FILE` and a checkpoint's revert read from a file that may come from
 * anywhere (docs/control.md, "Saved state").  It drives the restore as
 * vsrv run does, with no KVM:
 *
 *  1. vm_restore_config() (snapshot.c): the header, the table, the CONF
 *     section and its JSON, the disks' and NICs' specs in it;
 *  2. a VM as that configuration asks (vmm_devices_create(), vmm.c: the
 *     same devices in the same order as a real boot), on guest memory
 *     and nothing else (fuzz-vm.h), its vCPUs without KVM file
 *     descriptors;
 *  3. vm_restore_read(): every section's checksum, the VCPU and VMST
 *     sections' decoders (vmstate.c's *_read), the devices' names, each
 *     DREF's check (a disk's layers), the CPUID check, guest memory (its
 *     bitmap and trailer, the pages copied in);
 *  4. vm_restore_devices(): every device's load (the UART, the i8042,
 *     the RTC, ACPI PM1, the PCI bus, each virtio device's PCI function,
 *     transport, queues and type); then every device saved and loaded
 *     back once more (devices_checkpoint_cycle()), which a state that
 *     loaded must survive.
 *
 * What needs a real VM is left out at the narrowest point: vm_restore_set(),
 * which hands the parsed vCPU, irqchip, PIT and clock structures to KVM's
 * ioctls (the kernel checks those itself), and the host's own answers,
 * which vmstate_init() would ask /dev/kvm for: this target says them
 * (struct vm_state_host, a CPUID offering every feature).  Disks are raw
 * memfds (64 KiB, with one fixed modification time, which the seeds'
 * DREFs name) in place of the paths the configuration names, as --disk
 * would replace them; NICs have the null backend, as a restore's
 * backends are new anyway.  Guest memory is copied in, never mapped: the
 * file is a memfd this target holds open for writing, on which no read
 * lease (guestmem_lease()) can be taken.
 *
 * Input: byte 0's bit 0 set keeps the file's checksums as they are;
 * clear, the target first computes every section's, the table's and the
 * header's over what the input holds, so that mutations reach the
 * decoders behind them.  Bits 1-3 are what a restore takes from its own
 * command line rather than the file: bit 1 `--console hvc`, bits 2-3 how
 * many named ports (`--port`: org.vsrv.echo, second, third), which make
 * a virtio-console.  Bytes 1-96 are the header's (the rest of its 4 KiB
 * is zeros, which nothing reads), then the file from offset 4096.  An
 * input shorter than that is the file as it is.
 *
 * The invariants: every refusal is one line (no control character);
 * a configuration the reader accepts is one the VMM can build (1 to
 * VM_MAX_CPUS vCPUs, whole pages of memory within VMM_MEMORY_MIN and
 * VMM_MEMORY_MAX, at most VMM_DISKS_MAX disks and NET_NICS_MAX NICs)
 * and whose devices can be made; a state that loaded saves and loads
 * back.  A broken one calls bug(), which says which and aborts.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "../../src/devices/devices.h"
#include "../../src/devices/state.h"
#include "../../src/vmm/savefile.h"
#include "../../src/vmm/vmm.h"
#define FUZZ_NAME "fuzz-savefile"
#include "fuzz-vm.h"

#define HEADER_KEPT	96		/* the header's bytes that mean anything */
#define H_TABLE_SUM	40		/* src/vmm/savefile.c's header */
#define H_SUM		88
#define ENTRY_SIZE	40
#define MEM_MAX		(64ull << 20)	/* the largest guest this target holds */
#define DISK_SIZE	(64u << 10)
#define DISK_MTIME	1795000000	/* the seeds' disks' (make-savefile-seeds.py) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct console *con;
static int file_fd = -1, disk_fd[VMM_DISKS_MAX];
static char file_path[64], disk_path[VMM_DISKS_MAX][64];
static uint8_t *guest_mem;
static struct kvm_cpuid2 *host_cpuid;

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

/* A CPUID offering every feature vmstate_check_cpuid() asks about: the
 * host's lack of one is a line of its own (test_savestate.py). */
static struct kvm_cpuid2 *every_feature(void)
{
	static const struct { uint32_t leaf, sub; bool sub_matters; } leaves[] = {
		{ 1, 0, false }, { 7, 0, true }, { 7, 1, true }, { 0xd, 1, true },
		{ 0x80000001, 0, false },
	};
	size_t n = sizeof(leaves) / sizeof(leaves[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

	if (!c)
		bug("no memory for a CPUID");
	c->nent = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = leaves[i].leaf, .index = leaves[i].sub,
			.flags = leaves[i].sub_matters ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
			.eax = ~0u, .ebx = ~0u, .ecx = ~0u, .edx = ~0u };
	return c;
}

static int memfd(const char *name, char path[64])
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		bug("memfd: %s", strerror(errno));
	snprintf(path, 64, "/proc/self/fd/%d", fd);
	return fd;
}

static void setup_once(void)
{
	char err[256];

	if (con)
		return;
	/* The UART's console: output dropped, no input. */
	if (console_open(&con, "file:/dev/null", 0, err, sizeof(err)) < 0)
		bug("console: %s", err);
	file_fd = memfd("fuzz-savefile", file_path);
	for (unsigned i = 0; i < VMM_DISKS_MAX; i++)
		disk_fd[i] = -1;
	guest_mem = mmap(NULL, MEM_MAX, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (guest_mem == MAP_FAILED)
		bug("guest memory: %s", strerror(errno));
	host_cpuid = every_feature();
}

/* Every section's checksum, the table's and the header's, over what the
 * image holds (where the table says a section lies inside it). */
static void seal(uint8_t *img, size_t len)
{
	uint64_t table, nr;

	if (len < SAVEFILE_ALIGN)
		return;
	table = get64(img + 24);
	nr = get32(img + 32);
	if (table > len || nr > (len - table) / ENTRY_SIZE)
		return;
	for (uint64_t i = 0; i < nr; i++) {
		uint8_t *e = img + table + i * ENTRY_SIZE;
		uint64_t off = get64(e + 8), n = get64(e + 16);

		if (off <= len && n <= len - off)
			put64(e + 24, XXH3_64bits(img + off, n));
	}
	put64(img + H_TABLE_SUM, XXH3_64bits(img + table, nr * ENTRY_SIZE));
	put64(img + H_SUM, XXH3_64bits(img, H_SUM));
}

/* The input as the file it stands for, in file_fd. */
static void write_file(const uint8_t *data, size_t size)
{
	size_t len = size - 1 <= HEADER_KEPT ? size - 1 : SAVEFILE_ALIGN + size - 1 - HEADER_KEPT;
	uint8_t *img = calloc(1, len + 1);

	if (!img)
		bug("no memory for the file");
	if (size - 1 <= HEADER_KEPT) {
		memcpy(img, data + 1, size - 1);
	} else {
		memcpy(img, data + 1, HEADER_KEPT);
		memcpy(img + SAVEFILE_ALIGN, data + 1 + HEADER_KEPT, size - 1 - HEADER_KEPT);
	}
	if (!(data[0] & 1))
		seal(img, len);
	if (ftruncate(file_fd, 0) < 0 || pwrite(file_fd, img, len, 0) != (ssize_t)len)
		bug("the file's memfd: %s", strerror(errno));
	free(img);
}

static void one_line(const char *what, const char *err)
{
	if (!err[0])
		bug("%s: a refusal without a line", what);
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			bug("%s: a refusal that is not one line of text: %s", what, err);
}

/* The configuration the reader accepted: one the VMM can build, whose
 * disks and NICs are this target's, with the run's own console and
 * ports (flags: byte 0). */
static void take_config(struct vmm_config *cfg, uint8_t flags)
{
	static const char *const ports[] = { "org.vsrv.echo", "second", "third" };

	const struct vm_opts *o = &cfg->vm;

	if (o->nr_cpus < 1 || o->nr_cpus > VM_MAX_CPUS)
		bug("a restore of %u vCPUs accepted", o->nr_cpus);
	if (o->mem_size < VMM_MEMORY_MIN || o->mem_size > VMM_MEMORY_MAX ||
	    o->mem_size % VM_PAGE_SIZE)
		bug("a restore of %llu bytes of memory accepted", (unsigned long long)o->mem_size);
	if (cfg->nr_disks > VMM_DISKS_MAX || cfg->nr_nics > NET_NICS_MAX)
		bug("a restore of %u disks and %u NICs accepted", cfg->nr_disks, cfg->nr_nics);
	for (unsigned i = 0; i < cfg->nr_disks; i++) {
		struct disk_spec *s = &cfg->disks[i].spec;
		static uint8_t content[DISK_SIZE];
		const struct timespec t[2] = { { .tv_sec = DISK_MTIME }, { .tv_sec = DISK_MTIME } };

		if (disk_fd[i] < 0)
			disk_fd[i] = memfd("fuzz-savefile-disk", disk_path[i]);
		/* The same bytes and stamps for every input (the guest may
		 * have written it since). */
		if (pwrite(disk_fd[i], content, DISK_SIZE, 0) != DISK_SIZE ||
		    futimens(disk_fd[i], t) < 0)
			bug("a disk's memfd: %s", strerror(errno));
		*s = (struct disk_spec){ .path = disk_path[i], .format = DISK_FORMAT_RAW,
					 .readonly = s->readonly, .aio = DISK_AIO_THREAD };
		cfg->disks[i].overlay = cfg->disks[i].base = cfg->disks[i].top = NULL;
	}
	for (unsigned i = 0; i < cfg->nr_nics; i++) {
		cfg->nics[i].type = NET_NULL;
		cfg->nics[i].nr_fwd = 0;
	}
	cfg->hvc = flags & 2;
	cfg->nr_ports = flags >> 2 & 3;
	for (unsigned i = 0; i < cfg->nr_ports; i++) {
		snprintf(cfg->ports[i].name, sizeof(cfg->ports[i].name), "%s", ports[i]);
		cfg->ports[i].socket = "";
		cfg->ports[i].listen_fd = -1;	/* nobody connects */
	}
}

static void fake_vcpus(struct vm *vm, const struct vmm_config *cfg)
{
	static const struct vm_state_host host = {
		/* This machine's (docs/test-host-kvm.md), as the seeds were saved. */
		.xsave_size = 4096, .xsave = true, .xcrs = true, .debugregs = true,
	};
	char err[256];

	fake_vm(vm, guest_mem, cfg->vm.mem_size);
	vm->memfd = -1;
	vm->opts = cfg->vm;
	vm->ram_below_4g = cfg->vm.mem_size;
	/* Doorbells inline (no ioeventfds); MSI-X present, sent nowhere. */
	vm->caps.signal_msi = true;
	vm->supported_cpuid = host_cpuid;
	for (unsigned i = 0; i < cfg->vm.nr_cpus; i++)
		vm->vcpus[i] = (struct vcpu){ .vm = vm, .id = i, .fd = -1 };
	if (vmstate_init_host(vm, &host, err, sizeof(err)) < 0)
		bug("vmstate: %s", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmm_config cfg = { .vm = { .nr_cpus = 1, .mem_size = 256ull << 20 } };
	struct vmm_devices dev = { 0 };
	struct vm_restore *rs = NULL;
	static struct vm vm;
	char err[1200] = "";
	int r;

	if (!size)
		return 0;
	setup_once();
	write_file(data, size);
	cfg.restore = file_path;
	if (vm_restore_config(&cfg, err, sizeof(err)) < 0) {
		one_line("its configuration", err);
		goto out;
	}
	take_config(&cfg, data[0]);
	if (cfg.vm.mem_size > MEM_MAX)
		goto out;	/* checked as any other's, but held nowhere here */
	/* Zeros, as a new VM's memory is, wherever the last input wrote. */
	madvise(guest_mem, MEM_MAX, MADV_DONTNEED);
	fake_vcpus(&vm, &cfg);
	if (vmm_devices_create(&vm, &cfg, con, &dev, err, sizeof(err)) < 0)
		bug("the devices of an accepted configuration: %s", err[0] ? err : "?");
	r = vm_restore_read(&vm, file_path, &rs, err, sizeof(err));
	/* vm_restore_set() would hand KVM what was read: no KVM here. */
	if (r >= 0)
		r = vm_restore_devices(&vm, rs, file_path, err, sizeof(err));
	if (r < 0)
		one_line("the state", err);
	else if ((r = devices_checkpoint_cycle(&vm)) < 0)
		bug("a state that loaded does not save and load back: %s", strerror(-r));
	vm_restore_free(rs);
	vmm_devices_destroy(&dev);
	vmstate_free(&vm);
	fake_vm_release(&vm);
out:
	vmm_config_free(&cfg);
	return 0;
}

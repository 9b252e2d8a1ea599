// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Host quirks: everything vsrv does differently on a host whose KVM has no
 * hardware virtualization behind it (the kvm_pvm module on the project's
 * development and CI machines; see docs/test-host-kvm.md in shared/).  On
 * such a host guest kernel code is emulated instruction by instruction and
 * some instructions are not emulated at all.  On a host with VT-x/AMD-V
 * none of this is active unless forced with --host-quirks on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vm.h"

/* KVM's feature leaf: paravirtual features whose hypercalls hang there. */
#define KVM_CPUID_FEATURES	0x40000001u
#define KVM_FEATURE_PV_TLB_FLUSH	9
#define KVM_FEATURE_PV_SEND_IPI		11
#define KVM_FEATURE_PV_SCHED_YIELD	13

bool quirks_detect(void)
{
	char line[4096];
	bool hw = false;
	FILE *f;

	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		return true;
	f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5) && (strstr(line, " vmx") || strstr(line, " svm"))) {
			hw = true;
			break;
		}
	fclose(f);
	return !hw;
}

/*
 * INT3 and FWAIT are not emulated there.  FWAIT with no x87 exception
 * pending does nothing, so stepping over it is exact; INT3 is delivered as
 * the #BP it would raise, after its one byte, as hardware would.
 */
bool quirks_emulation_failure(struct vcpu *c)
{
	struct kvm_run *run = c->run;
	struct kvm_regs regs;
	uint8_t insn[8];

	if (run->internal.ndata < 2)
		return false;
	memcpy(insn, &run->internal.data[1], sizeof(insn));
	if (insn[0] < 1 || (insn[1] != 0xcc && insn[1] != 0x9b))
		return false;
	if (ioctl(c->fd, KVM_GET_REGS, &regs) < 0)
		return false;
	regs.rip += 1;
	if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
		return false;
	if (insn[1] == 0xcc) {
		struct kvm_vcpu_events ev;

		if (ioctl(c->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			return false;
		ev.exception.injected = 1;
		ev.exception.nr = 3;	/* #BP */
		ev.exception.has_error_code = 0;
		ev.flags = 0;
		if (ioctl(c->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			return false;
	}
	return true;
}

/* The features that matter come first: the kernel reads only so much of
 * clearcpuid=. */
const char *quirks_cmdline(struct vm *vm)
{
	if (!vm->quirks)
		return "";
	return "noxsave nosmap nosmep nopti "
	       "clearcpuid=popcnt,smap,smep,cx16,pcid,invpcid,fsgsbase,umip,movbe,"
	       "bmi1,bmi2,adx,rdrand,rdseed,rdpid,rdtscp,sha_ni,aes,pclmulqdq,avx,avx2,f16c";
}

void quirks_cpuid(struct vm *vm, struct kvm_cpuid2 *cpuid)
{
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function == KVM_CPUID_FEATURES)
			e->eax &= ~((1u << KVM_FEATURE_PV_TLB_FLUSH) |
				    (1u << KVM_FEATURE_PV_SEND_IPI) |
				    (1u << KVM_FEATURE_PV_SCHED_YIELD));
	}
}

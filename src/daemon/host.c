// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /v1/host: what the host offers VMs: CPUs, memory, and KVM with the
 * capabilities vsrv run relies on (asked of /dev/kvm each time: cheap,
 * and never stale).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "vsrvd.h"

static const struct {
	const char *name;
	int cap;
} kvm_caps[] = {
	{ "irqchip", KVM_CAP_IRQCHIP },
	{ "ioeventfd", KVM_CAP_IOEVENTFD },
	{ "irqfd", KVM_CAP_IRQFD },
	{ "signal_msi", KVM_CAP_SIGNAL_MSI },
	{ "irq_routing", KVM_CAP_IRQ_ROUTING },
	{ "nr_vcpus", KVM_CAP_NR_VCPUS },
	{ "max_vcpus", KVM_CAP_MAX_VCPUS },
	{ "vcpu_events", KVM_CAP_VCPU_EVENTS },
	{ "xsave", KVM_CAP_XSAVE },
	{ "immediate_exit", KVM_CAP_IMMEDIATE_EXIT },
	{ "readonly_mem", KVM_CAP_READONLY_MEM },
};

static json_t *kvm_info(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	json_t *o, *caps;

	if (fd < 0)
		return json_pack("{s:b, s:s}", "available", 0, "error", strerror(errno));
	caps = json_object();
	for (size_t i = 0; i < sizeof(kvm_caps) / sizeof(kvm_caps[0]); i++) {
		int v = ioctl(fd, KVM_CHECK_EXTENSION, kvm_caps[i].cap);

		json_object_set_new(caps, kvm_caps[i].name, json_integer(v < 0 ? 0 : v));
	}
	o = json_pack("{s:b, s:i, s:o}", "available", 1,
		      "api_version", ioctl(fd, KVM_GET_API_VERSION, 0), "capabilities", caps);
	close(fd);
	/* Software KVM (shared/docs/test-host-kvm.md): vsrv run applies its
	 * host quirks there. */
	json_object_set_new(o, "hardware_virtualization",
			    json_boolean(access("/sys/module/kvm_pvm", F_OK) != 0));
	return o;
}

static json_t *cpu_model(void)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[512];
	json_t *v = json_null();

	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && colon) {
			colon[strcspn(colon, "\n")] = 0;
			v = json_string(colon + 2);
			break;
		}
	}
	if (f)
		fclose(f);
	return v;
}

json_t *host_info(void)
{
	struct utsname u;
	struct sysinfo si;

	uname(&u);
	sysinfo(&si);
	return json_pack("{s:s, s:s, s:{s:i, s:i, s:o}, s:{s:I, s:I}, s:o}",
			 "hostname", u.nodename, "kernel", u.release,
			 "cpus", "online", (int)sysconf(_SC_NPROCESSORS_ONLN),
			 "configured", (int)sysconf(_SC_NPROCESSORS_CONF), "model", cpu_model(),
			 "memory", "total", (json_int_t)si.totalram * si.mem_unit,
			 "free", (json_int_t)si.freeram * si.mem_unit,
			 "kvm", kvm_info());
}

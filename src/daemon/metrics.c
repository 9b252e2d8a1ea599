// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /metrics in Prometheus' text format (version 0.0.4): the host, the
 * service, and each VM's state and resources.  The VMM's own counters
 * (exits, virtio queues) come through its control socket, once it has one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "vsrvd.h"

static const char *const states[] = { "stopped", "running", "stopping", "crashed", NULL };

/* Self-reported resident memory, from /proc/self/statm. */
static long rss_bytes(void)
{
	char buf[128];
	long pages = 0, rss = 0;

	if (read_small_file("/proc/self/statm", buf, sizeof(buf)) == 0)
		sscanf(buf, "%ld %ld", &pages, &rss);
	return rss * sysconf(_SC_PAGESIZE);
}

/* One metric with a sample per VM, from an integer field of each. */
static void per_vm(FILE *f, json_t *vms, const char *metric, const char *type, const char *help,
		   const char *field)
{
	json_t *vm;
	size_t i;

	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
	json_array_foreach(vms, i, vm)
		fprintf(f, "%s{vm=\"%s\"} %lld\n", metric,
			json_string_value(json_object_get(vm, "name")),
			(long long)json_integer_value(json_object_get(vm, field)));
}

char *metrics_render(struct vsrvd *d, size_t *len)
{
	char *out = NULL;
	FILE *f = open_memstream(&out, len);
	struct sysinfo si;
	json_t *vms, *vm;
	size_t i;

	if (!f)
		return NULL;
	sysinfo(&si);
	fprintf(f, "# HELP vsrv_host_cpus Online CPUs.\n# TYPE vsrv_host_cpus gauge\n"
		"vsrv_host_cpus %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	fprintf(f, "# HELP vsrv_host_memory_bytes Host memory.\n"
		"# TYPE vsrv_host_memory_bytes gauge\n"
		"vsrv_host_memory_bytes{kind=\"total\"} %llu\n"
		"vsrv_host_memory_bytes{kind=\"free\"} %llu\n",
		(unsigned long long)si.totalram * si.mem_unit,
		(unsigned long long)si.freeram * si.mem_unit);
	fprintf(f, "# HELP vsrvd_uptime_seconds Time since vsrvd started.\n"
		"# TYPE vsrvd_uptime_seconds gauge\nvsrvd_uptime_seconds %.3f\n",
		(double)(now_ms() - d->started_ms) / 1000);
	fprintf(f, "# HELP vsrvd_resident_memory_bytes vsrvd's resident set.\n"
		"# TYPE vsrvd_resident_memory_bytes gauge\nvsrvd_resident_memory_bytes %ld\n",
		rss_bytes());
	inventory_vm_list(d->inv, &vms);
	fprintf(f, "# HELP vsrv_vms VMs by state.\n# TYPE vsrv_vms gauge\n");
	for (const char *const *s = states; *s; s++) {
		unsigned n = 0;

		json_array_foreach(vms, i, vm)
			n += !strcmp(json_string_value(json_object_get(vm, "state")), *s);
		fprintf(f, "vsrv_vms{state=\"%s\"} %u\n", *s, n);
	}
	fprintf(f, "# HELP vsrv_vm_state 1 for the state each VM is in.\n"
		"# TYPE vsrv_vm_state gauge\n");
	json_array_foreach(vms, i, vm)
		fprintf(f, "vsrv_vm_state{vm=\"%s\",state=\"%s\"} 1\n",
			json_string_value(json_object_get(vm, "name")),
			json_string_value(json_object_get(vm, "state")));
	per_vm(f, vms, "vsrv_vm_vcpus", "gauge", "vCPUs.", "vcpus");
	per_vm(f, vms, "vsrv_vm_memory_bytes", "gauge", "Guest memory.", "memory");
	json_array_foreach(vms, i, vm)
		supervisor_describe(d->sv, vm);
	per_vm(f, vms, "vsrv_vm_restarts_total", "counter",
	       "Automatic restarts since vsrvd started.", "restarts");
	json_decref(vms);
	fclose(f);
	return out;
}

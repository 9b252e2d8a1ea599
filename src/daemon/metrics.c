// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * /metrics in Prometheus' text format (version 0.0.4): the host, the
 * service, each VM's state and resources, and each running VM's counters
 * from its VMM's control socket (`stats`, docs/control.md): vCPU time and
 * exits, each disk's and each NIC's, memory touched, the VMM's resident
 * memory.  Those come from supervisor_stats(), which waits a second at
 * most for a VMM that does not answer and leaves it out.  A disk is its
 * index in the VM's disks (the k-th virtio-blk device), a NIC its index
 * in its NICs (the k-th virtio-net); *_info metrics give their paths and
 * MACs.  Counters the VMM does not report are left out, not shown as 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "vsrvd.h"

static const char *const states[] = { "stopped", "running", "paused", "shutting-down", "saving",
				      "stopping", "crashed", "saved", NULL };

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

/* A label's value as the format wants it: \, " and newlines escaped. */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void family(FILE *f, const char *metric, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, type);
}

/* The k-th device of `stats` whose name starts with `kind` ("virtio-blk "). */
static json_t *device(json_t *stats, const char *kind, size_t k)
{
	json_t *dev;
	size_t i;

	json_array_foreach(json_object_get(stats, "devices"), i, dev) {
		const char *name = json_string_value(json_object_get(dev, "name"));

		if (name && !strncmp(name, kind, strlen(kind)) && k-- == 0)
			return json_object_get(dev, "counters");
	}
	return NULL;
}

/* One sample per VM disk (or NIC) from counter `key` of its device,
 * with `extra` labels after vm and disk. */
static void per_device(FILE *f, json_t *vms, json_t *stats, const char *list, const char *kind,
		       const char *label, const char *metric, const char *extra, const char *key,
		       double scale)
{
	json_t *vm, *item;
	size_t i, k;

	json_array_foreach(vms, i, vm) {
		json_t *st = json_object_get(stats, json_string_value(json_object_get(vm, "name")));

		json_array_foreach(json_object_get(vm, list), k, item) {
			json_t *v = json_object_get(device(st, kind, k), key);

			if (!json_is_integer(v))
				continue;
			fprintf(f, "%s{vm=\"%s\",%s=\"%zu\"%s} ", metric,
				json_string_value(json_object_get(vm, "name")), label, k, extra);
			if (scale == 1)
				fprintf(f, "%lld\n", (long long)json_integer_value(v));
			else
				fprintf(f, "%.9g\n", (double)json_integer_value(v) * scale);
		}
	}
}

static void disk_metrics(FILE *f, json_t *vms, json_t *stats)
{
	static const struct { const char *op, *count, *bytes; } ops[] = {
		{ "read", "reads", "read_bytes" }, { "write", "writes", "write_bytes" },
		{ "flush", "flushes", NULL }, { "discard", "discards", "discard_bytes" },
		{ "write_zeroes", "write_zeroes", "write_zeroes_bytes" },
	};
	char extra[64];
	json_t *vm, *disk;
	size_t i, k;

	family(f, "vsrv_vm_disk_info", "gauge", "A VM's disk: its index and path.");
	json_array_foreach(vms, i, vm)
		json_array_foreach(json_object_get(vm, "disks"), k, disk) {
			fprintf(f, "vsrv_vm_disk_info{vm=\"%s\",disk=\"%zu\",path=\"",
				json_string_value(json_object_get(vm, "name")), k);
			put_label(f, json_string_value(json_object_get(disk, "path")));
			fputs("\"} 1\n", f);
		}
	family(f, "vsrv_vm_disk_requests_total", "counter",
	       "Requests a VM's disk answered, by operation.");
	for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
		snprintf(extra, sizeof(extra), ",op=\"%s\"", ops[o].op);
		per_device(f, vms, stats, "disks", "virtio-blk ", "disk",
			   "vsrv_vm_disk_requests_total", extra, ops[o].count, 1);
	}
	family(f, "vsrv_vm_disk_bytes_total", "counter", "Bytes a VM's disk moved, by operation.");
	for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
		if (!ops[o].bytes)
			continue;
		snprintf(extra, sizeof(extra), ",op=\"%s\"", ops[o].op);
		per_device(f, vms, stats, "disks", "virtio-blk ", "disk",
			   "vsrv_vm_disk_bytes_total", extra, ops[o].bytes, 1);
	}
	family(f, "vsrv_vm_disk_errors_total", "counter",
	       "Requests a VM's disk answered with an error.");
	per_device(f, vms, stats, "disks", "virtio-blk ", "disk", "vsrv_vm_disk_errors_total", "",
		   "errors", 1);
	/* The VMM's log2 buckets of microseconds, [2^(b-1), 2^b), made
	 * cumulative.  It keeps no sum of the times: no _sum sample. */
	family(f, "vsrv_vm_disk_latency_seconds", "histogram",
	       "Time from a request's arrival to its answer (no _sum: the VMM counts buckets only).");
	json_array_foreach(vms, i, vm) {
		json_t *st = json_object_get(stats, json_string_value(json_object_get(vm, "name")));

		json_array_foreach(json_object_get(vm, "disks"), k, disk) {
			json_t *c = device(st, "virtio-blk ", k);
			uint64_t total = 0;

			if (!c)
				continue;
			for (unsigned b = 0; b <= 23; b++) {
				char key[48];

				if (b == 23)
					snprintf(key, sizeof(key), "latency_us_%llu_up", 1ull << 22);
				else
					snprintf(key, sizeof(key), "latency_us_%llu_%llu",
						 b ? 1ull << (b - 1) : 0, 1ull << b);
				total += (uint64_t)json_integer_value(json_object_get(c, key));
				fprintf(f, "vsrv_vm_disk_latency_seconds_bucket{vm=\"%s\",disk=\"%zu\",le=\"",
					json_string_value(json_object_get(vm, "name")), k);
				if (b == 23)
					fputs("+Inf", f);
				else
					fprintf(f, "%.6f", (double)(1ull << b) / 1e6);
				fprintf(f, "\"} %llu\n", (unsigned long long)total);
			}
			fprintf(f, "vsrv_vm_disk_latency_seconds_count{vm=\"%s\",disk=\"%zu\"} %llu\n",
				json_string_value(json_object_get(vm, "name")), k,
				(unsigned long long)total);
		}
	}
}

static void nic_metrics(FILE *f, json_t *vms, json_t *stats)
{
	static const char *const what[][2] = {
		{ "packets", "Frames a VM's NIC passed, by direction (rx: to the guest)." },
		{ "bytes", "Bytes a VM's NIC passed, by direction." },
		{ "dropped", "Frames a VM's NIC dropped, by direction." },
		{ "errors", "Frames a VM's NIC refused as malformed, by direction." },
	};
	json_t *vm, *nic;
	size_t i, k;

	family(f, "vsrv_vm_nic_info", "gauge", "A VM's NIC: its index, network and MAC.");
	json_array_foreach(vms, i, vm)
		json_array_foreach(json_object_get(vm, "nics"), k, nic)
			fprintf(f, "vsrv_vm_nic_info{vm=\"%s\",nic=\"%zu\",network=\"%s\",mac=\"%s\"} 1\n",
				json_string_value(json_object_get(vm, "name")), k,
				json_string_value(json_object_get(nic, "network")),
				json_string_value(json_object_get(nic, "mac")));
	for (size_t w = 0; w < sizeof(what) / sizeof(what[0]); w++) {
		char metric[64], key[32];

		snprintf(metric, sizeof(metric), "vsrv_vm_nic_%s_total", what[w][0]);
		family(f, metric, "counter", what[w][1]);
		for (int dir = 0; dir < 2; dir++) {
			snprintf(key, sizeof(key), "%s_%s", dir ? "tx" : "rx", what[w][0]);
			per_device(f, vms, stats, "nics", "virtio-net ", "nic", metric,
				   dir ? ",direction=\"tx\"" : ",direction=\"rx\"", key, 1);
		}
	}
}

/* What each running VM's VMM counts (supervisor_stats()). */
static void vmm_metrics(FILE *f, json_t *vms, json_t *stats)
{
	const char *name;
	json_t *st, *cpu, *v;
	size_t i;

	family(f, "vsrv_vm_vcpu_seconds_total", "counter",
	       "Time each vCPU spent in the guest (in KVM_RUN, halted included) and in the VMM handling its exits.");
	json_object_foreach(stats, name, st)
		json_array_foreach(json_object_get(st, "vcpus"), i, cpu) {
			long long id = json_integer_value(json_object_get(cpu, "id"));

			fprintf(f, "vsrv_vm_vcpu_seconds_total{vm=\"%s\",vcpu=\"%lld\",mode=\"guest\"} %.9f\n",
				name, id, (double)json_integer_value(json_object_get(cpu, "guest_ns")) / 1e9);
			fprintf(f, "vsrv_vm_vcpu_seconds_total{vm=\"%s\",vcpu=\"%lld\",mode=\"vmm\"} %.9f\n",
				name, id, (double)json_integer_value(json_object_get(cpu, "vmm_ns")) / 1e9);
		}
	family(f, "vsrv_vm_exits_total", "counter",
	       "Exits from the guest to the VMM, by vCPU and KVM_EXIT reason.");
	json_object_foreach(stats, name, st)
		json_array_foreach(json_object_get(st, "vcpus"), i, cpu) {
			const char *reason;

			json_object_foreach(json_object_get(cpu, "exits"), reason, v)
				fprintf(f, "vsrv_vm_exits_total{vm=\"%s\",vcpu=\"%lld\",reason=\"%s\"} %lld\n",
					name, (long long)json_integer_value(json_object_get(cpu, "id")),
					reason, (long long)json_integer_value(v));
		}
	family(f, "vsrv_vm_memory_touched_bytes", "gauge",
	       "Guest memory with a page behind it (present or swapped).");
	json_object_foreach(stats, name, st)
		if ((v = json_object_get(json_object_get(st, "memory"), "touched")))
			fprintf(f, "vsrv_vm_memory_touched_bytes{vm=\"%s\"} %lld\n", name,
				(long long)json_integer_value(v));
	family(f, "vsrv_vm_vmm_resident_bytes", "gauge",
	       "Resident memory of the VMM's processes (vsrv with its console, the VM's).");
	json_object_foreach(stats, name, st)
		for (const char *const *p = (const char *const[]){ "vsrv", "vm", NULL };
		     *p; p++)
			if ((v = json_object_get(json_object_get(st, "rss"), *p)))
				fprintf(f, "vsrv_vm_vmm_resident_bytes{vm=\"%s\",process=\"%s\"} %lld\n",
					name, *p, (long long)json_integer_value(v));
	disk_metrics(f, vms, stats);
	nic_metrics(f, vms, stats);
}

char *metrics_render(struct vsrvd *d, size_t *len)
{
	char *out = NULL;
	FILE *f = open_memstream(&out, len);
	struct sysinfo si;
	json_t *vms, *vm, *stats;
	size_t i;

	if (!f)
		return NULL;
	/* First: the VMMs' answers may take a moment. */
	stats = supervisor_stats(d->sv);
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
	vmm_metrics(f, vms, stats);
	json_decref(stats);
	json_decref(vms);
	fclose(f);
	return out;
}

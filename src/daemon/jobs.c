// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Disk jobs: convert, commit and compact through libvhd, run by a few
 * worker threads (max_jobs) so that the API never waits for a disk.
 *
 *   queued -> running -> done | failed | cancelled
 *   queued -> cancelled
 *
 * A job's progress is libvhd's (bytes of the disk gone through, of a
 * total that does not change), only ever rising: GET shows it, and the
 * event stream has a job.progress event at each tenth and at most every
 * second between them, ending with 100% before job.done.  A cancel sets a
 * flag that the progress callback answers, so libvhd stops at its next
 * report and leaves every file as it was: a convert's partial target is
 * removed, a commit's chain reads as before, a compacted disk stays
 * consistent.  An optional speed (bytes a second) spaces the reports out,
 * as QEMU's block jobs do, so that a long job leaves the disks to the VMs.
 *
 * Each job is a row of the inventory's jobs table (the newest JOBS_KEEP
 * are kept), written at every change of state: a vsrvd that stops cancels
 * its jobs, and one that was killed finds them at its next start and
 * fails them, removing a convert's half-written target.
 *
 * One lock over the list; a job's libvhd call runs without it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vhd.h"
#include "vsrvd.h"

#define JOBS_KEEP		1000
#define CANCEL_WAIT_MS		30000
#define PROGRESS_EVENT_MS	1000

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED };

static const char *const state_names[] = {
	[JOB_QUEUED] = "queued", [JOB_RUNNING] = "running", [JOB_DONE] = "done",
	[JOB_FAILED] = "failed", [JOB_CANCELLED] = "cancelled",
};

struct job {
	struct job *next;
	int64_t id;
	json_t *spec;			/* vmspec.c's, with source resolved (api-jobs.c) */
	enum job_state state;
	uint64_t done, total;
	char error[512];
	json_t *result;
	int64_t created_at, started_at, finished_at;
	bool cancel;
	uint64_t run_start;		/* mono_ms, for speed */
	int event_pct;			/* the last job.progress event's percentage */
	uint64_t event_at;
};

struct jobs {
	struct vsrvd *d;
	pthread_mutex_t lock;
	pthread_cond_t work;		/* a job is queued, or vsrvd stops */
	pthread_cond_t changed;		/* a job ended, or is to be cancelled */
	struct job *head, *tail;	/* oldest first */
	unsigned count;
	pthread_t *workers;
	unsigned nworkers;
	bool stopping;
};

static const char *str(const struct job *j, const char *key)
{
	return json_string_value(json_object_get(j->spec, key));
}

static int percent(const struct job *j)
{
	if (j->state == JOB_DONE)
		return 100;
	return j->total ? (int)(j->done * 100 / j->total) : 0;
}

static json_t *describe(const struct job *j)
{
	json_t *o = json_deep_copy(j->spec);

	json_object_set_new(o, "id", json_integer(j->id));
	json_object_set_new(o, "state", json_string(state_names[j->state]));
	json_object_set_new(o, "progress", json_pack("{s:I, s:I, s:i}",
		"done", (json_int_t)j->done, "total", (json_int_t)j->total, "percent", percent(j)));
	json_object_set_new(o, "error", j->error[0] ? json_string(j->error) : json_null());
	json_object_set_new(o, "result", j->result ? json_incref(j->result) : json_null());
	json_object_set_new(o, "created_at", json_integer(j->created_at));
	json_object_set_new(o, "started_at", j->started_at ? json_integer(j->started_at) :
			    json_null());
	json_object_set_new(o, "finished_at", j->finished_at ? json_integer(j->finished_at) :
			    json_null());
	if (j->state == JOB_RUNNING && j->cancel)
		json_object_set_new(o, "cancelling", json_true());
	return o;
}

static void save(struct jobs *js, struct job *j)
{
	inventory_job_save(js->d->inv, j->id, state_names[j->state], j->done, j->total,
			   j->error[0] ? j->error : NULL, j->result, j->started_at,
			   j->finished_at);
}

/* "job 3 (convert of /d/a.vhd)" for events and messages. */
static void label(const struct job *j, char *buf, size_t len)
{
	snprintf(buf, len, "job %lld (%s of %s)", (long long)j->id, str(j, "type"),
		 str(j, "source"));
}

static void end(struct jobs *js, struct job *j, enum job_state s, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Under the lock: the job's last state, recorded and told. */
static void end(struct jobs *js, struct job *j, enum job_state s, const char *fmt, ...)
{
	static const char *const events[] = {
		[JOB_DONE] = "job.done", [JOB_FAILED] = "job.failed",
		[JOB_CANCELLED] = "job.cancelled",
	};
	char what[600];

	j->state = s;
	j->finished_at = (int64_t)now_ms();
	if (fmt) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(j->error, sizeof(j->error), fmt, ap);
		va_end(ap);
	}
	save(js, j);
	label(j, what, sizeof(what));
	if (s == JOB_DONE)
		events_log(js->d->ev, events[s], NULL, "%s: done", what);
	else
		events_log(js->d->ev, events[s], NULL, "%s: %s", what, j->error);
	pthread_cond_broadcast(&js->changed);
}

static struct job *find(struct jobs *js, int64_t id)
{
	for (struct job *j = js->head; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

static void job_free(struct job *j)
{
	json_decref(j->spec);
	json_decref(j->result);
	free(j);
}

static void append(struct jobs *js, struct job *j)
{
	if (js->tail)
		js->tail->next = j;
	else
		js->head = j;
	js->tail = j;
	js->count++;
	/* Forget the oldest that are over, as the inventory does. */
	while (js->count > JOBS_KEEP && js->head->state > JOB_RUNNING) {
		struct job *old = js->head;

		js->head = old->next;
		js->count--;
		job_free(old);
	}
}

/* ---- running one ---- */

struct run {
	struct jobs *js;
	struct job *j;
};

static void progress_event(struct jobs *js, struct job *j)
{
	int pct = percent(j);
	uint64_t now = mono_ms();
	char what[600];

	if (pct == j->event_pct ||
	    (pct / 10 == j->event_pct / 10 && now - j->event_at < PROGRESS_EVENT_MS))
		return;
	j->event_pct = pct;
	j->event_at = now;
	save(js, j);	/* as far as a later vsrvd will know */
	label(j, what, sizeof(what));
	events_log(js->d->ev, "job.progress", NULL, "%s: %d%% (%llu of %llu bytes)", what, pct,
		   (unsigned long long)j->done, (unsigned long long)j->total);
}

/* libvhd's progress callback: records, tells, keeps to the speed, and
 * answers whether to stop. */
static int on_progress(void *opaque, uint64_t done, uint64_t total)
{
	struct run *run = opaque;
	struct job *j = run->j;
	json_int_t speed = json_integer_value(json_object_get(j->spec, "speed"));
	bool stop;

	pthread_mutex_lock(&run->js->lock);
	j->total = total;
	if (done > j->done)
		j->done = done < total ? done : total;
	progress_event(run->js, j);
	if (speed > 0) {
		uint64_t due = j->run_start + j->done * 1000 / (uint64_t)speed;
		struct timespec ts;

		while (!j->cancel && mono_ms() < due) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)((due - mono_ms()) / 1000);
			ts.tv_nsec += (long)((due - mono_ms()) % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&run->js->changed, &run->js->lock, &ts);
		}
	}
	stop = j->cancel;
	pthread_mutex_unlock(&run->js->lock);
	return stop;
}

/* The name of the inventory's disk at path, if it has one. */
static bool disk_at(struct inventory *inv, const char *path, char *name, size_t len)
{
	json_t *list, *d;
	bool found = false;
	size_t i;

	inventory_disk_list(inv, &list);
	json_array_foreach(list, i, d) {
		if (!found && !strcmp(json_string_value(json_object_get(d, "path")), path)) {
			snprintf(name, len, "%s", json_string_value(json_object_get(d, "name")));
			found = true;
		}
	}
	json_decref(list);
	return found;
}

static json_t *file_result(const char *path)
{
	struct stat st;

	return json_pack("{s:s, s:I}", "path", path,
			 "file_size", stat(path, &st) == 0 ? (json_int_t)st.st_size : (json_int_t)-1);
}

/* The libvhd call; 0 and j->result, or a negative errno and err. */
static int execute(struct jobs *js, struct job *j, struct vhd_error *err)
{
	struct run run = { .js = js, .j = j };
	struct vhd_progress pr = { .fn = on_progress, .opaque = &run };
	const char *type = str(j, "type"), *src = str(j, "source");
	struct vsrvd_err e = { 0 };
	char disk[72];
	int r;

	if (!strcmp(type, "convert")) {
		const char *to = str(j, "to"), *dst = str(j, "path"), *name = str(j, "name");
		struct vhd_convert_opts o = {
			.to = !strcmp(to, "raw") ? VHD_CONVERT_RAW : !strcmp(to, "fixed") ?
			      VHD_CONVERT_FIXED : VHD_CONVERT_DYNAMIC,
			.block_size = (uint32_t)json_integer_value(json_object_get(j->spec,
										   "block_size")),
			.sync = true,		/* a managed disk is on disk when it is done */
			.progress = &pr,
		};

		r = vhd_convert(src, dst, &o, err);
		if (r == 0 && name) {
			json_t *rec = json_pack("{s:s, s:s, s:s, s:I}", "name", name, "path", dst,
						"type", to, "size", (json_int_t)j->total);

			r = inventory_disk_add(js->d->inv, rec, &e);
			json_decref(rec);
			if (r < 0) {
				unlink(dst);
				snprintf(err->msg, sizeof(err->msg), "%s", e.msg);
				return r;
			}
			events_log(js->d->ev, "disk.created", NULL, "disk %s at %s (job %lld)", name,
				   dst, (long long)j->id);
		}
		if (r == 0)
			j->result = file_result(dst);
		if (r == 0 && name)
			json_object_set_new(j->result, "disk", json_string(name));
	} else if (!strcmp(type, "commit")) {
		r = vhd_commit(src, 0, false, json_is_true(json_object_get(j->spec, "force")), NULL,
			       NULL, &pr, err);
		/* The child is merged and gone: so is its record, however the
		 * job named it. */
		if (r == 0 && disk_at(js->d->inv, src, disk, sizeof(disk)) &&
		    inventory_disk_delete(js->d->inv, disk, NULL) == 0)
			events_log(js->d->ev, "disk.deleted", NULL, "disk %s: committed into %s (job %lld)",
				   disk, str(j, "parent"), (long long)j->id);
		if (r == 0)
			j->result = file_result(str(j, "parent"));
	} else {
		uint64_t freed = 0;

		r = vhd_compact(src, 0, &pr, &freed, err);
		if (r == 0) {
			j->result = file_result(src);
			json_object_set_new(j->result, "freed", json_integer((json_int_t)freed));
		}
	}
	return r;
}

static struct job *next_queued(struct jobs *js)
{
	for (struct job *j = js->head; j; j = j->next)
		if (j->state == JOB_QUEUED)
			return j;
	return NULL;
}

static void *worker(void *opaque)
{
	struct jobs *js = opaque;

	pthread_mutex_lock(&js->lock);
	for (;;) {
		struct vhd_error err = { 0 };
		struct job *j = NULL;
		char what[600];
		int r;

		while (!js->stopping && !(j = next_queued(js)))
			pthread_cond_wait(&js->work, &js->lock);
		if (js->stopping)
			break;
		j->state = JOB_RUNNING;
		j->started_at = (int64_t)now_ms();
		j->run_start = mono_ms();
		j->event_pct = -1;
		save(js, j);
		label(j, what, sizeof(what));
		events_log(js->d->ev, "job.started", NULL, "%s: started", what);
		pthread_mutex_unlock(&js->lock);

		r = execute(js, j, &err);

		pthread_mutex_lock(&js->lock);
		if (r == 0) {
			j->done = j->total;
			j->state = JOB_DONE;
			if (j->event_pct != 100) {
				j->event_pct = -1;	/* 100% is always said */
				progress_event(js, j);
			}
			end(js, j, JOB_DONE, NULL);
		} else if (r == -ECANCELED) {
			end(js, j, JOB_CANCELLED, "%s%s", err.msg[0] ? err.msg : "cancelled",
			    js->stopping ? " (vsrvd is stopping)" : "");
		} else {
			end(js, j, JOB_FAILED, "%s", err.msg[0] ? err.msg : strerror(-r));
		}
	}
	pthread_mutex_unlock(&js->lock);
	return NULL;
}

/* ---- the API's side ---- */

int jobs_create(struct jobs **out, struct vsrvd *d, unsigned workers)
{
	struct jobs *js = calloc(1, sizeof(*js));
	pthread_condattr_t ca;
	json_t *rows, *row;
	size_t i;

	if (!js)
		return -ENOMEM;
	js->d = d;
	pthread_mutex_init(&js->lock, NULL);
	pthread_cond_init(&js->work, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&js->changed, &ca);
	pthread_condattr_destroy(&ca);
	/* The record, and what an earlier vsrvd left unfinished. */
	inventory_job_list(d->inv, JOBS_KEEP, &rows);
	json_array_foreach(rows, i, row) {
		struct job *j = calloc(1, sizeof(*j));
		const char *state = json_string_value(json_object_get(row, "state"));

		if (!j)
			break;
		j->id = json_integer_value(json_object_get(row, "id"));
		j->spec = json_incref(json_object_get(row, "spec"));
		if (!json_is_object(j->spec)) {
			json_decref(j->spec);
			j->spec = json_object();
		}
		for (j->state = JOB_QUEUED; j->state < JOB_CANCELLED &&
		     strcmp(state_names[j->state], state); j->state++)
			;
		j->done = (uint64_t)json_integer_value(json_object_get(row, "done"));
		j->total = (uint64_t)json_integer_value(json_object_get(row, "total"));
		snprintf(j->error, sizeof(j->error), "%s",
			 json_string_value(json_object_get(row, "error")) ?: "");
		if (json_is_object(json_object_get(row, "result")))
			j->result = json_incref(json_object_get(row, "result"));
		j->created_at = json_integer_value(json_object_get(row, "created_at"));
		j->started_at = json_integer_value(json_object_get(row, "started_at"));
		j->finished_at = json_integer_value(json_object_get(row, "finished_at"));
		append(js, j);
		if (j->state == JOB_QUEUED) {
			end(js, j, JOB_CANCELLED, "vsrvd stopped before the job started");
		} else if (j->state == JOB_RUNNING) {
			/* A convert made its target with O_EXCL: what is there is
			 * its half-written output. */
			bool partial = !strcmp(str(j, "type") ?: "", "convert") && str(j, "path") &&
				       unlink(str(j, "path")) == 0;

			end(js, j, JOB_FAILED, "vsrvd stopped during the job%s", partial ?
			    "; its partial target is removed" : "");
		}
	}
	json_decref(rows);
	js->workers = calloc(workers, sizeof(*js->workers));
	for (unsigned k = 0; js->workers && k < workers; k++)
		if (pthread_create(&js->workers[k], NULL, worker, js) == 0)
			js->nworkers++;
	if (!js->nworkers) {
		jobs_destroy(js);
		return -EIO;
	}
	*out = js;
	return 0;
}

void jobs_destroy(struct jobs *js)
{
	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	js->stopping = true;
	for (struct job *j = js->head; j; j = j->next) {
		if (j->state == JOB_QUEUED)
			end(js, j, JOB_CANCELLED, "vsrvd stopped before the job started");
		j->cancel = true;
	}
	pthread_cond_broadcast(&js->work);
	pthread_cond_broadcast(&js->changed);
	pthread_mutex_unlock(&js->lock);
	for (unsigned k = 0; k < js->nworkers; k++)
		pthread_join(js->workers[k], NULL);
	free(js->workers);
	while (js->head) {
		struct job *j = js->head;

		js->head = j->next;
		job_free(j);
	}
	pthread_cond_destroy(&js->work);
	pthread_cond_destroy(&js->changed);
	pthread_mutex_destroy(&js->lock);
	free(js);
}

/* Whether a job (its spec) reads path (1) or writes it (2): a convert
 * reads its source and writes its target, a commit writes the child and
 * its parent, a compact its disk. */
static int use_of(const json_t *spec, const char *path)
{
	const char *type = json_string_value(json_object_get(spec, "type"));
	int use = 0;

	for (const char *const *k = (const char *const[]){ "source", "path", "parent", NULL }; *k;
	     k++) {
		const char *p = json_string_value(json_object_get(spec, *k));

		if (p && !strcmp(p, path))
			use |= !strcmp(*k, "source") && !strcmp(type, "convert") ? 1 : 2;
	}
	return use;
}

/* 409 unless every queued or running job that uses path only reads it,
 * as the new use (1 read, 2 write, 3 either: any use at all) would. */
static int busy_locked(struct jobs *js, const char *path, int use, struct vsrvd_err *e)
{
	for (struct job *j = js->head; j; j = j->next) {
		int theirs = j->state <= JOB_RUNNING ? use_of(j->spec, path) : 0;

		if (theirs && (theirs > 1 || use > 1))
			return vsrvd_fail(e, 409, -EBUSY, "%s: job %lld (%s) is %s on it", path,
					  (long long)j->id, str(j, "type"), state_names[j->state]);
	}
	return 0;
}

int jobs_busy(struct jobs *js, const char *path, struct vsrvd_err *e)
{
	int r;

	pthread_mutex_lock(&js->lock);
	r = busy_locked(js, path, 3, e);
	pthread_mutex_unlock(&js->lock);
	return r;
}

static int conflict_locked(struct jobs *js, const json_t *spec, struct vsrvd_err *e)
{
	int r = 0;

	for (const char *const *k = (const char *const[]){ "source", "path", "parent", NULL };
	     *k && r == 0; k++) {
		const char *p = json_string_value(json_object_get(spec, *k));

		if (p)
			r = busy_locked(js, p, use_of(spec, p), e);
	}
	return r;
}

int jobs_conflict(struct jobs *js, const json_t *spec, struct vsrvd_err *e)
{
	int r;

	pthread_mutex_lock(&js->lock);
	r = conflict_locked(js, spec, e);
	pthread_mutex_unlock(&js->lock);
	return r;
}

int jobs_submit(struct jobs *js, json_t *spec, json_t **out, struct vsrvd_err *e)
{
	struct job *j;
	char what[600];
	int r;

	pthread_mutex_lock(&js->lock);
	r = conflict_locked(js, spec, e);
	j = r == 0 ? calloc(1, sizeof(*j)) : NULL;
	if (r == 0 && !j)
		r = vsrvd_fail(e, 500, -ENOMEM, "out of memory");
	if (r == 0) {
		j->spec = json_incref(spec);
		j->created_at = (int64_t)now_ms();
		r = inventory_job_add(js->d->inv, json_string_value(json_object_get(spec, "type")),
				      spec, j->created_at, JOBS_KEEP, &j->id, e);
		if (r < 0) {
			job_free(j);
		} else {
			append(js, j);
			label(j, what, sizeof(what));
			events_log(js->d->ev, "job.queued", NULL, "%s: queued", what);
			pthread_cond_signal(&js->work);
			*out = describe(j);
		}
	}
	pthread_mutex_unlock(&js->lock);
	return r;
}

int jobs_get(struct jobs *js, int64_t id, json_t **out, struct vsrvd_err *e)
{
	struct job *j;

	pthread_mutex_lock(&js->lock);
	j = find(js, id);
	if (j)
		*out = describe(j);
	pthread_mutex_unlock(&js->lock);
	return j ? 0 : vsrvd_fail(e, 404, -ENOENT, "job %lld: no such job", (long long)id);
}

int jobs_list(struct jobs *js, json_t **out)
{
	*out = json_array();
	pthread_mutex_lock(&js->lock);
	for (struct job *j = js->head; j; j = j->next)
		json_array_append_new(*out, describe(j));
	pthread_mutex_unlock(&js->lock);
	return 0;
}

int jobs_cancel(struct jobs *js, int64_t id, json_t **out, struct vsrvd_err *e)
{
	uint64_t until = mono_ms() + CANCEL_WAIT_MS;
	struct job *j;
	int r = 0;

	pthread_mutex_lock(&js->lock);
	j = find(js, id);
	if (!j) {
		r = vsrvd_fail(e, 404, -ENOENT, "job %lld: no such job", (long long)id);
	} else if (j->state == JOB_QUEUED) {
		end(js, j, JOB_CANCELLED, "cancelled before it started");
	} else if (j->state == JOB_RUNNING) {
		/* The worker sees it at its next progress report, within a
		 * block; the answer waits for the files to be as they were. */
		j->cancel = true;
		pthread_cond_broadcast(&js->changed);
		while (j->state == JOB_RUNNING && mono_ms() < until) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&js->changed, &js->lock, &ts);
		}
	} else {
		r = vsrvd_fail(e, 409, -EBUSY, "job %lld: %s, not running", (long long)id,
			       state_names[j->state]);
	}
	if (r == 0)
		*out = describe(j);
	pthread_mutex_unlock(&js->lock);
	return r;
}

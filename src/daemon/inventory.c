// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The inventory: what vsrvd holds, in SQLite (STATE/inventory.db).
 *
 * WAL, so readers never wait for the writer and a kill -9 of vsrvd loses
 * nothing committed; synchronous=NORMAL, so a commit costs no fsync (a
 * power cut may lose the last commits, never the database's consistency);
 * foreign keys on, so a NIC cannot name a network that is gone.  The schema
 * is versioned: migrations[] takes it from each version to the next, each
 * in one transaction, and a database newer than this vsrvd is refused.
 *
 * One connection, one lock: requests come from the API's threads and the
 * supervisor's; every function here takes the lock for its whole work, so
 * what it reads and writes is one consistent step.
 *
 * A VM is handed around as the JSON object the API shows; its scalar
 * fields are columns of the same names (vmspec.c checked them, so a key is
 * always one of vm_columns[]), its disks and NICs rows of their own tables.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "vsrvd.h"

static const char *const migrations[] = {
	/* 1: the first schema. */
	"CREATE TABLE vms ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" uuid TEXT NOT NULL UNIQUE,"
	" description TEXT NOT NULL DEFAULT '',"
	" vcpus INTEGER NOT NULL,"
	" memory INTEGER NOT NULL,"
	" kernel TEXT NOT NULL,"
	" initrd TEXT,"
	" cmdline TEXT NOT NULL DEFAULT '',"
	" rng INTEGER NOT NULL DEFAULT 0,"
	" test_device INTEGER NOT NULL DEFAULT 0,"
	" autostart INTEGER NOT NULL DEFAULT 0,"
	" restart_policy TEXT NOT NULL DEFAULT 'never'"
	"  CHECK (restart_policy IN ('never', 'on-crash', 'always')),"
	" cpu_weight INTEGER,"
	" cpu_cap INTEGER,"
	" memory_limit INTEGER,"
	" state TEXT NOT NULL DEFAULT 'stopped',"
	" monitor_pid INTEGER NOT NULL DEFAULT 0,"
	" last_exit TEXT,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE networks ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" type TEXT NOT NULL CHECK (type IN ('user', 'internal', 'bridge')),"
	" bridge TEXT,"
	" dhcp INTEGER NOT NULL DEFAULT 0,"
	" subnet TEXT,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE vm_disks ("
	" vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
	" idx INTEGER NOT NULL,"
	" path TEXT NOT NULL,"
	" undo INTEGER NOT NULL DEFAULT 0,"
	" readonly INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (vm_id, idx));"
	"CREATE TABLE nics ("
	" vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
	" idx INTEGER NOT NULL,"
	" network_id INTEGER NOT NULL REFERENCES networks(id),"
	" mac TEXT NOT NULL UNIQUE,"
	" PRIMARY KEY (vm_id, idx));"
	"CREATE TABLE disks ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" path TEXT NOT NULL UNIQUE,"
	" type TEXT NOT NULL,"
	" size INTEGER NOT NULL,"
	" parent TEXT,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time INTEGER NOT NULL,"
	" type TEXT NOT NULL,"
	" vm TEXT,"
	" message TEXT NOT NULL);",
	/* 2: the event log is read per VM. */
	"CREATE INDEX events_vm ON events (vm, id);",
	/* 3: what the service's stop does to a VM (NULL: the service's
	 * on_stop); a disk's undo mode (was a boolean: true meant keep) and
	 * its cache. */
	"ALTER TABLE vms ADD COLUMN on_stop TEXT"
	" CHECK (on_stop IN ('leave', 'power-off', 'shutdown', 'save'));"
	"ALTER TABLE vm_disks ADD COLUMN undo_mode TEXT NOT NULL DEFAULT 'none'"
	" CHECK (undo_mode IN ('none', 'commit', 'keep', 'discard'));"
	"ALTER TABLE vm_disks ADD COLUMN cache TEXT NOT NULL DEFAULT 'writeback'"
	" CHECK (cache IN ('writeback', 'none', 'unsafe'));"
	"UPDATE vm_disks SET undo_mode = 'keep' WHERE undo = 1;"
	"ALTER TABLE vm_disks DROP COLUMN undo;"
	"ALTER TABLE vm_disks RENAME COLUMN undo_mode TO undo;",
	/* 4: disk jobs (jobs.c), kept past a restart; spec and result are
	 * JSON objects. */
	"CREATE TABLE jobs ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" type TEXT NOT NULL CHECK (type IN ('convert', 'commit', 'compact')),"
	" state TEXT NOT NULL"
	"  CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),"
	" spec TEXT NOT NULL,"
	" done INTEGER NOT NULL DEFAULT 0,"
	" total INTEGER NOT NULL DEFAULT 0,"
	" error TEXT,"
	" result TEXT,"
	" created_at INTEGER NOT NULL,"
	" started_at INTEGER,"
	" finished_at INTEGER);",
};
#define SCHEMA_VERSION	((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The events kept: older ones are dropped as new ones come. */
#define EVENTS_KEEP	10000

/* The VM columns a request may set (vmspec.c's fields but disks and nics). */
static const char *const vm_columns[] = {
	"name", "uuid", "description", "vcpus", "memory", "kernel", "initrd", "cmdline",
	"rng", "test_device", "autostart", "restart_policy", "cpu_weight", "cpu_cap",
	"memory_limit", "on_stop",
};
#define NR_VM_COLUMNS	(sizeof(vm_columns) / sizeof(vm_columns[0]))

enum { ST_VM_GET, ST_VM_DISKS, ST_VM_NICS, ST_EVENT_ADD, NR_STMTS };

static const char *const stmt_sql[NR_STMTS] = {
	[ST_VM_GET] = "SELECT * FROM vms WHERE name = ?1 OR uuid = ?1",
	[ST_VM_DISKS] = "SELECT path, undo, readonly, cache FROM vm_disks WHERE vm_id = ?"
			" ORDER BY idx",
	[ST_VM_NICS] = "SELECT n.name, c.mac FROM nics c JOIN networks n ON n.id = c.network_id"
		       " WHERE c.vm_id = ? ORDER BY c.idx",
	[ST_EVENT_ADD] = "INSERT INTO events (time, type, vm, message) VALUES (?, ?, ?, ?)",
};

struct inventory {
	pthread_mutex_t lock;
	sqlite3 *db;
	sqlite3_stmt *stmt[NR_STMTS];
	uint8_t mac_prefix[3];
	unsigned events_added;
	_Atomic uint64_t generation;	/* moves at every change of what GET shows */
};

static int db_fail(struct inventory *inv, struct vsrvd_err *e, const char *what)
{
	int code = sqlite3_extended_errcode(inv->db);

	if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY)
		return vsrvd_fail(e, 409, -EEXIST, "%s: %s", what, sqlite3_errmsg(inv->db));
	if ((code & 0xff) == SQLITE_CONSTRAINT)
		return vsrvd_fail(e, 409, -EBUSY, "%s: %s", what, sqlite3_errmsg(inv->db));
	return vsrvd_fail(e, 500, -EIO, "%s: inventory: %s", what, sqlite3_errmsg(inv->db));
}

static int exec(struct inventory *inv, const char *sql)
{
	return sqlite3_exec(inv->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

static sqlite3_stmt *prep(struct inventory *inv, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(inv->db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

/* A cached statement, reset and ready to bind. */
static sqlite3_stmt *cached(struct inventory *inv, int which)
{
	sqlite3_stmt *st = inv->stmt[which];

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static int migrate(struct inventory *inv, struct vsrvd_err *e)
{
	sqlite3_stmt *st;
	int version = 0;

	if (exec(inv, "BEGIN IMMEDIATE") < 0 ||
	    exec(inv, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)") < 0)
		return db_fail(inv, e, "schema");
	st = prep(inv, "SELECT version FROM schema_version");
	if (st && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SCHEMA_VERSION) {
		exec(inv, "ROLLBACK");
		return vsrvd_fail(e, 500, -EPROTO,
				  "inventory: schema version %d is newer than this vsrvd's (%d): upgrade vsrvd",
				  version, SCHEMA_VERSION);
	}
	for (; version < SCHEMA_VERSION; version++) {
		char sql[80];

		if (exec(inv, migrations[version]) < 0) {
			int r = db_fail(inv, e, "schema migration");

			exec(inv, "ROLLBACK");
			return r;
		}
		snprintf(sql, sizeof(sql), "DELETE FROM schema_version;"
			 "INSERT INTO schema_version VALUES (%d)", version + 1);
		if (exec(inv, sql) < 0) {
			exec(inv, "ROLLBACK");
			return db_fail(inv, e, "schema version");
		}
	}
	if (exec(inv, "COMMIT") < 0)
		return db_fail(inv, e, "schema");
	return 0;
}

int inventory_open(struct inventory **out, const char *path, const uint8_t mac_prefix[3],
		   struct vsrvd_err *e)
{
	struct inventory *inv = calloc(1, sizeof(*inv));
	int r;

	if (!inv)
		return -ENOMEM;
	pthread_mutex_init(&inv->lock, NULL);
	memcpy(inv->mac_prefix, mac_prefix, 3);
	if (sqlite3_open_v2(path, &inv->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		r = vsrvd_fail(e, 0, -EIO, "%s: %s", path,
			       inv->db ? sqlite3_errmsg(inv->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(inv->db, 5000);
	if (exec(inv, "PRAGMA journal_mode = WAL") < 0 ||
	    exec(inv, "PRAGMA synchronous = NORMAL") < 0 ||
	    exec(inv, "PRAGMA foreign_keys = ON") < 0) {
		r = vsrvd_fail(e, 0, -EIO, "%s: %s", path, sqlite3_errmsg(inv->db));
		goto fail;
	}
	r = migrate(inv, e);
	if (r < 0)
		goto fail;
	for (int i = 0; i < NR_STMTS; i++) {
		inv->stmt[i] = prep(inv, stmt_sql[i]);
		if (!inv->stmt[i]) {
			r = vsrvd_fail(e, 0, -EIO, "%s: %s", path, sqlite3_errmsg(inv->db));
			goto fail;
		}
	}
	*out = inv;
	return 0;
fail:
	inventory_close(inv);
	return r;
}

void inventory_close(struct inventory *inv)
{
	if (!inv)
		return;
	for (int i = 0; i < NR_STMTS; i++)
		sqlite3_finalize(inv->stmt[i]);
	sqlite3_close(inv->db);
	pthread_mutex_destroy(&inv->lock);
	free(inv);
}

uint64_t inventory_generation(struct inventory *inv)
{
	return atomic_load(&inv->generation);
}

void inventory_touch(struct inventory *inv)
{
	atomic_fetch_add(&inv->generation, 1);
}

int inventory_schema_version(struct inventory *inv)
{
	return SCHEMA_VERSION;
}

/* A row as a JSON object; columns named in `bools` become true/false. */
static json_t *row_json(sqlite3_stmt *st, const char *const *bools)
{
	json_t *o = json_object();
	int n = sqlite3_column_count(st);

	for (int i = 0; i < n; i++) {
		const char *name = sqlite3_column_name(st, i);
		json_t *v;

		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER: {
			bool b = false;

			for (const char *const *p = bools; *p && !b; p++)
				b = !strcmp(*p, name);
			v = b ? json_boolean(sqlite3_column_int64(st, i)) :
				json_integer(sqlite3_column_int64(st, i));
			break;
		}
		case SQLITE_TEXT:
			v = json_string((const char *)sqlite3_column_text(st, i));
			break;
		default:
			v = json_null();
		}
		json_object_set_new(o, name, v);
	}
	return o;
}

static const char *const vm_bools[] = { "rng", "test_device", "autostart", NULL };

static void vm_add_disk(json_t *vm, sqlite3_stmt *st)
{
	json_array_append_new(json_object_get(vm, "disks"),
			      json_pack("{s:s, s:s, s:b, s:s}",
					"path", (const char *)sqlite3_column_text(st, 0),
					"undo", (const char *)sqlite3_column_text(st, 1),
					"readonly", sqlite3_column_int(st, 2),
					"cache", (const char *)sqlite3_column_text(st, 3)));
}

static void vm_add_nic(json_t *vm, sqlite3_stmt *st)
{
	json_array_append_new(json_object_get(vm, "nics"),
			      json_pack("{s:s, s:s}",
					"network", (const char *)sqlite3_column_text(st, 0),
					"mac", (const char *)sqlite3_column_text(st, 1)));
}

static json_t *vm_load(struct inventory *inv, const char *name)
{
	sqlite3_stmt *st = cached(inv, ST_VM_GET);
	json_int_t id;
	json_t *vm;

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		return NULL;
	vm = row_json(st, vm_bools);
	id = json_integer_value(json_object_get(vm, "id"));
	json_object_set_new(vm, "disks", json_array());
	json_object_set_new(vm, "nics", json_array());
	st = cached(inv, ST_VM_DISKS);
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW)
		vm_add_disk(vm, st);
	st = cached(inv, ST_VM_NICS);
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW)
		vm_add_nic(vm, st);
	return vm;
}

static bool is_vm_column(const char *key)
{
	for (size_t i = 0; i < NR_VM_COLUMNS; i++)
		if (!strcmp(key, vm_columns[i]))
			return true;
	return false;
}

static int bind_json(sqlite3_stmt *st, int i, json_t *v)
{
	if (json_is_string(v))
		return sqlite3_bind_text(st, i, json_string_value(v), -1, SQLITE_TRANSIENT);
	if (json_is_integer(v))
		return sqlite3_bind_int64(st, i, json_integer_value(v));
	if (json_is_boolean(v))
		return sqlite3_bind_int(st, i, json_is_true(v));
	return sqlite3_bind_null(st, i);
}

static int mac_taken(struct inventory *inv, const char *mac)
{
	sqlite3_stmt *st = prep(inv, "SELECT 1 FROM nics WHERE mac = ?");
	int taken;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, mac, -1, SQLITE_STATIC);
	taken = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return taken;
}

/* A MAC from the prefix that no NIC has: random, so that two inventories
 * on one network rarely collide, and checked, so one inventory never does. */
static int mac_assign(struct inventory *inv, char out[18])
{
	for (int tries = 0; tries < 100; tries++) {
		uint8_t b[3];

		if (getrandom(b, sizeof(b), 0) != sizeof(b))
			return -EIO;
		snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", inv->mac_prefix[0],
			 inv->mac_prefix[1], inv->mac_prefix[2], b[0], b[1], b[2]);
		if (mac_taken(inv, out) == 0)
			return 0;
	}
	return -EADDRINUSE;
}

/* Replaces a VM's disks and NICs with those `spec` gives, if it gives them. */
static int vm_store_devices(struct inventory *inv, sqlite3_int64 id, json_t *spec,
			    struct vsrvd_err *e)
{
	json_t *disks = json_object_get(spec, "disks"), *nics = json_object_get(spec, "nics"), *x;
	sqlite3_stmt *st;
	size_t i;
	int r = 0;

	if (disks) {
		st = prep(inv, "DELETE FROM vm_disks WHERE vm_id = ?");
		sqlite3_bind_int64(st, 1, id);
		sqlite3_step(st);
		sqlite3_finalize(st);
		st = prep(inv, "INSERT INTO vm_disks (vm_id, idx, path, undo, readonly, cache)"
			  " VALUES (?, ?, ?, ?, ?, ?)");
		json_array_foreach(disks, i, x) {
			sqlite3_reset(st);
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
			bind_json(st, 3, json_object_get(x, "path"));
			bind_json(st, 4, json_object_get(x, "undo"));
			sqlite3_bind_int(st, 5, json_is_true(json_object_get(x, "readonly")));
			bind_json(st, 6, json_object_get(x, "cache"));
			if (sqlite3_step(st) != SQLITE_DONE) {
				r = db_fail(inv, e, "disks");
				break;
			}
		}
		sqlite3_finalize(st);
	}
	if (nics && r == 0) {
		st = prep(inv, "DELETE FROM nics WHERE vm_id = ?");
		sqlite3_bind_int64(st, 1, id);
		sqlite3_step(st);
		sqlite3_finalize(st);
		json_array_foreach(nics, i, x) {
			const char *net = json_string_value(json_object_get(x, "network"));
			const char *mac = json_string_value(json_object_get(x, "mac"));
			char buf[18];

			if (!mac) {
				r = mac_assign(inv, buf);
				if (r < 0)
					return vsrvd_fail(e, 500, r, "nics: no free MAC address");
				mac = buf;
			} else if (mac_taken(inv, mac) > 0) {
				return vsrvd_fail(e, 409, -EEXIST, "nics[%zu]: MAC %s is in use", i, mac);
			}
			st = prep(inv, "INSERT INTO nics (vm_id, idx, network_id, mac)"
				  " SELECT ?, ?, id, ? FROM networks WHERE name = ?");
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
			sqlite3_bind_text(st, 3, mac, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 4, net, -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE)
				r = db_fail(inv, e, "nics");
			else if (sqlite3_changes(inv->db) != 1)
				r = vsrvd_fail(e, 404, -ENOENT, "nics[%zu]: no network '%s'", i, net);
			sqlite3_finalize(st);
			if (r < 0)
				break;
		}
	}
	return r;
}

static int vm_write(struct inventory *inv, sqlite3_int64 id, json_t *spec, struct vsrvd_err *e)
{
	char sql[1024];
	size_t n = 0, cols = 0;
	sqlite3_stmt *st;
	const char *key;
	json_t *v;
	int r = 0, i = 1;

	json_object_foreach(spec, key, v)
		if (is_vm_column(key))
			cols++;
	if (id < 0) {
		n = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO vms (created_at");
		json_object_foreach(spec, key, v)
			if (is_vm_column(key))
				n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", %s", key);
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, ") VALUES (?");
		for (size_t k = 0; k < cols; k++)
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", ?");
		snprintf(sql + n, sizeof(sql) - n, ")");
	} else {
		if (!cols)
			return 0;
		n = (size_t)snprintf(sql, sizeof(sql), "UPDATE vms SET ");
		json_object_foreach(spec, key, v)
			if (is_vm_column(key))
				n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s = ?",
						      n > 15 ? ", " : "", key);
		snprintf(sql + n, sizeof(sql) - n, " WHERE id = %lld", (long long)id);
	}
	st = prep(inv, sql);
	if (!st)
		return db_fail(inv, e, "vm");
	if (id < 0)
		sqlite3_bind_int64(st, i++, (sqlite3_int64)now_ms());
	json_object_foreach(spec, key, v)
		if (is_vm_column(key))
			bind_json(st, i++, v);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_fail(inv, e, "vm");
	sqlite3_finalize(st);
	inventory_touch(inv);
	return r;
}

int inventory_vm_create(struct inventory *inv, json_t *spec, json_t **out, struct vsrvd_err *e)
{
	const char *name = json_string_value(json_object_get(spec, "name"));
	int r;

	pthread_mutex_lock(&inv->lock);
	exec(inv, "BEGIN IMMEDIATE");
	r = vm_write(inv, -1, spec, e);
	if (r == -EEXIST)
		r = vsrvd_fail(e, 409, -EEXIST, "vm '%s': a VM has that name or uuid", name);
	if (r == 0)
		r = vm_store_devices(inv, sqlite3_last_insert_rowid(inv->db), spec, e);
	if (r == 0 && exec(inv, "COMMIT") < 0)
		r = db_fail(inv, e, "vm");
	if (r < 0)
		exec(inv, "ROLLBACK");
	else if (out)
		*out = vm_load(inv, name);
	pthread_mutex_unlock(&inv->lock);
	return r;
}

int inventory_vm_get(struct inventory *inv, const char *name, json_t **out, struct vsrvd_err *e)
{
	pthread_mutex_lock(&inv->lock);
	*out = vm_load(inv, name);
	pthread_mutex_unlock(&inv->lock);
	return *out ? 0 : vsrvd_fail(e, 404, -ENOENT, "vm '%s': no such VM", name);
}

int inventory_vm_list(struct inventory *inv, json_t **out)
{
	json_t *list = json_array(), *byid = json_object();
	sqlite3_stmt *st;
	char key[24];

	pthread_mutex_lock(&inv->lock);
	/* Three queries, whatever the number of VMs. */
	st = prep(inv, "SELECT * FROM vms ORDER BY name");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		json_t *vm = row_json(st, vm_bools);

		json_object_set_new(vm, "disks", json_array());
		json_object_set_new(vm, "nics", json_array());
		snprintf(key, sizeof(key), "%lld",
			 (long long)json_integer_value(json_object_get(vm, "id")));
		json_object_set(byid, key, vm);
		json_array_append_new(list, vm);
	}
	sqlite3_finalize(st);
	st = prep(inv, "SELECT path, undo, readonly, cache, vm_id FROM vm_disks"
		  " ORDER BY vm_id, idx");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		snprintf(key, sizeof(key), "%lld", (long long)sqlite3_column_int64(st, 4));
		vm_add_disk(json_object_get(byid, key), st);
	}
	sqlite3_finalize(st);
	st = prep(inv, "SELECT n.name, c.mac, c.vm_id FROM nics c JOIN networks n"
		  " ON n.id = c.network_id ORDER BY c.vm_id, c.idx");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		snprintf(key, sizeof(key), "%lld", (long long)sqlite3_column_int64(st, 2));
		vm_add_nic(json_object_get(byid, key), st);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&inv->lock);
	json_decref(byid);
	*out = list;
	return 0;
}

int inventory_vm_update(struct inventory *inv, const char *name, json_t *changes,
			json_t **out, struct vsrvd_err *e)
{
	json_t *vm;
	int r;

	pthread_mutex_lock(&inv->lock);
	vm = vm_load(inv, name);
	if (!vm) {
		pthread_mutex_unlock(&inv->lock);
		return vsrvd_fail(e, 404, -ENOENT, "vm '%s': no such VM", name);
	}
	exec(inv, "BEGIN IMMEDIATE");
	r = vm_write(inv, json_integer_value(json_object_get(vm, "id")), changes, e);
	if (r == -EEXIST)
		r = vsrvd_fail(e, 409, -EEXIST, "vm '%s': another VM has that name or uuid", name);
	if (r == 0)
		r = vm_store_devices(inv, json_integer_value(json_object_get(vm, "id")), changes, e);
	if (r == 0 && exec(inv, "COMMIT") < 0)
		r = db_fail(inv, e, "vm");
	if (r < 0)
		exec(inv, "ROLLBACK");
	else if (out)
		*out = vm_load(inv, json_string_value(json_object_get(changes, "name")) ?: name);
	json_decref(vm);
	pthread_mutex_unlock(&inv->lock);
	return r;
}

/* One statement on one named row: 404 when there is no such row. */
static int by_name(struct inventory *inv, const char *sql, const char *name, const char *what,
		   struct vsrvd_err *e)
{
	sqlite3_stmt *st;
	int r = 0;

	pthread_mutex_lock(&inv->lock);
	st = prep(inv, sql);
	if (!st) {
		r = db_fail(inv, e, what);
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_fail(inv, e, what);
	else if (sqlite3_changes(inv->db) == 0)
		r = vsrvd_fail(e, 404, -ENOENT, "%s '%s': not found", what, name);
	sqlite3_finalize(st);
	inventory_touch(inv);
out:
	pthread_mutex_unlock(&inv->lock);
	return r;
}

int inventory_vm_delete(struct inventory *inv, const char *name, struct vsrvd_err *e)
{
	return by_name(inv, "DELETE FROM vms WHERE name = ?1 OR uuid = ?1", name, "vm", e);
}

int inventory_vm_set_state(struct inventory *inv, const char *name, const char *state,
			   int monitor_pid, const char *last_exit)
{
	sqlite3_stmt *st;
	int r = 0;

	pthread_mutex_lock(&inv->lock);
	st = prep(inv, last_exit ?
		  "UPDATE vms SET state = ?, monitor_pid = ?, last_exit = ? WHERE name = ?" :
		  "UPDATE vms SET state = ?, monitor_pid = ? WHERE name = ?");
	if (st) {
		sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, monitor_pid);
		if (last_exit)
			sqlite3_bind_text(st, 3, last_exit, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, last_exit ? 4 : 3, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			r = -EIO;
	}
	sqlite3_finalize(st);
	inventory_touch(inv);
	pthread_mutex_unlock(&inv->lock);
	return st ? r : -EIO;
}

int inventory_vm_names(struct inventory *inv, const char *where, char ***names)
{
	char sql[256];
	sqlite3_stmt *st;
	size_t n = 0, cap = 16;
	char **v = calloc(cap + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	snprintf(sql, sizeof(sql), "SELECT name FROM vms%s%s ORDER BY name", where ? " WHERE " : "",
		 where ? where : "");
	pthread_mutex_lock(&inv->lock);
	st = prep(inv, sql);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			char **nv = realloc(v, (cap * 2 + 1) * sizeof(*v));

			if (!nv)
				break;
			v = nv;
			cap *= 2;
		}
		v[n++] = strdup((const char *)sqlite3_column_text(st, 0));
		v[n] = NULL;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&inv->lock);
	*names = v;
	return (int)n;
}

/* ---- networks ---- */

static const char *const net_bools[] = { "dhcp", NULL };

/* A row of `table` from the object's `cols` (absent ones NULL), stamped
 * with created_at. */
static int insert_row(struct inventory *inv, const char *table, const char *const *cols,
		      json_t *obj, struct vsrvd_err *e)
{
	char sql[512], vals[64] = "?";
	size_t n;
	sqlite3_stmt *st;
	int i, r = 0;

	n = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO %s (created_at", table);
	for (i = 0; cols[i]; i++) {
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", %s", cols[i]);
		strcat(vals, ", ?");
	}
	snprintf(sql + n, sizeof(sql) - n, ") VALUES (%s)", vals);
	pthread_mutex_lock(&inv->lock);
	st = prep(inv, sql);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now_ms());
	for (i = 0; cols[i]; i++)
		bind_json(st, i + 2, json_object_get(obj, cols[i]));
	if (sqlite3_step(st) != SQLITE_DONE)
		r = db_fail(inv, e, table);
	sqlite3_finalize(st);
	inventory_touch(inv);
	pthread_mutex_unlock(&inv->lock);
	return r;
}

int inventory_net_create(struct inventory *inv, json_t *spec, json_t **out, struct vsrvd_err *e)
{
	static const char *const cols[] = { "name", "type", "bridge", "dhcp", "subnet", NULL };
	const char *name = json_string_value(json_object_get(spec, "name"));
	int r = insert_row(inv, "networks", cols, spec, e);

	if (r == -EEXIST)
		r = vsrvd_fail(e, 409, r, "network '%s': exists", name);
	if (r == 0 && out)
		r = inventory_net_get(inv, name, out, e);
	return r;
}

/* Rows of one query as a JSON array (or the first row, with `one`). */
static json_t *rows(struct inventory *inv, const char *sql, const char *arg,
		    const char *const *bools)
{
	json_t *list = json_array();
	sqlite3_stmt *st;

	pthread_mutex_lock(&inv->lock);
	st = prep(inv, sql);
	if (st && arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	while (st && sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(list, row_json(st, bools));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&inv->lock);
	return list;
}

static int one(json_t *list, json_t **out, const char *what, const char *name,
	       struct vsrvd_err *e)
{
	*out = json_incref(json_array_get(list, 0));
	json_decref(list);
	return *out ? 0 : vsrvd_fail(e, 404, -ENOENT, "%s '%s': not found", what, name);
}

#define NET_SELECT "SELECT n.*, (SELECT count(*) FROM nics c WHERE c.network_id = n.id)" \
		   " AS nics FROM networks n"

int inventory_net_get(struct inventory *inv, const char *name, json_t **out, struct vsrvd_err *e)
{
	return one(rows(inv, NET_SELECT " WHERE name = ?", name, net_bools), out, "network", name,
		   e);
}

int inventory_net_list(struct inventory *inv, json_t **out)
{
	*out = rows(inv, NET_SELECT " ORDER BY name", NULL, net_bools);
	return 0;
}

int inventory_net_delete(struct inventory *inv, const char *name, struct vsrvd_err *e)
{
	int r = by_name(inv, "DELETE FROM networks WHERE name = ?", name, "network", e);

	if (r == -EBUSY)
		r = vsrvd_fail(e, 409, r, "network '%s': VMs have NICs on it", name);
	return r;
}

/* ---- disks ---- */

int inventory_disk_add(struct inventory *inv, json_t *rec, struct vsrvd_err *e)
{
	static const char *const cols[] = { "name", "path", "type", "size", "parent", NULL };

	return insert_row(inv, "disks", cols, rec, e);
}

int inventory_disk_get(struct inventory *inv, const char *name, json_t **out,
		       struct vsrvd_err *e)
{
	static const char *const none[] = { NULL };

	return one(rows(inv, "SELECT * FROM disks WHERE name = ?", name, none), out, "disk", name,
		   e);
}

int inventory_disk_list(struct inventory *inv, json_t **out)
{
	static const char *const none[] = { NULL };

	*out = rows(inv, "SELECT * FROM disks ORDER BY name", NULL, none);
	return 0;
}

int inventory_disk_delete(struct inventory *inv, const char *name, struct vsrvd_err *e)
{
	return by_name(inv, "DELETE FROM disks WHERE name = ?", name, "disk", e);
}

/* ---- disk jobs ---- */

int inventory_job_add(struct inventory *inv, const char *type, const json_t *spec,
		      int64_t created_at, int keep, int64_t *id, struct vsrvd_err *e)
{
	char *text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS), sql[160];
	sqlite3_stmt *st;
	int r = 0;

	if (!text)
		return vsrvd_fail(e, 500, -ENOMEM, "out of memory");
	pthread_mutex_lock(&inv->lock);
	st = prep(inv, "INSERT INTO jobs (type, state, spec, created_at) VALUES (?, 'queued', ?, ?)");
	if (st) {
		sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, created_at);
	}
	if (!st || sqlite3_step(st) != SQLITE_DONE) {
		r = db_fail(inv, e, "job");
	} else {
		*id = sqlite3_last_insert_rowid(inv->db);
		/* The newest `keep` are kept, and any that is not over. */
		snprintf(sql, sizeof(sql), "DELETE FROM jobs WHERE id <= %lld"
			 " AND state NOT IN ('queued', 'running')", (long long)(*id - keep));
		exec(inv, sql);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&inv->lock);
	free(text);
	return r;
}

int inventory_job_save(struct inventory *inv, int64_t id, const char *state, uint64_t done,
		       uint64_t total, const char *error, const json_t *result,
		       int64_t started_at, int64_t finished_at)
{
	char *text = result ? json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	sqlite3_stmt *st;
	int r = 0;

	pthread_mutex_lock(&inv->lock);
	st = prep(inv, "UPDATE jobs SET state = ?, done = ?, total = ?, error = ?, result = ?,"
		  " started_at = ?, finished_at = ? WHERE id = ?");
	if (st) {
		sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)done);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)total);
		if (error)
			sqlite3_bind_text(st, 4, error, -1, SQLITE_STATIC);
		if (text)
			sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
		if (started_at)
			sqlite3_bind_int64(st, 6, started_at);
		if (finished_at)
			sqlite3_bind_int64(st, 7, finished_at);
		sqlite3_bind_int64(st, 8, id);
	}
	if (!st || sqlite3_step(st) != SQLITE_DONE)
		r = -EIO;
	sqlite3_finalize(st);
	pthread_mutex_unlock(&inv->lock);
	free(text);
	return r;
}

int inventory_job_list(struct inventory *inv, int limit, json_t **out)
{
	static const char *const none[] = { NULL };
	char sql[160];
	json_t *job;
	size_t i;

	snprintf(sql, sizeof(sql), "SELECT * FROM (SELECT * FROM jobs ORDER BY id DESC LIMIT %d)"
		 " ORDER BY id", limit);
	*out = rows(inv, sql, NULL, none);
	/* The JSON columns as JSON. */
	json_array_foreach(*out, i, job) {
		for (const char *const *k = (const char *const[]){ "spec", "result", NULL }; *k; k++) {
			const char *text = json_string_value(json_object_get(job, *k));

			if (text)
				json_object_set_new(job, *k, json_loads(text, 0, NULL) ?: json_null());
		}
	}
	return 0;
}

/* ---- events ---- */

int inventory_event_add(struct inventory *inv, int64_t time_ms, const char *type,
			const char *vm, const char *msg, int64_t *id)
{
	sqlite3_stmt *st;
	int r = 0;

	pthread_mutex_lock(&inv->lock);
	st = cached(inv, ST_EVENT_ADD);
	sqlite3_bind_int64(st, 1, time_ms);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	if (vm)
		sqlite3_bind_text(st, 3, vm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, msg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = -EIO;
	*id = sqlite3_last_insert_rowid(inv->db);
	sqlite3_reset(st);
	if (r == 0 && ++inv->events_added % 1000 == 0) {
		char sql[96];

		snprintf(sql, sizeof(sql), "DELETE FROM events WHERE id <= %lld",
			 (long long)(*id - EVENTS_KEEP));
		exec(inv, sql);
	}
	pthread_mutex_unlock(&inv->lock);
	return r;
}

int inventory_event_list(struct inventory *inv, int64_t after_id, int limit, const char *vm,
			 json_t **out)
{
	static const char *const none[] = { NULL };
	char sql[160];

	snprintf(sql, sizeof(sql), "SELECT * FROM events WHERE id > %lld%s ORDER BY id LIMIT %d",
		 (long long)after_id, vm ? " AND vm = ?" : "", limit);
	*out = rows(inv, sql, vm, none);
	return 0;
}

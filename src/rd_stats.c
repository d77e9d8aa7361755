/*
 * rd_stats.c - counters in shared memory; see rd_stats.h.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_module.h"
#include "rd_session.h"
#include "rd_stats.h"
#include "rd_worker.h"

const int64_t rd_stats_bucket_usec[RD_STATS_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000
};

const char *const rd_stats_bucket_le[RD_STATS_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"
};

const char *const rd_stats_refusal_names[RD_REFUSAL_MAX] = {
    "tls_handshake", "no_identity", "no_database", "access_denied",
    "auth_denied", "noperm", "audit_unavailable", "max_sessions",
    "auth_failed"
};

const char *const rd_stats_accept_err_names[RD_ACCEPT_ERR_MAX] = {
    "emfile", "enfile", "enobufs", "other"
};

static rd_stats_region_t *rd_stats_shm;
static rd_stats_slot_t    rd_stats_dummy;
rd_stats_slot_t          *rd_stats_me = &rd_stats_dummy;

/* In a worker: the cycle's databases and their stats indexes. */
static const rd_database_t *rd_stats_dbs;
static size_t               rd_stats_ndbs;
static unsigned char       *rd_stats_dbmap;

/* --- regions and slots ---------------------------------------------------- */

int
rd_stats_init(void)
{
    if (rd_stats_shm) {
        return 0;
    }
    void *p = mmap(NULL, sizeof(rd_stats_region_t), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        rd_log_error("status: cannot map %zu bytes of shared memory for the "
                     "counters: %s", sizeof(rd_stats_region_t),
                     strerror(errno));
        return -1;
    }
    rd_stats_shm = p;
    rd_stats_set(rd_stats_shm->master.start_time, (int64_t)time(NULL));
    return 0;
}

rd_stats_region_t *
rd_stats_region(void)
{
    return rd_stats_shm;
}

void
rd_stats_register_databases(rd_cycle_t *cycle)
{
    rd_stats_master_t *m = rd_stats_shm ? &rd_stats_shm->master : NULL;
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        const char *name = cycle->databases[i].name;
        uint32_t n = atomic_load_explicit(&m->ndatabases,
                                          memory_order_relaxed);
        uint32_t k;
        for (k = 0; k < n && strcmp(m->names[k], name) != 0; k++) {
        }
        if (k < n || n >= RD_STATS_DATABASES
            || strlen(name) >= RD_STATS_DB_NAME_MAX)
        {
            continue;
        }
        strcpy(m->names[n], name);
        /* The reader trusts names[0 .. ndatabases) once it sees the
         * count. */
        atomic_store_explicit(&m->ndatabases, n + 1, memory_order_release);
    }
}

void
rd_stats_reload(int ok)
{
    if (rd_stats_shm == NULL) {
        return;
    }
    if (ok) {
        rd_stats_add(rd_stats_shm->master.reloads_ok, 1);
        rd_stats_add(rd_stats_shm->master.generation, 1);
    } else {
        rd_stats_add(rd_stats_shm->master.reloads_failed, 1);
    }
}

void
rd_stats_workers(int64_t current, int64_t old)
{
    if (rd_stats_shm) {
        rd_stats_set(rd_stats_shm->master.workers_current, current);
        rd_stats_set(rd_stats_shm->master.workers_old, old);
    }
}

/* The modules' gauges that belong to the process in slot sl. */
static void
rd_stats_clear_process_rows(rd_stats_slot_t *sl)
{
    for (unsigned k = 0; k < rd_nmodules; k++) {
        const rd_module_t *m = rd_modules[k];
        for (unsigned i = 0; m->stats && m->stats[i].name; i++) {
            const rd_stats_def_t *row = &m->stats[i];
            if (!(row->flags & RD_STATS_PROCESS)) {
                continue;
            }
            if (row->scope == RD_STATS_SLOT) {
                rd_stats_set(*rd_stats_mod_slot(sl, m, i), 0);
            } else if (row->scope == RD_STATS_DB) {
                for (size_t d = 0; d < RD_STATS_DB_SLOTS; d++) {
                    rd_stats_set(*rd_stats_mod_db_slot(&sl->db[d], m, i), 0);
                }
            }
        }
    }
}

void
rd_stats_worker_gone(pid_t pid)
{
    if (rd_stats_shm == NULL) {
        return;
    }
    for (size_t i = 0; i < RD_STATS_SLOTS; i++) {
        rd_stats_slot_t *sl = &rd_stats_shm->slots[i];
        if (atomic_load_explicit(&sl->pid, memory_order_relaxed)
            != (int32_t)pid)
        {
            continue;
        }
        for (size_t d = 0; d < RD_STATS_DB_SLOTS; d++) {
            rd_stats_set(sl->db[d].sessions_open, 0);
        }
        rd_stats_clear_process_rows(sl);
        rd_stats_set(sl->pid, 0);
    }
}

static unsigned
rd_stats_db_by_name(const char *name)
{
    rd_stats_master_t *m = &rd_stats_shm->master;
    uint32_t n = atomic_load_explicit(&m->ndatabases, memory_order_acquire);
    for (uint32_t k = 0; k < n; k++) {
        if (strcmp(m->names[k], name) == 0) {
            return k;
        }
    }
    return RD_STATS_DB_OTHER;
}

void
rd_stats_worker_init(rd_worker_t *w)
{
    rd_cycle_t *cycle = w->cycle;

    if (rd_stats_shm == NULL) {
        return;
    }
    int64_t gen = atomic_load_explicit(&rd_stats_shm->master.generation,
                                       memory_order_relaxed);
    size_t idx = (size_t)w->slot % RD_STATS_WORKER_SLOTS
                 + (size_t)(gen & 1) * RD_STATS_WORKER_SLOTS;
    rd_stats_me = &rd_stats_shm->slots[idx];
    rd_stats_set(rd_stats_me->pid, (int32_t)getpid());
    rd_stats_set(rd_stats_me->used, 1);

    free(rd_stats_dbmap);
    rd_stats_dbs = cycle->databases;
    rd_stats_ndbs = cycle->ndatabases;
    rd_stats_dbmap = rd_calloc(cycle->ndatabases ? cycle->ndatabases : 1, 1);
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        rd_stats_dbmap[i] =
            (unsigned char)rd_stats_db_by_name(cycle->databases[i].name);
    }
}

unsigned
rd_stats_db(const rd_database_t *db)
{
    if (db == NULL) {
        return RD_STATS_DB_NONE;
    }
    uintptr_t off = (uintptr_t)db - (uintptr_t)rd_stats_dbs;
    size_t i = off / sizeof(rd_database_t);
    if ((uintptr_t)db >= (uintptr_t)rd_stats_dbs
        && off % sizeof(rd_database_t) == 0 && i < rd_stats_ndbs)
    {
        return rd_stats_dbmap[i];
    }
    return RD_STATS_DB_OTHER;
}

/* --- commands -------------------------------------------------------------- */

#define RD_STATS_UNKNOWN  (RD_STATS_COMMANDS - 1)

/* Table row -> dense index of its top-level command (a subcommand row:
 * of its container), and dense index -> name and name length. */
static uint16_t    *rd_stats_cmd_dense;
static const char  *rd_stats_cmd_names[RD_STATS_COMMANDS];
static size_t       rd_stats_cmd_len[RD_STATS_COMMANDS];
static const rd_command_t *rd_stats_cmd_table;

static void
rd_stats_commands_init(void)
{
    size_t n;

    if (rd_stats_cmd_dense) {
        return;
    }
    rd_stats_cmd_table = rd_command_table(&n);
    rd_stats_cmd_dense = rd_calloc(n ? n : 1, sizeof(uint16_t));
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_stats_cmd_table[i].name;
        if (strchr(name, '|') != NULL || k >= RD_STATS_UNKNOWN) {
            rd_stats_cmd_dense[i] = RD_STATS_UNKNOWN;
            continue;
        }
        rd_stats_cmd_names[k] = name;
        rd_stats_cmd_len[k] = strlen(name);
        rd_stats_cmd_dense[i] = (uint16_t)k++;
    }
    rd_stats_cmd_names[RD_STATS_UNKNOWN] = "_unknown";
    /* Subcommand rows count as their container. */
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_stats_cmd_table[i].name;
        const char *bar = strchr(name, '|');
        if (bar == NULL) {
            continue;
        }
        rd_str_t top = { name, (size_t)(bar - name) };
        const rd_command_t *c = rd_command_find(top);
        if (c) {
            rd_stats_cmd_dense[i] = rd_stats_cmd_dense[c - rd_stats_cmd_table];
        }
    }
}

const char *
rd_stats_command_name(unsigned idx)
{
    return idx < RD_STATS_COMMANDS ? rd_stats_cmd_names[idx] : NULL;
}

/* --- the modules' rows ------------------------------------------------------ */

/*
 * Each module's per-slot rows, and its per-database rows, take the next
 * positions of their area; row i of the module lives at offset + i, so a
 * module whose table mixes kinds leaves the positions of the other kind's
 * rows unused (list each kind together).
 */
static int
rd_stats_place(const rd_module_t *m, rd_stats_scope_t scope, int *next,
               int *offset, int cap, const char *what, char *err, size_t n)
{
    int first = -1, last = -1;

    for (int i = 0; m->stats && m->stats[i].name; i++) {
        if (m->stats[i].scope == scope) {
            first = first < 0 ? i : first;
            last = i;
        }
    }
    *offset = 0;
    if (first < 0) {
        return 0;
    }
    if (*next + (last - first + 1) > cap) {
        snprintf(err, n, "stats: module %s: its %s counters do not fit: "
                 "%d places are taken, it needs %d more, the area has %d "
                 "(%s in src/rd_stats.h)", m->name, what, *next,
                 last - first + 1, cap,
                 scope == RD_STATS_SLOT ? "RD_STATS_MOD_SLOT"
                                        : "RD_STATS_MOD_DB");
        return -1;
    }
    *offset = *next - first;
    *next += last - first + 1;
    return 0;
}

/* Mistakes in a module's table, found at startup rather than on a
 * scrape. */
static int
rd_stats_check_rows(const rd_module_t *m, char *err, size_t n)
{
    for (unsigned i = 0; m->stats && m->stats[i].name; i++) {
        const rd_stats_def_t *row = &m->stats[i];
        int first = i == 0 || strcmp(m->stats[i - 1].name, row->name) != 0;
        const char *bad = NULL;
        if (first && row->help == NULL && !(row->flags & RD_STATS_HIDDEN)) {
            bad = "the first row of a family has no help";
        } else if (!first && (row->type != m->stats[i - 1].type
                              || row->scope != m->stats[i - 1].scope
                              || row->flags != m->stats[i - 1].flags))
        {
            bad = "the rows of a family differ in type, scope or flags";
        } else if ((row->scope == RD_STATS_CYCLE) != (row->value != NULL)) {
            bad = "value() is for RD_STATS_CYCLE rows, and they need it";
        } else if (row->unhealthy && (row->scope != RD_STATS_DB
                                      || row->type != RD_STATS_GAUGE))
        {
            bad = "only a per-database gauge is a health state";
        }
        if (bad) {
            snprintf(err, n, "stats: module %s, row %u (%s): %s", m->name, i,
                     row->name, bad);
            return -1;
        }
    }
    return 0;
}

int
rd_stats_modules_init(char *err, size_t n)
{
    int nslot = 0, ndb = 0;

    rd_stats_commands_init();
    for (unsigned k = 0; k < rd_nmodules; k++) {
        rd_module_t *m = rd_modules[k];
        if (rd_stats_check_rows(m, err, n) != 0
            || rd_stats_place(m, RD_STATS_SLOT, &nslot, &m->stats_slot,
                              RD_STATS_MOD_SLOT, "per-slot", err, n) != 0
            || rd_stats_place(m, RD_STATS_DB, &ndb, &m->stats_db,
                              RD_STATS_MOD_DB, "per-database", err, n) != 0)
        {
            return -1;
        }
    }
    return 0;
}

/* --- sessions, requests, upstreams ----------------------------------------- */

void
rd_stats_session_start(const rd_session_t *s)
{
    if (s->started) {
        return;
    }
    rd_stats_db_t *d = &rd_stats_me->db[rd_stats_db(s->database)];
    rd_stats_add(d->sessions_ok, 1);
    rd_stats_add(d->sessions_open, 1);
}

void
rd_stats_session_end(const rd_session_t *s)
{
    rd_stats_db_t *d = &rd_stats_me->db[rd_stats_db(s->database)];
    if (s->started) {
        rd_stats_add(d->sessions_open, -1);
    } else {
        rd_stats_add(d->sessions_refused, 1);
    }
}

void
rd_stats_request(const rd_session_t *s, const rd_request_t *r)
{
    rd_stats_db_t *d = &rd_stats_me->db[rd_stats_db(s->database)];
    unsigned c = RD_STATS_UNKNOWN;
    int err = r->reply_type == '-';

    if (r->cmd) {
        c = rd_stats_cmd_dense[r->cmd - rd_stats_cmd_table];
        /* A name "config|get" finds the subcommand's row, but Redis knows
         * no command of that name: it is unknown here too. */
        if (r->argv[0].len != rd_stats_cmd_len[c]) {
            c = RD_STATS_UNKNOWN;
        }
    }

    rd_stats_add(d->commands[c][err], 1);
}

void
rd_stats_redirect(const rd_database_t *db, int ask)
{
    rd_stats_db_t *d = &rd_stats_me->db[rd_stats_db(db)];
    if (ask) {
        rd_stats_add(d->ask, 1);
    } else {
        rd_stats_add(d->moved, 1);
    }
}

void
rd_stats_upstream_up(const rd_database_t *db)
{
    rd_stats_add(rd_stats_me->db[rd_stats_db(db)].upstream_ok, 1);
}

void
rd_stats_upstream_failed(const rd_database_t *db, int was_connected)
{
    rd_stats_db_t *d = &rd_stats_me->db[rd_stats_db(db)];
    rd_stats_add(d->upstream_errors, 1);
    if (!was_connected) {
        rd_stats_add(d->upstream_failed, 1);
    }
}

void
rd_stats_latency(const rd_database_t *db, int64_t usec)
{
    rd_stats_db_t *d = &rd_stats_me->db[rd_stats_db(db)];
    unsigned b = 0;

    if (usec < 0) {
        usec = 0;
    }
    while (b < RD_STATS_BUCKETS && usec > rd_stats_bucket_usec[b]) {
        b++;
    }
    rd_stats_add(d->latency[b], 1);
    rd_stats_add(d->latency_usec, (uint64_t)usec);
}

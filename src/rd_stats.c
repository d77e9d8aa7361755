/*
 * rd_stats.c - counters in shared memory; see rd_stats.h.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_log.h"
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

/* Set by the master for the cycle being built (see the header). */
static int64_t rd_stats_pending_cert;

static const rd_stats_server_t *rd_stats_srv;

#define rd_stats_set(field, v) \
    atomic_store_explicit(&(field), (v), memory_order_relaxed)

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
            rd_stats_set(sl->db[d].cluster_map, 0);
        }
        rd_stats_set(sl->audit_failing, 0);
        rd_stats_set(sl->pid, 0);
    }
}

void
rd_stats_listener_cert(const X509 *cert)
{
    const ASN1_TIME *na = cert ? X509_get0_notAfter(cert) : NULL;
    struct tm tm;

    rd_stats_pending_cert = 0;
    if (na && ASN1_TIME_to_tm(na, &tm)) {
        rd_stats_pending_cert = (int64_t)timegm(&tm);
    }
}

int64_t
rd_stats_take_listener_cert(void)
{
    int64_t t = rd_stats_pending_cert;
    rd_stats_pending_cert = 0;
    return t;
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

/* Table row -> dense index of the top-level commands, and back. */
static uint16_t    *rd_stats_cmd_dense;
static const char  *rd_stats_cmd_names[RD_STATS_COMMANDS];
static const rd_command_t *rd_stats_cmd_table;

static void
rd_stats_commands_init(void)
{
    size_t n;
    rd_stats_cmd_table = rd_command_table(&n);
    rd_stats_cmd_dense = rd_calloc(n, sizeof(uint16_t));
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_stats_cmd_table[i].name;
        if (strchr(name, '|') != NULL || k >= RD_STATS_COMMANDS - 1) {
            rd_stats_cmd_dense[i] = RD_STATS_COMMANDS - 1;
            continue;
        }
        rd_stats_cmd_names[k] = name;
        rd_stats_cmd_dense[i] = (uint16_t)k++;
    }
    rd_stats_cmd_names[RD_STATS_COMMANDS - 1] = "_unknown";
}

unsigned
rd_stats_command_index(rd_str_t name)
{
    /* Pipelines repeat the same command: remember the last one. */
    static char     last[RD_CMD_NAME_MAX];
    static size_t   last_len;
    static unsigned last_idx;

    if (rd_stats_cmd_dense == NULL) {
        rd_stats_commands_init();
    }
    if (name.len == last_len && name.len > 0
        && strncasecmp(name.data, last, name.len) == 0)
    {
        return last_idx;
    }
    const rd_command_t *c = rd_command_find(name);
    unsigned idx = c ? rd_stats_cmd_dense[c - rd_stats_cmd_table]
                     : RD_STATS_COMMANDS - 1;
    if (name.len < sizeof(last)) {
        memcpy(last, name.data, name.len);
        last_len = name.len;
        last_idx = idx;
    }
    return idx;
}

const char *
rd_stats_command_name(unsigned idx)
{
    if (rd_stats_cmd_dense == NULL) {
        rd_stats_commands_init();
    }
    return idx < RD_STATS_COMMANDS ? rd_stats_cmd_names[idx] : NULL;
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
    unsigned c = r->argc > 0 ? rd_stats_command_index(r->argv[0])
                             : RD_STATS_COMMANDS - 1;
    int err = r->reply_type == '-';

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
rd_stats_cluster_map(const rd_database_t *db, int state)
{
    rd_stats_set(rd_stats_me->db[rd_stats_db(db)].cluster_map, state);
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

void
rd_stats_audit_base(uint64_t *written, uint64_t *dropped)
{
    *written = atomic_load_explicit(&rd_stats_me->audit_written,
                                    memory_order_relaxed);
    *dropped = atomic_load_explicit(&rd_stats_me->audit_dropped,
                                    memory_order_relaxed);
}

void
rd_stats_audit_set(uint64_t written, uint64_t dropped, int failing)
{
    rd_stats_set(rd_stats_me->audit_written, written);
    rd_stats_set(rd_stats_me->audit_dropped, dropped);
    rd_stats_set(rd_stats_me->audit_failing, failing ? 1 : 0);
}

void
rd_stats_minted_cert(int64_t not_after)
{
    rd_stats_set(rd_stats_me->minted_cert_not_after, not_after);
}

/* --- the status server ------------------------------------------------------ */

void
rd_stats_server_set(const rd_stats_server_t *srv)
{
    rd_stats_srv = srv;
}

int
rd_stats_server_open(rd_cycle_t *cycle, rd_cycle_t *old, char **err)
{
    if (rd_stats_srv == NULL || rd_stats_srv->open == NULL) {
        return 0;
    }
    return rd_stats_srv->open(cycle, old, err);
}

int
rd_stats_server_wanted(rd_cycle_t *cycle)
{
    if (rd_stats_srv == NULL || rd_stats_srv->wanted == NULL) {
        return 0;
    }
    return rd_stats_srv->wanted(cycle) ? 1 : 0;
}

void
rd_stats_server_main(rd_cycle_t *cycle)
{
    if (rd_stats_srv && rd_stats_srv->main) {
        rd_stats_srv->main(cycle);
    }
    exit(2);
}

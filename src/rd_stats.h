/*
 * rd_stats.h - counters shared by the master, the workers and the status
 * server.
 *
 * One shared anonymous mapping, made by the master once at startup (before
 * the first fork) and kept across reloads, holds:
 *   - a master part: worker gauges, reload counters, the reload
 *     generation, and the names of the databases seen so far (the
 *     "database" label: a database keeps its index, and its series, across
 *     reloads, even when a reload reorders or drops databases);
 *   - one slot per worker process slot, written only by the worker(s) in
 *     that slot with relaxed C11 atomics, and summed by the status server
 *     when it renders /metrics. There are 2 x RD_STATS_WORKER_SLOTS slots:
 *     workers of even and odd reload generations use different halves, so
 *     the old workers finishing their sessions after a reload do not
 *     share cache lines with the new ones. Counters only ever grow: a
 *     worker restarted in a slot (after a crash or a reload) keeps adding
 *     to what its predecessors counted there, so totals never go back.
 *     Several processes in one slot (more than RD_STATS_WORKER_SLOTS
 *     workers, or three generations alive at once) stay correct because
 *     every update is an atomic read-modify-write.
 *   - Gauges that belong to a process (sessions open, and the modules'
 *     rows flagged RD_STATS_PROCESS) are cleared by the master when it
 *     reaps the process, so a killed worker's sessions do not stay "open".
 *
 * The core's own series are the fields below (sessions, refusals, accept
 * errors, bytes, commands, upstream connections and their latency, MOVED
 * and ASK replies, which either router may get, and Pub/Sub messages
 * pushed to subscribers, which either router delivers through the core's
 * rd_session_message). A module counts its own
 * things in a slice of the generic areas rd_stats_slot_t.mod and
 * rd_stats_db_t.mod: it lists its counters and gauges in a table
 * (rd_module_t.stats, rows of rd_stats_def_t: the metric as /metrics shows
 * it, its help, counter or gauge, per worker slot or per database),
 * rd_modules_init() gives each module's rows their place (a startup error
 * if the areas are too small: raise RD_STATS_MOD_SLOT or RD_STATS_MOD_DB),
 * the module counts with rd_stats_mod_add() and friends, and the status
 * module renders every module's rows without knowing any module. Nothing
 * here names a module.
 *
 * The hot path is one relaxed atomic on this process's slot; nothing
 * here takes a lock or makes a system call. Outside a worker (the master,
 * unit tests) updates go to a private dummy slot.
 *
 * Who sets it up: the master maps the region (rd_stats_init) and names the
 * databases of every cycle it puts to use (rd_stats_register_databases);
 * each worker takes its slot (rd_stats_worker_init) before the modules'
 * init_worker hooks run (rd_main.c, rd_process.c, rd_worker.c).
 *
 * Limits, by design: RD_STATS_DATABASES database names (more go to the
 * series database="_other"), top-level commands only (a subcommand counts
 * as its container: CONFIG GET is "config"), upstream series by database,
 * not by node.
 */
#ifndef RD_STATS_H
#define RD_STATS_H

#include <stdatomic.h>
#include <sys/types.h>

#include "rd_core.h"
#include "rd_module.h"

#define RD_STATS_WORKER_SLOTS  64
#define RD_STATS_SLOTS         (2 * RD_STATS_WORKER_SLOTS)
#define RD_STATS_DATABASES     64
#define RD_STATS_DB_NONE       RD_STATS_DATABASES        /* none (yet) */
#define RD_STATS_DB_OTHER      (RD_STATS_DATABASES + 1)  /* past the cap */
#define RD_STATS_DB_SLOTS      (RD_STATS_DATABASES + 2)
#define RD_STATS_DB_NAME_MAX   128
#define RD_STATS_COMMANDS      256   /* top-level table rows, then "_unknown" */
#define RD_STATS_BUCKETS       16    /* latency bounds; one more for +Inf */
#define RD_STATS_MOD_SLOT      32    /* the modules' rows per worker slot */
#define RD_STATS_MOD_DB        8     /* ... and per database series */

/* Why a client was refused: a session not let in, or one command. */
typedef enum {
    RD_REFUSAL_TLS_HANDSHAKE = 0,   /* handshake failed or timed out */
    RD_REFUSAL_NO_IDENTITY,         /* no certificate, or no identity in it */
    RD_REFUSAL_NO_DATABASE,         /* no database, or one not served */
    RD_REFUSAL_ACCESS_DENIED,       /* roles do not reach the database */
    RD_REFUSAL_AUTH_DENIED,         /* AUTH as a user the roles refuse */
    RD_REFUSAL_NOPERM,              /* a command or key rule */
    RD_REFUSAL_AUDIT_UNAVAILABLE,   /* audit.on_failure = block */
    RD_REFUSAL_MAX_SESSIONS,        /* limits.max_sessions reached */
    RD_REFUSAL_AUTH_FAILED,         /* Redis refused an AUTH's credentials */
    RD_REFUSAL_MAX
} rd_refusal_t;

/* Why accept(2) failed on a client listener. A worker out of descriptors
 * or memory stops accepting for a moment (rd_worker.c); each failed call
 * counts once. */
typedef enum {
    RD_ACCEPT_ERR_EMFILE = 0,       /* the worker's RLIMIT_NOFILE */
    RD_ACCEPT_ERR_ENFILE,           /* the system's file table */
    RD_ACCEPT_ERR_ENOBUFS,          /* ENOBUFS or ENOMEM */
    RD_ACCEPT_ERR_OTHER,            /* anything else but EAGAIN, EINTR */
    RD_ACCEPT_ERR_MAX
} rd_accept_err_t;

typedef _Atomic uint64_t rd_counter_t;
typedef _Atomic int64_t  rd_gauge_t;

/* Series of one database in one slot. */
typedef struct {
    rd_counter_t sessions_ok;        /* passed the session phases */
    rd_counter_t sessions_refused;   /* ended before that */
    rd_gauge_t   sessions_open;
    rd_counter_t upstream_ok;        /* connections established */
    rd_counter_t upstream_failed;    /* connections that never were */
    rd_counter_t upstream_errors;    /* failures, losses, protocol errors */
    rd_counter_t moved;              /* MOVED and ASK replies from Redis */
    rd_counter_t ask;
    rd_counter_t pubsub_messages;    /* pushes to subscribers (messages,
                                        pmessages, smessages) */
    rd_counter_t latency_usec;       /* histogram sum, microseconds */
    rd_counter_t latency[RD_STATS_BUCKETS + 1];   /* per bucket, not
                                                     cumulative */
    rd_counter_t commands[RD_STATS_COMMANDS][2];  /* [cmd][0 ok, 1 error] */
    rd_counter_t mod[RD_STATS_MOD_DB];            /* the modules' rows
                                                     (gauges stored as
                                                     their two's
                                                     complement) */
} rd_stats_db_t;

typedef struct {
    _Alignas(64)                     /* no cache line shared by two slots */
    _Atomic int32_t  pid;            /* the last worker here, 0: none */
    _Atomic uint32_t used;           /* ever used: the reader skips others */
    rd_counter_t     bytes_in;
    rd_counter_t     bytes_out;
    rd_counter_t     refusals[RD_REFUSAL_MAX];
    rd_counter_t     accept_errors[RD_ACCEPT_ERR_MAX];
    rd_counter_t     mod[RD_STATS_MOD_SLOT];   /* the modules' rows */
    rd_stats_db_t    db[RD_STATS_DB_SLOTS];
} rd_stats_slot_t;

typedef struct {
    rd_gauge_t       workers_current;  /* workers of the current cycle */
    rd_gauge_t       workers_old;      /* retired ones still finishing */
    rd_counter_t     reloads_ok;
    rd_counter_t     reloads_failed;
    rd_gauge_t       generation;       /* successful reloads */
    rd_gauge_t       start_time;       /* Unix time the master started */
    _Atomic uint32_t ndatabases;       /* names[0 .. ndatabases) are set */
    char             names[RD_STATS_DATABASES][RD_STATS_DB_NAME_MAX];
} rd_stats_master_t;

typedef struct {
    rd_stats_master_t master;
    rd_stats_slot_t   slots[RD_STATS_SLOTS];
} rd_stats_region_t;

/* Upper bounds of the latency buckets, in microseconds (0.0001 s .. 10 s),
 * and the same as Prometheus "le" label values. */
extern const int64_t     rd_stats_bucket_usec[RD_STATS_BUCKETS];
extern const char *const rd_stats_bucket_le[RD_STATS_BUCKETS];
extern const char *const rd_stats_refusal_names[RD_REFUSAL_MAX];
extern const char *const rd_stats_accept_err_names[RD_ACCEPT_ERR_MAX];

/* --- a module's counters -------------------------------------------------
 *
 * One row of rd_module_t.stats; the table ends with a row whose name is
 * NULL. A module numbers its rows (an enum in table order) and passes
 * that number to the functions below. Consecutive rows with the same name
 * are one metric family: the first gives its help and type, each row one
 * sample (its labels tell them apart). Families are shown after the
 * core's, module by module in registry order.
 *
 * Where the value lives:
 *   RD_STATS_SLOT   one per worker slot (the slots are summed);
 *   RD_STATS_DB     one per database series of each slot, shown with the
 *                   database label for the databases the core shows;
 *   RD_STATS_CYCLE  nothing shared: the status process asks value() of
 *                   its cycle (what the master read at init_master, say).
 * Flags:
 *   RD_STATS_MAX      slots combine to the largest value, not the sum;
 *   RD_STATS_NONZERO  the family is left out while every value is 0;
 *   RD_STATS_PROCESS  a gauge of the process: the master clears it when it
 *                     reaps the process;
 *   RD_STATS_HIDDEN   not in /metrics (read by /healthz only).
 * unhealthy (RD_STATS_DB gauges): a state, 1 fine, -1 failed, 0 not tried;
 * /healthz answers 503 'database "NAME": <unhealthy>' while some live
 * process has it failed and none has it fine.
 */
typedef enum {
    RD_STATS_COUNTER = 0,
    RD_STATS_GAUGE
} rd_stats_type_t;

typedef enum {
    RD_STATS_SLOT = 0,
    RD_STATS_DB,
    RD_STATS_CYCLE
} rd_stats_scope_t;

#define RD_STATS_MAX      0x01u
#define RD_STATS_NONZERO  0x02u
#define RD_STATS_PROCESS  0x04u
#define RD_STATS_HIDDEN   0x08u

struct rd_stats_def_s {
    const char       *name;      /* as /metrics shows it */
    const char       *labels;    /* more labels ("result=\"ok\""), or NULL */
    const char       *help;      /* the family's first row only */
    rd_stats_type_t   type;
    rd_stats_scope_t  scope;
    unsigned          flags;
    int64_t         (*value)(rd_cycle_t *cycle);   /* RD_STATS_CYCLE */
    const char       *unhealthy;
};

#define rd_null_stat  { NULL, NULL, NULL, 0, 0, 0, NULL, NULL }

/* Give every module's rows their place (rd_modules_init()): 0, or -1 with
 * the reason in err. Also builds the command index (below). */
int rd_stats_modules_init(char *err, size_t n);

/* --- the hot path (workers) -------------------------------------------- */

extern rd_stats_slot_t *rd_stats_me;

#define rd_stats_add(field, n) \
    atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)
#define rd_stats_set(field, v) \
    atomic_store_explicit(&(field), (v), memory_order_relaxed)

static inline void rd_stats_bytes_in(size_t n)
{ rd_stats_add(rd_stats_me->bytes_in, (uint64_t)n); }
static inline void rd_stats_bytes_out(size_t n)
{ rd_stats_add(rd_stats_me->bytes_out, (uint64_t)n); }
static inline void rd_stats_refusal(rd_refusal_t why)
{ rd_stats_add(rd_stats_me->refusals[why], 1); }
static inline void rd_stats_accept_error(rd_accept_err_t why)
{ rd_stats_add(rd_stats_me->accept_errors[why], 1); }

/* The stats index of a database of this worker's cycle. */
unsigned rd_stats_db(const rd_database_t *db);

/* Row idx of module m (an RD_STATS_SLOT row, or RD_STATS_DB for db). */
static inline void
rd_stats_mod_add(const rd_module_t *m, unsigned idx, uint64_t n)
{ rd_stats_add(rd_stats_me->mod[m->stats_slot + (int)idx], n); }
static inline void
rd_stats_mod_set(const rd_module_t *m, unsigned idx, int64_t v)
{ rd_stats_set(rd_stats_me->mod[m->stats_slot + (int)idx], (uint64_t)v); }
static inline void
rd_stats_mod_db_add(const rd_module_t *m, const rd_database_t *db,
                    unsigned idx, uint64_t n)
{
    rd_stats_add(rd_stats_me->db[rd_stats_db(db)].mod[m->stats_db + (int)idx],
                 n);
}
static inline void
rd_stats_mod_db_set(const rd_module_t *m, const rd_database_t *db,
                    unsigned idx, int64_t v)
{
    rd_stats_set(rd_stats_me->db[rd_stats_db(db)].mod[m->stats_db + (int)idx],
                 (uint64_t)v);
}

/* Where row idx of module m lives in a slot, or in one database series
 * (for readers: the status module, a module reading its own counts). */
static inline rd_counter_t *
rd_stats_mod_slot(rd_stats_slot_t *sl, const rd_module_t *m, unsigned idx)
{ return &sl->mod[m->stats_slot + (int)idx]; }
static inline rd_counter_t *
rd_stats_mod_db_slot(rd_stats_db_t *d, const rd_module_t *m, unsigned idx)
{ return &d->mod[m->stats_db + (int)idx]; }

/* The session passed its session phases (call before s->started is set),
 * and it ends (started or refused). */
void rd_stats_session_start(const rd_session_t *s);
void rd_stats_session_end(const rd_session_t *s);
/* A request's reply is complete (before it is freed): counts the command
 * by database, top-level command (from r->cmd) and result. */
void rd_stats_request(const rd_session_t *s, const rd_request_t *r);
/* A Pub/Sub message was handed to a client of db (rd_session_message). */
static inline void rd_stats_pubsub_message(const rd_database_t *db)
{ rd_stats_add(rd_stats_me->db[rd_stats_db(db)].pubsub_messages, 1); }
/* A MOVED (ask = 0) or ASK (ask = 1) reply from Redis, counted by the
 * routing module that received it (followed or sent to the client). */
void rd_stats_redirect(const rd_database_t *db, int ask);
/* Upstream connections: established; failed (was_connected: it had been
 * established and was lost, else it never came up). */
void rd_stats_upstream_up(const rd_database_t *db);
void rd_stats_upstream_failed(const rd_database_t *db, int was_connected);
/* A reply from the database took usec since the request was read. */
void rd_stats_latency(const rd_database_t *db, int64_t usec);

/* --- processes ---------------------------------------------------------- */

/* Map the region (master, once, before the first fork; later calls do
 * nothing). Returns 0, or -1 when mmap failed (counting then goes to the
 * private dummy and /metrics shows zeros). */
int  rd_stats_init(void);
/* The region, or NULL before rd_stats_init(). */
rd_stats_region_t *rd_stats_region(void);

/* Master: give every database of cycle its index (before forking). */
void rd_stats_register_databases(rd_cycle_t *cycle);
/* Master: a reload ended (ok: 1 succeeded, before the new workers start;
 * 0 failed). */
void rd_stats_reload(int ok);
/* Master: how many workers are alive (current cycle, retired). */
void rd_stats_workers(int64_t current, int64_t old);
/* Master: a child was reaped; clear the gauges of its slot. */
void rd_stats_worker_gone(pid_t pid);

/* Worker: take this process's slot (from its slot number and the reload
 * generation) and map the cycle's databases to their indexes. */
void rd_stats_worker_init(rd_worker_t *w);
/* The name of a dense top-level command index (RD_STATS_COMMANDS - 1:
 * "_unknown"), or NULL. */
const char *rd_stats_command_name(unsigned idx);

#endif

/*
 * rd_status.c - the status module: Prometheus /metrics and /healthz over
 * plain HTTP/1.1.
 *
 * Configuration:
 *   status = { listen = "127.0.0.1:9180"; };
 * Without status.listen there is no status server (the counters are kept
 * all the same).
 *
 * The listening socket is bound by the master, at start and on a reload
 * (a reload that keeps the address hands the same socket over, so no
 * connection waiting in its queue is lost; a new address is bound before
 * the reload commits, and failing to bind fails the reload). The requests
 * are served by one small process, the status server, that the master
 * starts, restarts and retires like a worker (the module's process hook,
 * rd_module.h): it runs in a slot after the last worker, closes the client
 * listeners it inherited, drops privileges like a worker, and serves from
 * its own epoll loop: non-blocking, GET only, one request per connection
 * ("Connection: close"), requests of at most RD_STATUS_MAX_REQUEST bytes,
 * and at most RD_STATUS_TIMEOUT for a whole exchange.
 *
 *   GET /metrics  the counters of every worker slot, summed (rd_stats.h),
 *                 in the Prometheus text exposition format 0.0.4: the
 *                 core's families, then every module's own rows
 *                 (rd_module_t.stats), in registry order, rendered from
 *                 their table: this module knows no other module;
 *   GET /healthz  200 "ok" while the master has live workers of the
 *                 current configuration and no database has a health
 *                 state (a module's row with "unhealthy", such as a
 *                 cluster slot map) failed in every worker that tried,
 *                 else 503 and the reason.
 *   anything else 404; a method other than GET 405.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd_buf.h"
#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_event.h"
#include "rd_log.h"
#include "rd_process.h"
#include "rd_proctitle.h"
#include "rd_stats.h"
#include "rd_status_int.h"
#include "rd_worker.h"

rd_module_t rd_status_module;

#define RD_STATUS_MAX_REQUEST  4096      /* request line and headers */
#define RD_STATUS_TIMEOUT      10000     /* ms for a whole exchange */
#define RD_STATUS_LINGER       2000      /* ms to wait for the client's EOF */
#define RD_STATUS_MAX_CLIENTS  64
#define RD_STATUS_BACKLOG      64

typedef struct {
    char          *listen;          /* "host:port", NULL: no status server */
    rd_sockaddr_t  addr;
    int            fd;              /* bound by the master */
} rd_status_conf_t;

/* --- configuration ------------------------------------------------------ */

static const char *
rd_status_set_listen(rd_conf_t *cf, const config_setting_t *s,
                     const rd_directive_t *d, void *conf)
{
    rd_status_conf_t *c = conf;
    const char *err = rd_conf_set_str(cf, s, d, conf);
    if (err) {
        return err;
    }
    if (rd_sockaddr_parse(cf->pool, c->listen, &c->addr, &err) != 0) {
        return err;
    }
    return NULL;
}

static const rd_directive_t rd_status_directives[] = {
    { "status.listen", RD_CONF_MAIN, rd_status_set_listen,
      offsetof(rd_status_conf_t, listen), NULL },
    rd_null_directive
};

static void
rd_status_conf_cleanup(void *data)
{
    rd_status_conf_t *c = data;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

static void *
rd_status_create_main(rd_conf_t *cf)
{
    rd_status_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->fd = -1;
    rd_pool_cleanup_add(cf->pool, rd_status_conf_cleanup, c);
    return c;
}

static rd_status_conf_t *
rd_status_conf(rd_cycle_t *cycle)
{
    return rd_main_conf(cycle, rd_status_module);
}

/* --- the helper process hooks the master calls (rd_module.h) ---------------- */

/* In the master, when the cycle is put to use (not for "redoubt -t"). */
static int
rd_status_open(rd_cycle_t *cycle, rd_cycle_t *old, char **err)
{
    rd_status_conf_t *c = rd_status_conf(cycle);
    char buf[1536], where[1024];

    if (c->listen == NULL) {
        return 0;
    }
    rd_conf_where(cycle, cycle->main_conf, "status.listen", where,
                  sizeof(where));
    rd_status_conf_t *o = old ? rd_status_conf(old) : NULL;
    if (o && o->fd >= 0 && o->addr.len == c->addr.len
        && memcmp(&o->addr.addr, &c->addr.addr, c->addr.len) == 0)
    {
        /* The same socket: each cycle holds its own descriptor, so a
         * reload that fails later leaves the old one untouched. */
        c->fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0);
        if (c->fd >= 0) {
            return 0;
        }
        snprintf(buf, sizeof(buf), "%s: %s: dup: %s", where, c->listen,
                 strerror(errno));
        *err = rd_strdup(buf);
        return -1;
    }

    int fd = socket(c->addr.addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0
        || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0
        || bind(fd, (struct sockaddr *)&c->addr.addr, c->addr.len) != 0
        || listen(fd, RD_STATUS_BACKLOG) != 0)
    {
        snprintf(buf, sizeof(buf), "%s: cannot listen on %s: %s", where,
                 c->listen, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        *err = rd_strdup(buf);
        return -1;
    }
    c->fd = fd;
    return 0;
}

static int
rd_status_wanted(rd_cycle_t *cycle)
{
    rd_status_conf_t *c = rd_status_conf(cycle);
    return c->listen != NULL && c->fd >= 0;
}

static void rd_status_process(rd_cycle_t *cycle);

static int
rd_status_init_worker(rd_worker_t *w)
{
    rd_status_conf_t *c = rd_status_conf(w->cycle);
    if (c->fd >= 0) {
        close(c->fd);           /* the status server's, not ours */
        c->fd = -1;
    }
    return RD_OK;
}

/* --- /metrics --------------------------------------------------------------- */

typedef struct {
    uint64_t sessions_ok, sessions_refused;
    int64_t  sessions_open;
    uint64_t upstream_ok, upstream_failed, upstream_errors;
    uint64_t moved, ask;
    uint64_t pubsub_messages;
    uint64_t latency_usec;
    uint64_t latency[RD_STATS_BUCKETS + 1];
    uint64_t commands[RD_STATS_COMMANDS][2];
    uint64_t mod[RD_STATS_MOD_DB];
} rd_status_db_sum_t;

typedef struct {
    uint64_t bytes_in, bytes_out;
    uint64_t refusals[RD_REFUSAL_MAX];
    uint64_t accept_errors[RD_ACCEPT_ERR_MAX];
    uint64_t mod[RD_STATS_MOD_SLOT];
    rd_status_db_sum_t db[RD_STATS_DB_SLOTS];
} rd_status_sum_t;

#define RD_LOAD(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* One slot's value of a module's row into the total: summed (gauges as
 * two's complement), or the largest (RD_STATS_MAX, as signed values). */
static void
rd_status_combine(const rd_stats_def_t *row, uint64_t *total, uint64_t v)
{
    if (!(row->flags & RD_STATS_MAX)) {
        *total += v;
    } else if ((int64_t)v > (int64_t)*total) {
        *total = v;
    }
}

static void
rd_status_sum_modules(rd_stats_slot_t *sl, rd_status_sum_t *t)
{
    for (unsigned k = 0; k < rd_nmodules; k++) {
        const rd_module_t *m = rd_modules[k];
        for (unsigned i = 0; m->stats && m->stats[i].name; i++) {
            const rd_stats_def_t *row = &m->stats[i];
            if (row->scope == RD_STATS_SLOT) {
                rd_status_combine(row, &t->mod[m->stats_slot + (int)i],
                                  RD_LOAD(*rd_stats_mod_slot(sl, m, i)));
                continue;
            }
            for (size_t d = 0; row->scope == RD_STATS_DB
                               && d < RD_STATS_DB_SLOTS; d++)
            {
                rd_status_combine(row, &t->db[d].mod[m->stats_db + (int)i],
                                  RD_LOAD(*rd_stats_mod_db_slot(&sl->db[d],
                                                                m, i)));
            }
        }
    }
}

static void
rd_status_sum(rd_stats_region_t *rg, rd_status_sum_t *t)
{
    for (size_t i = 0; rg && i < RD_STATS_SLOTS; i++) {
        rd_stats_slot_t *sl = &rg->slots[i];
        if (!RD_LOAD(sl->used)) {
            continue;
        }
        t->bytes_in += RD_LOAD(sl->bytes_in);
        t->bytes_out += RD_LOAD(sl->bytes_out);
        for (size_t k = 0; k < RD_REFUSAL_MAX; k++) {
            t->refusals[k] += RD_LOAD(sl->refusals[k]);
        }
        for (size_t k = 0; k < RD_ACCEPT_ERR_MAX; k++) {
            t->accept_errors[k] += RD_LOAD(sl->accept_errors[k]);
        }
        for (size_t d = 0; d < RD_STATS_DB_SLOTS; d++) {
            rd_stats_db_t *s = &sl->db[d];
            rd_status_db_sum_t *o = &t->db[d];
            o->sessions_ok += RD_LOAD(s->sessions_ok);
            o->sessions_refused += RD_LOAD(s->sessions_refused);
            o->sessions_open += RD_LOAD(s->sessions_open);
            o->upstream_ok += RD_LOAD(s->upstream_ok);
            o->upstream_failed += RD_LOAD(s->upstream_failed);
            o->upstream_errors += RD_LOAD(s->upstream_errors);
            o->moved += RD_LOAD(s->moved);
            o->ask += RD_LOAD(s->ask);
            o->pubsub_messages += RD_LOAD(s->pubsub_messages);
            o->latency_usec += RD_LOAD(s->latency_usec);
            for (size_t b = 0; b <= RD_STATS_BUCKETS; b++) {
                o->latency[b] += RD_LOAD(s->latency[b]);
            }
            for (size_t c = 0; c < RD_STATS_COMMANDS; c++) {
                o->commands[c][0] += RD_LOAD(s->commands[c][0]);
                o->commands[c][1] += RD_LOAD(s->commands[c][1]);
            }
        }
        rd_status_sum_modules(sl, t);
    }
}

/* A label value: backslash, double quote and newline escaped. */
static void
rd_status_label(rd_buf_t *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        switch (*p) {
        case '\\': rd_buf_append(b, "\\\\", 2); break;
        case '"':  rd_buf_append(b, "\\\"", 2); break;
        case '\n': rd_buf_append(b, "\\n", 2); break;
        default:   rd_buf_append(b, p, 1); break;
        }
    }
}

void
rd_status_family(rd_buf_t *b, const char *name, const char *type,
                 const char *help)
{
    rd_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                   type);
}

/* Which database series to show: every named one, the others only when
 * something was counted there. */
static int
rd_status_db_shown(const rd_status_sum_t *t, unsigned d, uint32_t nnames)
{
    if (d < nnames) {
        return 1;
    }
    if (d < RD_STATS_DATABASES) {
        return 0;
    }
    const rd_status_db_sum_t *s = &t->db[d];
    return s->sessions_ok || s->sessions_refused || s->sessions_open
           || s->upstream_ok || s->upstream_failed || s->upstream_errors;
}

static const char *
rd_status_db_name(rd_stats_region_t *rg, unsigned d)
{
    if (d == RD_STATS_DB_NONE) {
        return "";
    }
    if (d == RD_STATS_DB_OTHER || rg == NULL) {
        return "_other";
    }
    return rg->master.names[d];
}

/* One sample: name{database="...",<extra>} value. */
static void
rd_status_db_sample(rd_buf_t *b, const char *name, rd_stats_region_t *rg,
                    unsigned d, const char *extra, uint64_t v)
{
    rd_buf_appendf(b, "%s{database=\"", name);
    rd_status_label(b, rd_status_db_name(rg, d));
    rd_buf_appendf(b, "\"%s%s} %llu\n", extra ? "," : "", extra ? extra : "",
                   (unsigned long long)v);
}

/* --- the modules' families (rd_stats.h) ------------------------------------- */

/* Row i of module m, over every slot (database series d for a
 * per-database row). */
static uint64_t
rd_status_mod_value(rd_cycle_t *cycle, const rd_status_sum_t *t,
                    const rd_module_t *m, unsigned i, unsigned d)
{
    const rd_stats_def_t *row = &m->stats[i];
    switch (row->scope) {
    case RD_STATS_SLOT:
        return t->mod[m->stats_slot + (int)i];
    case RD_STATS_DB:
        return t->db[d].mod[m->stats_db + (int)i];
    default:
        return (uint64_t)row->value(cycle);
    }
}

/* One sample: name{database="...",<labels>} value, with either part of
 * the braces (or both) left out. */
static void
rd_status_mod_sample(rd_buf_t *b, const rd_stats_def_t *row,
                     rd_stats_region_t *rg, int d, uint64_t v)
{
    rd_buf_append_str(b, row->name);
    if (d >= 0 || row->labels) {
        rd_buf_append_str(b, "{");
        if (d >= 0) {
            rd_buf_append_str(b, "database=\"");
            rd_status_label(b, rd_status_db_name(rg, (unsigned)d));
            rd_buf_append_str(b, row->labels ? "\"," : "\"");
        }
        if (row->labels) {
            rd_buf_append_str(b, row->labels);
        }
        rd_buf_append_str(b, "}");
    }
    if (row->type == RD_STATS_GAUGE) {
        rd_buf_appendf(b, " %lld\n", (long long)(int64_t)v);
    } else {
        rd_buf_appendf(b, " %llu\n", (unsigned long long)v);
    }
}

/* Rows [first, end) of module m: one family. Per-database rows are shown
 * for the databases the core's families show. */
static void
rd_status_mod_family(rd_cycle_t *cycle, rd_buf_t *b, rd_stats_region_t *rg,
                     const rd_status_sum_t *t, uint32_t nnames,
                     const rd_module_t *m, unsigned first, unsigned end)
{
    const rd_stats_def_t *f = &m->stats[first];
    int per_db = f->scope == RD_STATS_DB;
    unsigned ndb = per_db ? RD_STATS_DB_SLOTS : 1;

    if (f->flags & RD_STATS_HIDDEN) {
        return;
    }
    if (f->flags & RD_STATS_NONZERO) {
        uint64_t any = 0;
        for (unsigned d = 0; d < ndb; d++) {
            for (unsigned i = first; i < end && (!per_db
                     || rd_status_db_shown(t, d, nnames)); i++)
            {
                any |= rd_status_mod_value(cycle, t, m, i, d);
            }
        }
        if (any == 0) {
            return;
        }
    }
    rd_status_family(b, f->name,
                     f->type == RD_STATS_GAUGE ? "gauge" : "counter",
                     f->help);
    for (unsigned d = 0; d < ndb; d++) {
        if (per_db && !rd_status_db_shown(t, d, nnames)) {
            continue;
        }
        for (unsigned i = first; i < end; i++) {
            rd_status_mod_sample(b, &m->stats[i], rg, per_db ? (int)d : -1,
                                 rd_status_mod_value(cycle, t, m, i, d));
        }
    }
}

/* Every module's families, in registry order; consecutive rows with one
 * name are one family. */
static void
rd_status_mod_metrics(rd_cycle_t *cycle, rd_buf_t *b, rd_stats_region_t *rg,
                      const rd_status_sum_t *t, uint32_t nnames)
{
    for (unsigned k = 0; k < rd_nmodules; k++) {
        const rd_module_t *m = rd_modules[k];
        unsigned i = 0;
        while (m->stats && m->stats[i].name) {
            unsigned end = i + 1;
            while (m->stats[end].name
                   && strcmp(m->stats[end].name, m->stats[i].name) == 0)
            {
                end++;
            }
            rd_status_mod_family(cycle, b, rg, t, nnames, m, i, end);
            i = end;
        }
    }
}

static void
rd_status_metrics(rd_cycle_t *cycle, rd_buf_t *b)
{
    rd_stats_region_t *rg = rd_stats_region();
    rd_status_sum_t *t = rd_calloc(1, sizeof(*t));
    uint32_t nnames = rg ? atomic_load_explicit(&rg->master.ndatabases,
                                                memory_order_acquire) : 0;
    char extra[160];

    rd_status_sum(rg, t);

    rd_status_family(b, "redoubt_build_info", "gauge",
                     "The version of redoubt, and of the Redis its command "
                     "table was generated from.");
    rd_buf_appendf(b, "redoubt_build_info{version=\"%s\",redis_commands=\"%s\""
                   "} 1\n", PACKAGE_VERSION, rd_command_table_version());

    if (rg) {
        rd_stats_master_t *m = &rg->master;
        rd_status_family(b, "redoubt_start_time_seconds", "gauge",
                         "When the master process started, in Unix time.");
        rd_buf_appendf(b, "redoubt_start_time_seconds %lld\n",
                       (long long)RD_LOAD(m->start_time));
        rd_status_family(b, "redoubt_worker_processes", "gauge",
                         "Worker processes alive: of the current "
                         "configuration, and retired by a reload but still "
                         "finishing their sessions.");
        rd_buf_appendf(b, "redoubt_worker_processes{state=\"current\"} %lld\n"
                       "redoubt_worker_processes{state=\"retiring\"} %lld\n",
                       (long long)RD_LOAD(m->workers_current),
                       (long long)RD_LOAD(m->workers_old));
        rd_status_family(b, "redoubt_reloads_total", "counter",
                         "Configuration reloads, by result.");
        rd_buf_appendf(b, "redoubt_reloads_total{result=\"ok\"} %llu\n"
                       "redoubt_reloads_total{result=\"failed\"} %llu\n",
                       (unsigned long long)RD_LOAD(m->reloads_ok),
                       (unsigned long long)RD_LOAD(m->reloads_failed));
    }

    rd_status_family(b, "redoubt_sessions_total", "counter",
                     "Client sessions, by database and result: ok (let in) "
                     "or refused (ended before it was let in).");
    for (unsigned d = 0; d < RD_STATS_DB_SLOTS; d++) {
        if (rd_status_db_shown(t, d, nnames)) {
            rd_status_db_sample(b, "redoubt_sessions_total", rg, d,
                                "result=\"ok\"", t->db[d].sessions_ok);
            rd_status_db_sample(b, "redoubt_sessions_total", rg, d,
                                "result=\"refused\"",
                                t->db[d].sessions_refused);
        }
    }
    rd_status_family(b, "redoubt_sessions_open", "gauge",
                     "Client sessions open now, by database.");
    for (unsigned d = 0; d < RD_STATS_DB_SLOTS; d++) {
        if (rd_status_db_shown(t, d, nnames)) {
            int64_t open = t->db[d].sessions_open;
            rd_status_db_sample(b, "redoubt_sessions_open", rg, d, NULL,
                                open > 0 ? (uint64_t)open : 0);
        }
    }

    rd_status_family(b, "redoubt_refusals_total", "counter",
                     "Sessions and commands refused, by reason.");
    for (unsigned k = 0; k < RD_REFUSAL_MAX; k++) {
        rd_buf_appendf(b, "redoubt_refusals_total{reason=\"%s\"} %llu\n",
                       rd_stats_refusal_names[k],
                       (unsigned long long)t->refusals[k]);
    }

    rd_status_family(b, "redoubt_accept_errors_total", "counter",
                     "Failed accept(2) calls on client listeners, by reason: "
                     "emfile (the worker's open files limit), enfile (the "
                     "system's), enobufs (out of memory), other. After "
                     "emfile, enfile or enobufs a worker stops accepting "
                     "for 100 ms.");
    for (unsigned k = 0; k < RD_ACCEPT_ERR_MAX; k++) {
        rd_buf_appendf(b, "redoubt_accept_errors_total{reason=\"%s\"} %llu\n",
                       rd_stats_accept_err_names[k],
                       (unsigned long long)t->accept_errors[k]);
    }

    rd_status_family(b, "redoubt_commands_total", "counter",
                     "Commands answered, by database, top-level command and "
                     "result (error: an error reply, from Redis or from "
                     "redoubt).");
    for (unsigned d = 0; d < RD_STATS_DB_SLOTS; d++) {
        for (unsigned k = 0; k < RD_STATS_COMMANDS; k++) {
            for (int e = 0; e < 2; e++) {
                uint64_t v = t->db[d].commands[k][e];
                if (v == 0) {
                    continue;
                }
                rd_buf_append_str(b, "redoubt_commands_total{database=\"");
                rd_status_label(b, rd_status_db_name(rg, d));
                rd_buf_append_str(b, "\",command=\"");
                rd_status_label(b, rd_stats_command_name(k));
                rd_buf_appendf(b, "\",result=\"%s\"} %llu\n",
                               e ? "error" : "ok", (unsigned long long)v);
            }
        }
    }

    rd_status_family(b, "redoubt_redirections_total", "counter",
                     "MOVED and ASK replies from Redis, by database.");
    for (unsigned d = 0; d < RD_STATS_DB_SLOTS; d++) {
        if (rd_status_db_shown(t, d, nnames)) {
            rd_status_db_sample(b, "redoubt_redirections_total", rg, d,
                                "type=\"moved\"", t->db[d].moved);
            rd_status_db_sample(b, "redoubt_redirections_total", rg, d,
                                "type=\"ask\"", t->db[d].ask);
        }
    }

    rd_status_family(b, "redoubt_pubsub_messages_total", "counter",
                     "Pub/Sub messages (message, pmessage, smessage) "
                     "delivered to subscribed clients, by database.");
    for (unsigned d = 0; d < RD_STATS_DB_SLOTS; d++) {
        if (rd_status_db_shown(t, d, nnames)) {
            rd_status_db_sample(b, "redoubt_pubsub_messages_total", rg, d,
                                NULL, t->db[d].pubsub_messages);
        }
    }

    rd_status_family(b, "redoubt_upstream_connections_total", "counter",
                     "Connections to Redis, by database and result: ok "
                     "(established, TLS included) or failed.");
    for (unsigned d = 0; d < RD_STATS_DB_SLOTS; d++) {
        if (rd_status_db_shown(t, d, nnames)) {
            rd_status_db_sample(b, "redoubt_upstream_connections_total", rg,
                                d, "result=\"ok\"", t->db[d].upstream_ok);
            rd_status_db_sample(b, "redoubt_upstream_connections_total", rg,
                                d, "result=\"failed\"",
                                t->db[d].upstream_failed);
        }
    }
    rd_status_family(b, "redoubt_upstream_errors_total", "counter",
                     "Upstream connection failures, by database: failed "
                     "connects, lost connections, protocol errors.");
    for (unsigned d = 0; d < RD_STATS_DB_SLOTS; d++) {
        if (rd_status_db_shown(t, d, nnames)) {
            rd_status_db_sample(b, "redoubt_upstream_errors_total", rg, d,
                                NULL, t->db[d].upstream_errors);
        }
    }

    rd_status_family(b, "redoubt_upstream_latency_seconds", "histogram",
                     "Time from reading a command to the end of its reply "
                     "from Redis, by database.");
    for (unsigned d = 0; d < RD_STATS_DB_SLOTS; d++) {
        if (!rd_status_db_shown(t, d, nnames)) {
            continue;
        }
        uint64_t cum = 0;
        for (unsigned k = 0; k <= RD_STATS_BUCKETS; k++) {
            cum += t->db[d].latency[k];
            snprintf(extra, sizeof(extra), "le=\"%s\"",
                     k < RD_STATS_BUCKETS ? rd_stats_bucket_le[k] : "+Inf");
            rd_status_db_sample(b, "redoubt_upstream_latency_seconds_bucket",
                                rg, d, extra, cum);
        }
        rd_buf_append_str(b, "redoubt_upstream_latency_seconds_sum"
                          "{database=\"");
        rd_status_label(b, rd_status_db_name(rg, d));
        rd_buf_appendf(b, "\"} %llu.%06llu\n",
                       (unsigned long long)(t->db[d].latency_usec / 1000000),
                       (unsigned long long)(t->db[d].latency_usec % 1000000));
        rd_status_db_sample(b, "redoubt_upstream_latency_seconds_count", rg,
                            d, NULL, cum);
    }

    rd_status_family(b, "redoubt_client_received_bytes_total", "counter",
                     "Bytes read from clients (after TLS).");
    rd_buf_appendf(b, "redoubt_client_received_bytes_total %llu\n",
                   (unsigned long long)t->bytes_in);
    rd_status_family(b, "redoubt_client_sent_bytes_total", "counter",
                     "Bytes written to clients (before TLS).");
    rd_buf_appendf(b, "redoubt_client_sent_bytes_total %llu\n",
                   (unsigned long long)t->bytes_out);

    rd_status_mod_metrics(cycle, b, rg, t, nnames);
    free(t);
    rd_status_process_metrics(b);
}

/* A module's health state (rd_stats.h, unhealthy) of database series d:
 * failed in some live process and fine in none. */
static int
rd_status_db_failed(rd_stats_region_t *rg, const rd_module_t *m, unsigned i,
                    unsigned d)
{
    int known = 0, failed = 0;
    for (size_t k = 0; k < RD_STATS_SLOTS; k++) {
        rd_stats_slot_t *sl = &rg->slots[k];
        if (RD_LOAD(sl->pid) == 0) {
            continue;
        }
        int64_t st = (int64_t)RD_LOAD(*rd_stats_mod_db_slot(&sl->db[d], m, i));
        known |= st > 0;
        failed |= st < 0;
    }
    return failed && !known;
}

/* 200 and "ok", or 503 and why. */
static int
rd_status_health(rd_cycle_t *cycle, rd_buf_t *b)
{
    rd_stats_region_t *rg = rd_stats_region();

    if (getppid() == 1) {
        rd_buf_append_str(b, "the master process is gone\n");
        return 503;
    }
    if (rg == NULL) {
        rd_buf_append_str(b, "no shared counters\n");
        return 503;
    }
    int64_t n = RD_LOAD(rg->master.workers_current);
    if (n <= 0) {
        rd_buf_append_str(b, "no live worker processes\n");
        return 503;
    }
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        rd_database_t *db = &cycle->databases[i];
        unsigned d = rd_stats_db(db);
        for (unsigned k = 0; k < rd_nmodules; k++) {
            const rd_module_t *m = rd_modules[k];
            for (unsigned r = 0; m->stats && m->stats[r].name; r++) {
                if (m->stats[r].unhealthy
                    && rd_status_db_failed(rg, m, r, d))
                {
                    rd_buf_appendf(b, "database \"%s\": %s\n", db->name,
                                   m->stats[r].unhealthy);
                    return 503;
                }
            }
        }
    }
    rd_buf_append_str(b, "ok\n");
    return 200;
}

/* --- the HTTP server ---------------------------------------------------------- */

typedef struct rd_http_s rd_http_t;

typedef struct {
    rd_cycle_t      *cycle;
    rd_loop_t        loop;
    rd_conn_t       *sigconn;
    rd_conn_t       *listener;
    rd_http_t       *clients;
    size_t           nclients;
    unsigned         stopping:1;
    unsigned         exiting:1;
} rd_status_srv_t;

struct rd_http_s {
    rd_status_srv_t *srv;
    rd_http_t       *prev;
    rd_http_t       *next;
    rd_conn_t       *conn;
    rd_timer_t       timer;
    rd_buf_t         out;
    size_t           inlen;
    unsigned         lingering:1;
    char             in[RD_STATUS_MAX_REQUEST];
};

static void
rd_http_close(rd_http_t *h)
{
    rd_status_srv_t *srv = h->srv;
    rd_timer_del(&srv->loop.timers, &h->timer);
    rd_conn_close(h->conn);
    rd_buf_free(&h->out);
    if (h->prev) {
        h->prev->next = h->next;
    } else {
        srv->clients = h->next;
    }
    if (h->next) {
        h->next->prev = h->prev;
    }
    srv->nclients--;
    free(h);
}

static void
rd_http_timeout(rd_timer_t *t)
{
    rd_http_close(t->data);
}

/* Lingering close: our side is shut; wait for the client's EOF so that
 * closing does not reset a connection the response is still crossing. */
static void
rd_http_linger_read(rd_conn_t *c)
{
    rd_http_t *h = c->data;
    char buf[512];
    ssize_t n;

    while ((n = read(c->fd, buf, sizeof(buf))) > 0) {
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        rd_http_close(h);
    }
}

static void
rd_http_write(rd_conn_t *c)
{
    rd_http_t *h = c->data;

    while (rd_buf_used(&h->out) > 0) {
        ssize_t n = write(c->fd, rd_buf_rpos(&h->out), rd_buf_used(&h->out));
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            rd_conn_watch(c, EPOLLOUT);
            return;
        }
        if (n <= 0) {
            rd_http_close(h);
            return;
        }
        rd_buf_consume(&h->out, (size_t)n);
    }
    shutdown(c->fd, SHUT_WR);
    h->lingering = 1;
    c->read = rd_http_linger_read;
    c->write = NULL;
    rd_conn_watch(c, EPOLLIN);
    rd_timer_add(&h->srv->loop.timers, &h->timer, h->srv->loop.now,
                 RD_STATUS_LINGER);
}

static const char *
rd_http_reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default:  return "Internal Server Error";
    }
}

static void
rd_http_respond(rd_http_t *h, int code, const char *type, rd_buf_t *body)
{
    rd_buf_appendf(&h->out, "HTTP/1.1 %d %s\r\n"
                   "Server: redoubt/%s\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n"
                   "%s"
                   "Connection: close\r\n\r\n",
                   code, rd_http_reason(code), PACKAGE_VERSION, type,
                   rd_buf_used(body), code == 405 ? "Allow: GET\r\n" : "");
    rd_buf_append(&h->out, rd_buf_rpos(body), rd_buf_used(body));
    rd_buf_free(body);
    h->conn->read = NULL;
    h->conn->write = rd_http_write;
    rd_http_write(h->conn);
}

static void
rd_http_error(rd_http_t *h, int code)
{
    rd_buf_t body = { 0 };
    rd_buf_appendf(&body, "%d %s\n", code, rd_http_reason(code));
    rd_http_respond(h, code, "text/plain; charset=utf-8", &body);
}

/* The request line and headers are all in h->in. */
static void
rd_http_handle(rd_http_t *h, size_t head_len)
{
    char *line = h->in;
    char *eol = memchr(line, '\n', head_len);
    *eol = '\0';
    if (eol > line && eol[-1] == '\r') {
        eol[-1] = '\0';
    }

    /* METHOD SP TARGET SP HTTP/1.x */
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1
        || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || strchr(sp2 + 1, ' '))
    {
        rd_http_error(h, 400);
        return;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    char *target = sp1 + 1;
    char *query = strchr(target, '?');
    if (query) {
        *query = '\0';
    }
    if (strcmp(line, "GET") != 0) {
        rd_http_error(h, 405);
        return;
    }

    rd_status_srv_t *srv = h->srv;
    rd_buf_t body = { 0 };
    if (strcmp(target, "/metrics") == 0) {
        rd_status_metrics(srv->cycle, &body);
        rd_http_respond(h, 200, "text/plain; version=0.0.4; charset=utf-8",
                        &body);
    } else if (strcmp(target, "/healthz") == 0) {
        int code = rd_status_health(srv->cycle, &body);
        rd_http_respond(h, code, "text/plain; charset=utf-8", &body);
    } else {
        rd_http_error(h, 404);
    }
}

/* The end of the headers: an empty line. */
static size_t
rd_http_head_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\n' && p[i + 1] == '\n') {
            return i + 2;
        }
        if (p[i] == '\n' && p[i + 1] == '\r' && i + 2 < n
            && p[i + 2] == '\n')
        {
            return i + 3;
        }
    }
    return 0;
}

static void
rd_http_read(rd_conn_t *c)
{
    rd_http_t *h = c->data;

    ssize_t n = read(c->fd, h->in + h->inlen, sizeof(h->in) - h->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        rd_http_close(h);       /* gone before it asked for anything */
        return;
    }
    h->inlen += (size_t)n;
    size_t end = rd_http_head_end(h->in, h->inlen);
    if (end > 0) {
        rd_http_handle(h, end);
    } else if (h->inlen == sizeof(h->in)) {
        rd_http_error(h, 431);
    }
}

static void
rd_status_accept(rd_conn_t *c)
{
    rd_status_srv_t *srv = c->data;

    for (int i = 0; i < 16; i++) {
        int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                rd_log_error("status: accept: %s", strerror(errno));
            }
            return;
        }
        if (srv->nclients >= RD_STATUS_MAX_CLIENTS) {
            close(fd);
            continue;
        }
        rd_http_t *h = rd_calloc(1, sizeof(*h));
        h->srv = srv;
        h->conn = rd_conn_new(&srv->loop, fd, h);
        if (h->conn == NULL) {
            close(fd);
            free(h);
            continue;
        }
        h->conn->read = rd_http_read;
        rd_conn_watch(h->conn, EPOLLIN);
        h->timer.handler = rd_http_timeout;
        h->timer.data = h;
        rd_timer_add(&srv->loop.timers, &h->timer, srv->loop.now,
                     RD_STATUS_TIMEOUT);
        h->next = srv->clients;
        if (srv->clients) {
            srv->clients->prev = h;
        }
        srv->clients = h;
        srv->nclients++;
    }
}

static void
rd_status_signal(rd_conn_t *c)
{
    rd_status_srv_t *srv = c->data;
    struct signalfd_siginfo si;

    while (read(c->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGQUIT:
            /* Retired by a reload or a graceful stop: answer what was
             * accepted, then go. */
            srv->stopping = 1;
            if (srv->listener) {
                rd_conn_close(srv->listener);
                srv->listener = NULL;
            }
            break;
        case SIGTERM:
        case SIGINT:
            srv->exiting = 1;
            break;
        case SIGUSR1:
            rd_log_reopen();
            break;
        default:
            break;
        }
    }
}

static int
rd_status_drop_privileges(rd_cycle_t *cycle)
{
    rd_core_conf_t *ccf = rd_core_conf(cycle);

    if (ccf->user == NULL || geteuid() != 0) {
        return 0;
    }
    if (setgid(ccf->gid) != 0 || initgroups(ccf->user, ccf->gid) != 0
        || setuid(ccf->uid) != 0)
    {
        rd_log_error("status: cannot switch to user \"%s\": %s", ccf->user,
                     strerror(errno));
        return -1;
    }
    return 0;
}

static int
rd_status_setup(rd_status_srv_t *srv, rd_cycle_t *cycle)
{
    rd_status_conf_t *c = rd_status_conf(cycle);

    srv->cycle = cycle;
    if (rd_loop_init(&srv->loop) != 0) {
        rd_log_error("status: epoll_create1: %s", strerror(errno));
        return -1;
    }
    int sfd = rd_process_signalfd();
    if (sfd < 0) {
        rd_log_error("status: signalfd: %s", strerror(errno));
        return -1;
    }
    srv->sigconn = rd_conn_new(&srv->loop, sfd, srv);
    if (srv->sigconn == NULL) {
        close(sfd);
        return -1;
    }
    srv->sigconn->read = rd_status_signal;
    rd_conn_watch(srv->sigconn, EPOLLIN);

    srv->listener = rd_conn_new(&srv->loop, c->fd, srv);
    if (srv->listener == NULL) {
        rd_log_error("status: cannot watch %s: %s", c->listen,
                     strerror(errno));
        return -1;
    }
    c->fd = -1;                 /* the connection owns it now */
    srv->listener->read = rd_status_accept;
    rd_conn_watch(srv->listener, EPOLLIN);
    return rd_status_drop_privileges(cycle);
}

static void
rd_status_process(rd_cycle_t *cycle)
{
    rd_status_srv_t srv;
    memset(&srv, 0, sizeof(srv));

    /* Named apart from the workers in ps(1) and /proc; gone with the
     * master. */
    prctl(PR_SET_NAME, "redoubt-status", 0, 0, 0);
    rd_proctitle_set("status process");
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    /* The client listeners are the workers' business. */
    rd_cycle_close_listeners(cycle);

    int rc = rd_status_setup(&srv, cycle);
    if (rc == 0) {
        rd_log_info("status server listening on %s",
                    rd_status_conf(cycle)->listen);
        while (!srv.exiting && !(srv.stopping && srv.nclients == 0)) {
            rd_loop_once(&srv.loop);
        }
    }

    while (srv.clients) {
        rd_http_close(srv.clients);
    }
    if (srv.listener) {
        rd_conn_close(srv.listener);
    }
    if (srv.sigconn) {
        rd_conn_close(srv.sigconn);
    }
    rd_loop_free(&srv.loop);
    rd_log_info("status server exiting");
    rd_cycle_destroy(cycle);
    exit(rc == 0 ? 0 : 2);
}

rd_module_t rd_status_module = {
    .name = "status",
    .directives = rd_status_directives,
    .create_conf = { rd_status_create_main, NULL, NULL },
    .init_worker = rd_status_init_worker,
    .process = { rd_status_open, rd_status_wanted, rd_status_process },
};

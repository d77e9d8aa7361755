/*
 * rd_cluster_info.c - INFO for a cluster database: the same INFO (with the
 * client's section arguments, so "default", "all", "everything" and
 * several sections mean what they mean to Redis 7.0) goes to every
 * master, and the replies are merged into the INFO of one server:
 *
 *   Server       the first master's, with redoubt_version added after
 *                redis_version (the backend's), redis_mode standalone,
 *                and redoubt's process_id, tcp_port, uptime, executable
 *                and config_file
 *   Clients      connected_clients: the gateway's open sessions of this
 *                database (all workers); cluster_connections left out;
 *                the rest by the rule below
 *   Replication  role:master, connected_slaves:0 (the gateway is one
 *                master to its clients; the replicas are not its)
 *   Cluster      cluster_enabled:0
 *   Keyspace     keys and expires added up, avg_ttl averaged weighted
 *                by expires
 *   Modules      the first master's
 *   the others   field by field: integers and decimals are added up
 *                (counters, sizes and their peaks, rates, CPU seconds),
 *                but the largest is kept for maxima, ratios,
 *                percentages, latest and current values, flags and times
 *                of the last event (fields with "max", "perc", "ratio",
 *                "latest",
 *                "current_", "_last_", "in_progress", "enabled",
 *                "loading", "system"), for all of Persistence but its
 *                counters (rdb_changes_since_last_save, rdb_saves,
 *                aof_rewrites) and for the percentiles of Latencystats;
 *                composite values (cmdstat_*, errorstat_*) field by
 *                field the same way, usec_per_call recomputed; *_human
 *                sizes recomputed from the merged bytes, and so are
 *                used_memory_peak_perc and used_memory_dataset_perc (as
 *                Redis computes them); any other text is the first
 *                master's that has the field.
 * Sections and fields appear in the order of the first master, followed
 * by those only later masters have (commands only they ran).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "rd_cluster_int.h"
#include "rd_cycle.h"
#include "rd_resp.h"
#include "rd_session.h"
#include "rd_stats.h"

typedef struct {
    const char *k;
    size_t      kl;
    const char *v;
    size_t      vl;
} rd_cinfo_kv_t;

typedef struct {
    const char    *name;
    size_t         nl;
    rd_cinfo_kv_t *kv;
    size_t         n;
    size_t         cap;
} rd_cinfo_sec_t;

typedef struct {
    rd_cinfo_sec_t *sec;
    size_t          n;
    size_t          cap;
} rd_cinfo_doc_t;

static int
rd_cinfo_eq(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && strncasecmp(a, b, al) == 0;
}

static int
rd_cinfo_is(const rd_cinfo_sec_t *s, const char *name)
{
    return rd_cinfo_eq(s->name, s->nl, name, strlen(name));
}

static int
rd_cinfo_has(const char *k, size_t kl, const char *word)
{
    size_t wl = strlen(word);
    for (size_t i = 0; i + wl <= kl; i++) {
        if (memcmp(k + i, word, wl) == 0) {
            return 1;
        }
    }
    return 0;
}

static void
rd_cinfo_parse(const char *p, size_t len, rd_cinfo_doc_t *d)
{
    const char *end = p + len;
    rd_cinfo_sec_t *cur = NULL;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (n >= 2 && p[0] == '#' && p[1] == ' ') {
            if (d->n == d->cap) {
                d->cap = d->cap ? 2 * d->cap : 16;
                d->sec = rd_realloc(d->sec, d->cap * sizeof(*d->sec));
            }
            cur = &d->sec[d->n++];
            memset(cur, 0, sizeof(*cur));
            cur->name = p + 2;
            cur->nl = n - 2;
        } else if (n > 0 && cur) {
            const char *colon = memchr(p, ':', n);
            if (cur->n == cur->cap) {
                cur->cap = cur->cap ? 2 * cur->cap : 32;
                cur->kv = rd_realloc(cur->kv, cur->cap * sizeof(*cur->kv));
            }
            rd_cinfo_kv_t *kv = &cur->kv[cur->n++];
            kv->k = p;
            kv->kl = colon ? (size_t)(colon - p) : n;
            kv->v = colon ? colon + 1 : p + n;
            kv->vl = colon ? n - kv->kl - 1 : 0;
        }
        p = nl ? nl + 1 : end;
    }
}

static void
rd_cinfo_doc_free(rd_cinfo_doc_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->sec[i].kv);
    }
    free(d->sec);
}

static const rd_cinfo_kv_t *
rd_cinfo_find(const rd_cinfo_sec_t *s, const char *k, size_t kl)
{
    for (size_t i = 0; s && i < s->n; i++) {
        if (s->kv[i].kl == kl && memcmp(s->kv[i].k, k, kl) == 0) {
            return &s->kv[i];
        }
    }
    return NULL;
}

/* --- numbers ------------------------------------------------------------- */

static int
rd_cinfo_int(const char *v, size_t n, int64_t *out)
{
    return rd_resp_string2ll(v, n, out);
}

/* A decimal with a point: its value and its digits after the point. */
static int
rd_cinfo_dec(const char *v, size_t n, double *out, int *prec)
{
    char tmp[64], *end;
    if (n == 0 || n >= sizeof(tmp)) {
        return 0;
    }
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    const char *dot = strchr(tmp, '.');
    if (dot == NULL || strpbrk(tmp, "eEnNiIxX")) {
        return 0;
    }
    *out = strtod(tmp, &end);
    *prec = (int)(n - (size_t)(dot - tmp) - 1);
    return *end == '\0' && isfinite(*out);
}

/* Redis's bytesToHuman(). */
static void
rd_cinfo_human(char *s, size_t n, unsigned long long b)
{
    double d;
    if (b < 1024) {
        snprintf(s, n, "%lluB", b);
    } else if (b < 1024ULL * 1024) {
        d = (double)b / 1024;
        snprintf(s, n, "%.2fK", d);
    } else if (b < 1024ULL * 1024 * 1024) {
        d = (double)b / (1024 * 1024);
        snprintf(s, n, "%.2fM", d);
    } else if (b < 1024ULL * 1024 * 1024 * 1024) {
        d = (double)b / (1024.0 * 1024 * 1024);
        snprintf(s, n, "%.2fG", d);
    } else if (b < 1024ULL * 1024 * 1024 * 1024 * 1024) {
        d = (double)b / (1024.0 * 1024 * 1024 * 1024);
        snprintf(s, n, "%.2fT", d);
    } else if (b < 1024ULL * 1024 * 1024 * 1024 * 1024 * 1024) {
        d = (double)b / (1024.0 * 1024 * 1024 * 1024 * 1024);
        snprintf(s, n, "%.2fP", d);
    } else {
        snprintf(s, n, "%lluB", b);
    }
}

/* Is the largest value the merged one (the rule at the top)? */
static int
rd_cinfo_takes_max(const rd_cinfo_sec_t *sec, const char *k, size_t kl)
{
    static const char *const words[] = {
        "max", "perc", "ratio", "latest", "current_", "_last_",
        "in_progress", "enabled", "loading", "system", "number_of_functions",
        "number_of_libraries"
    };
    if (rd_cinfo_is(sec, "latencystats")) {
        return 1;
    }
    if (rd_cinfo_is(sec, "persistence")) {
        return !(rd_cinfo_eq(k, kl, "rdb_changes_since_last_save", 27)
                 || rd_cinfo_eq(k, kl, "rdb_saves", 9)
                 || rd_cinfo_eq(k, kl, "aof_rewrites", 12));
    }
    for (size_t i = 0; i < rd_countof(words); i++) {
        if (rd_cinfo_has(k, kl, words[i])) {
            return 1;
        }
    }
    return 0;
}

/*
 * Merge the values v[0 .. n) of one number (field name k of section sec)
 * into out: 1 when they were all integers or all decimals, 0 otherwise
 * (nothing written).
 */
static int
rd_cinfo_merge_num(const rd_cinfo_sec_t *sec, const char *k, size_t kl,
                   const char **v, const size_t *vl, size_t n, rd_buf_t *out,
                   int64_t *as_int)
{
    int mx = rd_cinfo_takes_max(sec, k, kl);
    int64_t isum = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        int64_t x;
        if (!rd_cinfo_int(v[i], vl[i], &x)) {
            break;
        }
        isum = i == 0 ? x : mx ? (x > isum ? x : isum) : isum + x;
    }
    if (i == n) {
        rd_buf_appendf(out, "%lld", (long long)isum);
        if (as_int) {
            *as_int = isum;
        }
        return 1;
    }
    double dsum = 0;
    int prec = 0, p0 = 0;
    for (i = 0; i < n; i++) {
        double x;
        if (!rd_cinfo_dec(v[i], vl[i], &x, &prec)) {
            return 0;
        }
        if (i == 0) {
            p0 = prec;
        }
        dsum = i == 0 ? x : mx ? (x > dsum ? x : dsum) : dsum + x;
    }
    rd_buf_appendf(out, "%.*f", p0, dsum);
    return 1;
}

/* A composite value's field f: its value in v, or 0. */
static int
rd_cinfo_field(const char *v, size_t vl, const char *f, size_t fl,
               const char **fv, size_t *fvl)
{
    const char *p = v, *end = v + vl;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq && (size_t)(eq - p) == fl && memcmp(p, f, fl) == 0) {
            *fv = eq + 1;
            *fvl = (size_t)(e - eq - 1);
            return 1;
        }
        p = comma ? comma + 1 : end;
    }
    return 0;
}

/* "a=1,b=2" with every field named: 1. */
static int
rd_cinfo_composite(const char *v, size_t vl)
{
    const char *p = v, *end = v + vl;
    if (vl == 0) {
        return 0;
    }
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq == NULL || eq == p) {
            return 0;
        }
        p = comma ? comma + 1 : end;
    }
    return 1;
}

static double
rd_cinfo_fnum(const char *v, size_t vl, const char *f)
{
    const char *fv;
    size_t fvl;
    char tmp[64];
    if (!rd_cinfo_field(v, vl, f, strlen(f), &fv, &fvl) || fvl == 0
        || fvl >= sizeof(tmp))
    {
        return 0;
    }
    memcpy(tmp, fv, fvl);
    tmp[fvl] = '\0';
    return strtod(tmp, NULL);
}

/* Composite values, field by field in the first value's order. 0 when
 * one of them is not composite or lacks a field (nothing written). */
static int
rd_cinfo_merge_composite(const rd_cinfo_sec_t *sec, const char **v,
                         const size_t *vl, size_t n, rd_buf_t *out)
{
    const char **fv = rd_alloc(n * sizeof(*fv));
    size_t *fvl = rd_alloc(n * sizeof(*fvl));
    rd_buf_t b = { 0 };
    int ok = 0;

    for (size_t i = 0; i < n; i++) {
        if (!rd_cinfo_composite(v[i], vl[i])) {
            goto done;
        }
    }
    const char *p = v[0], *end = v[0] + vl[0];
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *f = p;
        size_t fl = (size_t)(eq - p);
        for (size_t i = 0; i < n; i++) {
            if (!rd_cinfo_field(v[i], vl[i], f, fl, &fv[i], &fvl[i])) {
                goto done;
            }
        }
        rd_buf_appendf(&b, "%s%.*s=", p == v[0] ? "" : ",", (int)fl, f);
        if (rd_cinfo_eq(f, fl, "usec_per_call", 13)) {
            double calls = 0, usec = 0;
            for (size_t i = 0; i < n; i++) {
                calls += rd_cinfo_fnum(v[i], vl[i], "calls");
                usec += rd_cinfo_fnum(v[i], vl[i], "usec");
            }
            rd_buf_appendf(&b, "%.2f", calls > 0 ? usec / calls : 0);
        } else if (rd_cinfo_eq(f, fl, "avg_ttl", 7)) {
            /* Keyspace: weighted by the keys with a TTL. */
            double w = 0, t = 0;
            for (size_t i = 0; i < n; i++) {
                double x = rd_cinfo_fnum(v[i], vl[i], "expires");
                w += x;
                t += x * rd_cinfo_fnum(v[i], vl[i], "avg_ttl");
            }
            rd_buf_appendf(&b, "%lld", (long long)(w > 0 ? t / w : 0));
        } else if (!rd_cinfo_merge_num(sec, f, fl, fv, fvl, n, &b, NULL)) {
            rd_buf_append(&b, fv[0], fvl[0]);
        }
        p = comma ? comma + 1 : end;
    }
    rd_buf_append(out, rd_buf_rpos(&b), rd_buf_used(&b));
    ok = 1;
done:
    rd_buf_free(&b);
    free(fv);
    free(fvl);
    return ok;
}

/* --- sections ------------------------------------------------------------ */

/* The integer field k summed over the sections. */
static double
rd_cinfo_sum(rd_cinfo_sec_t **s, size_t n, const char *k)
{
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        const rd_cinfo_kv_t *kv = rd_cinfo_find(s[i], k, strlen(k));
        int64_t x;
        if (kv && rd_cinfo_int(kv->v, kv->vl, &x)) {
            v += (double)x;
        }
    }
    return v;
}

/* Field k of sections s[0 .. n) (NULL where a master lacks the section),
 * merged by the rule, as "k:value\r\n". */
static void
rd_cinfo_merge_field(rd_cinfo_sec_t **s, size_t n, const char *k, size_t kl,
                     rd_buf_t *out)
{
    const char **v = rd_alloc(n * sizeof(*v));
    size_t *vl = rd_alloc(n * sizeof(*vl));
    size_t m = 0;
    rd_cinfo_sec_t *sec = NULL;

    for (size_t i = 0; i < n; i++) {
        const rd_cinfo_kv_t *kv = rd_cinfo_find(s[i], k, kl);
        if (kv) {
            sec = sec ? sec : s[i];
            v[m] = kv->v;
            vl[m++] = kv->vl;
        }
    }
    rd_buf_append(out, k, kl);
    rd_buf_append_str(out, ":");
    if (kl > 6 && memcmp(k + kl - 6, "_human", 6) == 0) {
        /* The size the field next to it says, merged. */
        rd_buf_t num = { 0 };
        const char **bv = rd_alloc(n * sizeof(*bv));
        size_t *bvl = rd_alloc(n * sizeof(*bvl));
        size_t bm = 0;
        int64_t bytes;
        for (size_t i = 0; i < n; i++) {
            const rd_cinfo_kv_t *kv = rd_cinfo_find(s[i], k, kl - 6);
            if (kv) {
                bv[bm] = kv->v;
                bvl[bm++] = kv->vl;
            }
        }
        if (bm == m && bm > 0
            && rd_cinfo_merge_num(sec, k, kl - 6, bv, bvl, bm, &num, &bytes)
            && bytes >= 0)
        {
            char h[64];
            rd_cinfo_human(h, sizeof(h), (unsigned long long)bytes);
            rd_buf_append_str(out, h);
        } else {
            rd_buf_append(out, v[0], vl[0]);
        }
        rd_buf_free(&num);
        free(bv);
        free(bvl);
    } else if (rd_cinfo_eq(k, kl, "used_memory_peak_perc", 21)
               || rd_cinfo_eq(k, kl, "used_memory_dataset_perc", 24))
    {
        /* Redis: used_memory * 100 / peak; dataset * 100 / (used -
         * startup). */
        int peak = kl == 21;
        double num = rd_cinfo_sum(s, n, peak ? "used_memory"
                                             : "used_memory_dataset");
        double den = peak ? rd_cinfo_sum(s, n, "used_memory_peak")
                          : rd_cinfo_sum(s, n, "used_memory")
                            - rd_cinfo_sum(s, n, "used_memory_startup");
        rd_buf_appendf(out, "%.2f%%", den > 0 ? num * 100 / den : 0);
    } else if (rd_cinfo_is(sec, "modules")
               || (!rd_cinfo_merge_num(sec, k, kl, v, vl, m, out, NULL)
                   && !rd_cinfo_merge_composite(sec, v, vl, m, out)))
    {
        rd_buf_append(out, v[0], vl[0]);
    }
    rd_buf_append_str(out, "\r\n");
    free(v);
    free(vl);
}

/* The gateway's open sessions of db, over every worker. */
static int64_t
rd_cinfo_sessions(const rd_database_t *db)
{
    rd_stats_region_t *rg = rd_stats_region();
    unsigned d = rd_stats_db(db);
    int64_t n = 0;

    if (rg == NULL) {
        return atomic_load_explicit(&rd_stats_me->db[d].sessions_open,
                                    memory_order_relaxed);
    }
    for (size_t i = 0; i < RD_STATS_SLOTS; i++) {
        rd_stats_slot_t *sl = &rg->slots[i];
        if (atomic_load_explicit(&sl->used, memory_order_relaxed)) {
            n += atomic_load_explicit(&sl->db[d].sessions_open,
                                      memory_order_relaxed);
        }
    }
    return n;
}

static void
rd_cinfo_server(rd_creq_t *cr, rd_cinfo_sec_t *sec, rd_buf_t *out)
{
    rd_session_t *s = cr->cs->session;
    rd_stats_region_t *rg = rd_stats_region();
    int64_t started = rg ? atomic_load_explicit(&rg->master.start_time,
                                                memory_order_relaxed) : 0;
    int64_t up = started > 0 ? (int64_t)time(NULL) - started : -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int port = -1;

    if (getsockname(s->conn->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    for (size_t i = 0; i < sec->n; i++) {
        rd_cinfo_kv_t *kv = &sec->kv[i];
#define IS(name) rd_cinfo_eq(kv->k, kv->kl, name, sizeof(name) - 1)
        rd_buf_append(out, kv->k, kv->kl);
        rd_buf_append_str(out, ":");
        if (IS("redis_mode")) {
            rd_buf_append_str(out, "standalone");
        } else if (IS("process_id")) {
            rd_buf_appendf(out, "%ld", (long)getpid());
        } else if (IS("tcp_port") && port >= 0) {
            rd_buf_appendf(out, "%d", port);
        } else if (IS("uptime_in_seconds") && up >= 0) {
            rd_buf_appendf(out, "%lld", (long long)up);
        } else if (IS("executable") || IS("config_file")) {
            /* redoubt's, not the node's. */
            char exe[4096];
            ssize_t el = IS("executable")
                         ? readlink("/proc/self/exe", exe, sizeof(exe) - 1)
                         : -1;
            if (el > 0) {
                rd_buf_append(out, exe, (size_t)el);
            } else if (IS("config_file") && s->cycle->conf_file) {
                rd_buf_append_str(out, s->cycle->conf_file);
            }
        } else if (IS("uptime_in_days") && up >= 0) {
            rd_buf_appendf(out, "%lld", (long long)(up / 86400));
        } else {
            rd_buf_append(out, kv->v, kv->vl);
        }
        rd_buf_append_str(out, "\r\n");
        if (IS("redis_version")) {
            rd_buf_append_str(out, "redoubt_version:" PACKAGE_VERSION "\r\n");
        }
#undef IS
    }
}

/* One section (its instances s[0 .. n) over the masters) into out. */
static void
rd_cinfo_section(rd_creq_t *cr, rd_cinfo_sec_t **s, size_t n, rd_buf_t *out)
{
    rd_cinfo_sec_t *first = NULL;
    for (size_t i = 0; i < n && first == NULL; i++) {
        first = s[i];
    }
    rd_buf_append_str(out, "# ");
    rd_buf_append(out, first->name, first->nl);
    rd_buf_append_str(out, "\r\n");
    if (rd_cinfo_is(first, "server")) {
        rd_cinfo_server(cr, first, out);
        return;
    }
    if (rd_cinfo_is(first, "replication")) {
        rd_buf_append_str(out, "role:master\r\nconnected_slaves:0\r\n"
                          "master_failover_state:no-failover\r\n");
        return;
    }
    if (rd_cinfo_is(first, "cluster")) {
        rd_buf_append_str(out, "cluster_enabled:0\r\n");
        return;
    }
    int clients = rd_cinfo_is(first, "clients");
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; s[i] && j < s[i]->n; j++) {
            rd_cinfo_kv_t *kv = &s[i]->kv[j];
            /* Once, where it first appears. */
            int seen = 0;
            for (size_t e = 0; e < i && !seen; e++) {
                seen = rd_cinfo_find(s[e], kv->k, kv->kl) != NULL;
            }
            if (seen) {
                continue;
            }
            if (clients && rd_cinfo_eq(kv->k, kv->kl, "connected_clients",
                                       17))
            {
                rd_buf_appendf(out, "connected_clients:%lld\r\n",
                               (long long)rd_cinfo_sessions(
                                   cr->cs->topo->db));
                continue;
            }
            if (clients && rd_cinfo_eq(kv->k, kv->kl, "cluster_connections",
                                       19))
            {
                continue;
            }
            rd_cinfo_merge_field(s, n, kv->k, kv->kl, out);
        }
    }
}

int
rd_cinfo_merge(rd_creq_t *cr, rd_buf_t *out)
{
    size_t n = cr->nparts;
    rd_cinfo_doc_t *docs = rd_calloc(n, sizeof(*docs));
    rd_cinfo_sec_t **s = rd_alloc(n * sizeof(*s));
    rd_buf_t text = { 0 };
    int rc = -1;
    size_t nsec = 0;

    for (size_t i = 0; i < n; i++) {
        rd_resp_reader_t rd;
        rd_resp_value_t v;
        const rd_buf_t *rep = &cr->parts[i].reply;
        rd_resp_reader_init(&rd, rd_buf_rpos(rep), rd_buf_used(rep));
        if (rd_resp_read(&rd, &v) != 0 || v.type != '$' || v.str == NULL) {
            goto done;
        }
        rd_cinfo_parse(v.str, v.len, &docs[i]);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < docs[i].n; j++) {
            rd_cinfo_sec_t *sec = &docs[i].sec[j];
            int seen = 0;
            for (size_t e = 0; e < i && !seen; e++) {
                for (size_t f = 0; f < docs[e].n && !seen; f++) {
                    seen = rd_cinfo_eq(docs[e].sec[f].name,
                                       docs[e].sec[f].nl, sec->name,
                                       sec->nl);
                }
            }
            if (seen) {
                continue;
            }
            for (size_t e = 0; e < n; e++) {
                s[e] = NULL;
                for (size_t f = 0; f < docs[e].n; f++) {
                    if (rd_cinfo_eq(docs[e].sec[f].name, docs[e].sec[f].nl,
                                    sec->name, sec->nl))
                    {
                        s[e] = &docs[e].sec[f];
                        break;
                    }
                }
            }
            if (nsec++ > 0) {
                rd_buf_append_str(&text, "\r\n");
            }
            rd_cinfo_section(cr, s, n, &text);
        }
    }
    rd_resp_encode_bulk(out, text.data ? rd_buf_rpos(&text) : "",
                        rd_buf_used(&text));
    rc = 0;
done:
    for (size_t i = 0; i < n; i++) {
        rd_cinfo_doc_free(&docs[i]);
    }
    free(docs);
    free(s);
    rd_buf_free(&text);
    return rc;
}

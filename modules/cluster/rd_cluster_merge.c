/*
 * rd_cluster_merge.c - merging the replies of a fan-out request (DBSIZE, KEYS,
 * FLUSHDB/FLUSHALL/SCRIPT/FUNCTION, a split MGET, DEL, MSET, ..., RANDOMKEY,
 * PUBSUB CHANNELS/NUMSUB/SHARDCHANNELS/SHARDNUMSUB, AUTH on every
 * connection) and finishing a request once its parts have their final
 * replies.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "rd_cluster_int.h"
#include "rd_resp.h"
#include "rd_session.h"
#include "rd_stats.h"

/* --- merging fan-out replies ----------------------------------------------- */

static rd_cpart_t *
rd_creq_first_error(rd_creq_t *cr)
{
    for (size_t i = 0; i < cr->nparts; i++) {
        if (cr->parts[i].type == '-') {
            return &cr->parts[i];
        }
    }
    return NULL;
}

/* The elements of an array reply, as byte spans. -1 if it is not one. */
static int
rd_cluster_elements(const rd_cpart_t *p, const char ***start, size_t **len,
                    int64_t *count)
{
    rd_resp_reader_t rd;
    rd_resp_value_t v;

    rd_resp_reader_init(&rd, rd_buf_rpos(&p->reply), rd_buf_used(&p->reply));
    if (rd_resp_read(&rd, &v) != 0 || v.type != '*' || v.n < 0) {
        return -1;
    }
    *count = v.n;
    *start = rd_alloc(((size_t)v.n + 1) * sizeof(char *));
    *len = rd_alloc(((size_t)v.n + 1) * sizeof(size_t));
    for (int64_t i = 0; i < v.n; i++) {
        (*start)[i] = rd.p;
        if (rd_resp_skip(&rd) != 0) {
            free(*start);
            free(*len);
            return -1;
        }
        (*len)[i] = (size_t)(rd.p - (*start)[i]);
    }
    return 0;
}

static int
rd_creq_merge_integers(rd_creq_t *cr, rd_buf_t *out)
{
    int64_t sum = 0;
    for (size_t i = 0; i < cr->nparts; i++) {
        rd_resp_reader_t rd;
        rd_resp_value_t v;
        rd_cpart_t *p = &cr->parts[i];
        rd_resp_reader_init(&rd, rd_buf_rpos(&p->reply),
                            rd_buf_used(&p->reply));
        if (rd_resp_read(&rd, &v) != 0 || v.type != ':') {
            return -1;
        }
        sum += v.n;
    }
    rd_resp_encode_integer(out, sum);
    return 0;
}

static int
rd_creq_merge_arrays(rd_creq_t *cr, rd_buf_t *out)
{
    int64_t total = 0;
    rd_buf_t body = { 0 };

    for (size_t i = 0; i < cr->nparts; i++) {
        const char **st;
        size_t *ln;
        int64_t n;
        if (rd_cluster_elements(&cr->parts[i], &st, &ln, &n) != 0) {
            rd_buf_free(&body);
            return -1;
        }
        if (n > 0) {
            rd_buf_append(&body, st[0], (size_t)(st[n - 1] + ln[n - 1]
                                                 - st[0]));
        }
        total += n;
        free(st);
        free(ln);
    }
    rd_resp_encode_array(out, total);
    rd_buf_append(out, rd_buf_rpos(&body), rd_buf_used(&body));
    rd_buf_free(&body);
    return 0;
}

static int
rd_creq_merge_and(rd_creq_t *cr, rd_buf_t *out)
{
    int64_t n = -1;
    unsigned char *all = NULL;
    int rc = -1;

    for (size_t i = 0; i < cr->nparts; i++) {
        rd_resp_reader_t rd;
        rd_resp_value_t v;
        rd_cpart_t *p = &cr->parts[i];
        rd_resp_reader_init(&rd, rd_buf_rpos(&p->reply),
                            rd_buf_used(&p->reply));
        if (rd_resp_read(&rd, &v) != 0 || v.type != '*' || v.n < 0
            || (n >= 0 && v.n != n))
        {
            goto done;
        }
        if (all == NULL) {
            n = v.n;
            all = rd_alloc((size_t)n + 1);
            memset(all, 1, (size_t)n + 1);
        }
        for (int64_t k = 0; k < n; k++) {
            if (rd_resp_read(&rd, &v) != 0 || v.type != ':') {
                goto done;
            }
            all[k] &= v.n == 1;
        }
    }
    rd_resp_encode_array(out, n < 0 ? 0 : n);
    for (int64_t k = 0; k < n; k++) {
        rd_resp_encode_integer(out, all[k]);
    }
    rc = 0;
done:
    free(all);
    return rc;
}

static int
rd_creq_merge_mget(rd_creq_t *cr, rd_buf_t *out)
{
    rd_request_t *r = cr->r;
    size_t nkeys = r->argc - 1;
    const char **st = rd_calloc(nkeys, sizeof(char *));
    size_t *ln = rd_calloc(nkeys, sizeof(size_t));
    int rc = -1;

    for (size_t i = 0; i < cr->nparts; i++) {
        rd_cpart_t *p = &cr->parts[i];
        const char **ps;
        size_t *pl;
        int64_t n;
        if (rd_cluster_elements(p, &ps, &pl, &n) != 0) {
            goto done;
        }
        if ((size_t)n != p->npos) {
            free(ps);
            free(pl);
            goto done;
        }
        for (size_t k = 0; k < p->npos; k++) {
            st[p->pos[k] - 1] = ps[k];
            ln[p->pos[k] - 1] = pl[k];
        }
        free(ps);
        free(pl);
    }
    rd_resp_encode_array(out, (int64_t)nkeys);
    for (size_t j = 0; j < nkeys; j++) {
        rd_buf_append(out, st[j], ln[j]);
    }
    rc = 0;
done:
    free(st);
    free(ln);
    return rc;
}

/* --- RANDOMKEY ----------------------------------------------------------- */

/* A small generator for picking among the masters: xorshift64*, seeded
 * from the kernel at first use (in each worker: after the fork). */
static uint64_t
rd_cluster_random(void)
{
    static uint64_t x;

    if (x == 0) {
        if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x) || x == 0) {
            x = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull | 1;
        }
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545f4914f6cdd1dull;
}

/* The setup of the custom kinds that ask every master. */
static int
rd_cmasters_setup(rd_creq_t *cr)
{
    rd_creq_all_masters(cr);
    return cr->nparts > 0 ? 0 : -1;
}

/* Every master answers with one of its keys or nil; the reply is one of
 * the keys, each master that has one as likely as another; nil only
 * when every master is empty. */
static int
rd_crandom_merge(rd_creq_t *cr, rd_buf_t *out)
{
    size_t nkeys = 0;

    for (size_t i = 0; i < cr->nparts; i++) {
        rd_resp_reader_t rd;
        rd_resp_value_t v;
        rd_cpart_t *p = &cr->parts[i];
        rd_resp_reader_init(&rd, rd_buf_rpos(&p->reply),
                            rd_buf_used(&p->reply));
        if (rd_resp_read(&rd, &v) != 0 || v.type != '$') {
            return -1;
        }
        nkeys += v.n >= 0;
    }
    if (nkeys == 0) {
        rd_resp_encode_null(out);
        return 0;
    }
    size_t pick = (size_t)(rd_cluster_random() % nkeys);
    for (size_t i = 0; i < cr->nparts; i++) {
        rd_cpart_t *p = &cr->parts[i];
        if (rd_buf_rpos(&p->reply)[1] != '-' && pick-- == 0) {
            rd_buf_append(out, rd_buf_rpos(&p->reply),
                          rd_buf_used(&p->reply));
            break;
        }
    }
    return 0;
}

int
rd_crandom_prepare(rd_creq_t *cr)
{
    cr->setup = rd_cmasters_setup;
    cr->merge = rd_crandom_merge;
    return 0;
}

/* --- PUBSUB CHANNELS, SHARDCHANNELS, NUMSUB, SHARDNUMSUB ------------------ */

/*
 * Each master knows the subscribers connected to it only (channels and
 * patterns are per node in Redis Cluster; a shard channel's subscribers
 * are on the node serving its slot, the others answer 0 for it), so
 * every master is asked. NUMPAT is a plain sum (RD_CK_SUM). The answer
 * is what one Redis with all those subscribers would give: CHANNELS
 * names each channel once (in the order first seen, master by master),
 * NUMSUB gives each channel asked, in order and repeated as asked, with
 * the sum of the masters' counts.
 */

/* FNV-1a over an element's bytes (a bulk string, as RESP). */
static uint64_t
rd_cpsinfo_hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    }
    return h;
}

static int
rd_cpsinfo_channels_merge(rd_creq_t *cr, rd_buf_t *out)
{
    const char ***st = rd_calloc(cr->nparts, sizeof(*st));
    size_t **ln = rd_calloc(cr->nparts, sizeof(*ln));
    int64_t *cnt = rd_calloc(cr->nparts, sizeof(*cnt));
    size_t total = 0, cap, nout = 0, i;
    uint64_t *set = NULL;
    rd_buf_t body = { 0 };
    int rc = -1;

    for (i = 0; i < cr->nparts; i++) {
        if (rd_cluster_elements(&cr->parts[i], &st[i], &ln[i], &cnt[i])
            != 0)
        {
            goto done;
        }
        total += (size_t)cnt[i];
    }

    /* A set of the elements given so far: open addressing, at most half
     * full; each entry is part << 32 | element + 1, 0 free. */
    cap = 16;
    while (cap < 2 * total) {
        cap <<= 1;
    }
    set = rd_calloc(cap, sizeof(*set));

    for (i = 0; i < cr->nparts; i++) {
        for (int64_t k = 0; k < cnt[i]; k++) {
            const char *e = st[i][k];
            size_t n = ln[i][k];
            size_t h = (size_t)rd_cpsinfo_hash(e, n) & (cap - 1);
            for (;; h = (h + 1) & (cap - 1)) {
                if (set[h] == 0) {
                    set[h] = ((uint64_t)i << 32 | (uint64_t)k) + 1;
                    rd_buf_append(&body, e, n);
                    nout++;
                    break;
                }
                size_t si = (size_t)((set[h] - 1) >> 32);
                size_t sk = (size_t)((set[h] - 1) & 0xffffffffu);
                if (ln[si][sk] == n && memcmp(st[si][sk], e, n) == 0) {
                    break;              /* seen on an earlier master */
                }
            }
        }
    }
    rd_resp_encode_array(out, (int64_t)nout);
    rd_buf_append(out, rd_buf_rpos(&body), rd_buf_used(&body));
    rc = 0;
done:
    rd_buf_free(&body);
    free(set);
    for (size_t j = 0; j < i && j < cr->nparts; j++) {
        free(st[j]);
        free(ln[j]);
    }
    free(st);
    free(ln);
    free(cnt);
    return rc;
}

/* Every master answers channel, count, ... for the channels asked, in
 * the order asked: the same channels, the counts added up. */
static int
rd_cpsinfo_numsub_merge(rd_creq_t *cr, rd_buf_t *out)
{
    rd_resp_reader_t *rd = rd_calloc(cr->nparts, sizeof(*rd));
    int64_t n = -1;
    int rc = -1;

    for (size_t i = 0; i < cr->nparts; i++) {
        rd_resp_value_t v;
        rd_cpart_t *p = &cr->parts[i];
        rd_resp_reader_init(&rd[i], rd_buf_rpos(&p->reply),
                            rd_buf_used(&p->reply));
        if (rd_resp_read(&rd[i], &v) != 0 || v.type != '*' || v.n < 0
            || v.n % 2 != 0 || (n >= 0 && v.n != n))
        {
            goto done;
        }
        n = v.n;
    }
    rd_resp_encode_array(out, n);
    for (int64_t k = 0; k < n / 2; k++) {
        const char *name = NULL;
        size_t name_len = 0;
        int64_t sum = 0;
        for (size_t i = 0; i < cr->nparts; i++) {
            rd_resp_value_t v;
            const char *e = rd[i].p;
            if (rd_resp_read(&rd[i], &v) != 0 || v.type != '$' || v.n < 0) {
                goto done;
            }
            size_t len = (size_t)(rd[i].p - e);
            if (name == NULL) {
                name = e;
                name_len = len;
            } else if (len != name_len || memcmp(e, name, len) != 0) {
                goto done;              /* not the same channel */
            }
            if (rd_resp_read(&rd[i], &v) != 0 || v.type != ':') {
                goto done;
            }
            sum += v.n;
        }
        rd_buf_append(out, name, name_len);
        rd_resp_encode_integer(out, sum);
    }
    rc = 0;
done:
    free(rd);
    return rc;
}

int
rd_cpsinfo_channels_prepare(rd_creq_t *cr)
{
    cr->setup = rd_cmasters_setup;
    cr->merge = rd_cpsinfo_channels_merge;
    return 0;
}

int
rd_cpsinfo_numsub_prepare(rd_creq_t *cr)
{
    cr->setup = rd_cmasters_setup;
    cr->merge = rd_cpsinfo_numsub_merge;
    return 0;
}

/* AUTH went to every connection: remember it if all accepted it, forget
 * it if all refused it (each connection keeps its former user then). */
static void
rd_creq_auth_result(rd_creq_t *cr, int ok)
{
    rd_csess_t *cs = cr->cs;
    size_t nok = 0;
    for (size_t i = 0; i < cr->nparts; i++) {
        /* (+OK for AUTH, the map for HELLO ... AUTH.) */
        nok += cr->parts[i].type != '-';
    }
    if (ok) {
        rd_buf_wipe(&cs->prev_auth);
        return;
    }
    rd_buf_wipe(&cs->auth);
    rd_buf_swap(&cs->auth, &cs->prev_auth);
    if (nok > 0) {
        rd_session_close(cs->session, "AUTH was accepted by some cluster "
                         "nodes only");
    }
}

static void
rd_creq_finish(rd_creq_t *cr)
{
    rd_request_t *r = cr->r;
    rd_session_t *s = r->session;
    rd_cpart_t *err = rd_creq_first_error(cr);
    rd_buf_t out = { 0 };
    int rc = 0;

    if (cr->kind == RD_CK_DIRECT) {
        rd_cpart_t *p = &cr->parts[0];
        rd_request_reply_append(r, rd_buf_rpos(&p->reply),
                                rd_buf_used(&p->reply));
        rd_request_done(r);
        return;
    }
    if (cr->kind == RD_CK_AUTH) {
        rd_creq_auth_result(cr, err == NULL);
        if (s->conn->closed) {
            return;
        }
    }
    if (err && cr->kind == RD_CK_ONEOK) {
        /* One master that did it is enough (SCRIPT KILL: the one running
         * a script); the others' errors say they had nothing to do. */
        for (size_t i = 0; i < cr->nparts; i++) {
            if (cr->parts[i].type == '+') {
                err = NULL;
                break;
            }
        }
    }
    if (err) {
        rd_request_reply_append(r, rd_buf_rpos(&err->reply),
                                rd_buf_used(&err->reply));
        rd_request_done(r);
        return;
    }
    if (cr->merge) {
        rc = cr->merge(cr, &out);
    } else switch (cr->kind) {
    case RD_CK_SUM:
    case RD_CK_SPLIT_SUM:
        rc = rd_creq_merge_integers(cr, &out);
        break;
    case RD_CK_KEYS:
        rc = rd_creq_merge_arrays(cr, &out);
        break;
    case RD_CK_AND:
        rc = rd_creq_merge_and(cr, &out);
        break;
    case RD_CK_MGET:
        rc = rd_creq_merge_mget(cr, &out);
        break;
    case RD_CK_ONEOK:
        for (size_t i = 0; i < cr->nparts; i++) {
            if (cr->parts[i].type == '+') {
                rd_buf_append(&out, rd_buf_rpos(&cr->parts[i].reply),
                              rd_buf_used(&cr->parts[i].reply));
                break;
            }
        }
        break;
    case RD_CK_ALLOK:
    case RD_CK_SPLIT_OK:
    case RD_CK_AUTH:
    case RD_CK_SAME:
        /* Every node gave the same answer (+OK for ALLOK and AUTH). */
        for (size_t i = 0; i < cr->nparts; i++) {
            rd_buf_t *a = &cr->parts[i].reply, *b = &cr->parts[0].reply;
            if ((cr->kind != RD_CK_SAME && cr->parts[i].type != '+')
                || rd_buf_used(a) != rd_buf_used(b)
                || memcmp(rd_buf_rpos(a), rd_buf_rpos(b), rd_buf_used(b)))
            {
                rc = -1;
            }
        }
        if (rc == 0) {
            rd_buf_append(&out, rd_buf_rpos(&cr->parts[0].reply),
                          rd_buf_used(&cr->parts[0].reply));
        }
        break;
    case RD_CK_DIRECT:
    case RD_CK_CUSTOM:
        break;
    }
    if (rc != 0) {
        rd_buf_reset(&out);
        rd_resp_encode_error(&out, "ERR redoubt: the cluster nodes answered "
                             "differently");
    }
    rd_stats_latency(cr->cs->topo->db, s->worker->loop.now_usec
                                       - r->start_usec);
    rd_request_reply_append(r, rd_buf_rpos(&out), rd_buf_used(&out));
    rd_buf_free(&out);
    rd_request_done(r);
}

/* A part has its final reply (possibly after redirections). */
void
rd_cpart_final(rd_cpart_t *p)
{
    rd_creq_t *cr = p->cr;

    if (p->type == '-' && rd_cpart_redirect(p)) {
        return;
    }
    p->done = 1;
    if (--cr->left == 0) {
        rd_creq_finish(cr);
    }
}

/*
 * rd_cluster_pubsub.c - Pub/Sub through a cluster database.
 *
 * A session's subscriptions are redoubt's to keep: the channels, patterns
 * and shard channels the client was told it is subscribed to (visible),
 * and those of the subscribe it is being answered now. Redis's side is
 * the session's subscriber connections, one per node at most, apart from
 * the session's data connections (rd_cconn_t): nothing but SUBSCRIBE and
 * UNSUBSCRIBE of one channel each goes out on them (one frame back for
 * each), so every frame that comes back is a message or answers the
 * oldest command sent.
 *
 * Where each subscription lives:
 *   channels and patterns      on one master, the session's home (PUBLISH
 *                              reaches every node over the cluster bus)
 *   keyspace and keyevent      ("__keyspace@...", "__keyevent@...": Redis
 *     notifications            Cluster publishes them on the key's node
 *                              only) on every master
 *   shard channels             on the master of the channel's slot
 * The subscribe-family commands of a session run one at a time, in their
 * order; each is answered by redoubt once every node it needed confirmed
 * (the confirmations are Redis's own, one per channel, with the counts of
 * the session's subscriptions: channels and patterns together, shard
 * channels apart), so a message never precedes its subscription's
 * confirmation (the core places a push after every reply complete, even
 * one that waits behind an earlier request). An unsubscribe is answered
 * at once: from then on messages of what it removed are dropped, the
 * nodes are told too. Messages are passed on only for visible
 * subscriptions. An error from a node (Redis's ACL: NOPERM) answers the
 * command instead, and none of its channels is added.
 *
 * Subscribed mode (RESP2): while the session has a subscription, or a
 * subscribe is on its way, the other commands wait their turn behind the
 * subscribe-family commands and then get Redis's own error, except PING
 * (answered as Redis answers it there) and unknown commands or wrong
 * arities (a node answers them as it would). Once nothing is subscribed
 * they are routed as usual. The subscriber connections stay open while
 * nothing is subscribed for RD_CPS_IDLE_MS (a client that subscribes and
 * unsubscribes in a loop does not pay TLS handshakes each time), but not
 * past a new AUTH: a subscription made after one connects anew, as the
 * session's database user of that time.
 *
 * Failures: when a subscriber connection fails, or a node answers a
 * subscription with an error, or Redis ends a shard channel's
 * subscription itself (it sends "sunsubscribe" when the channel's slot
 * moved away), a refresh of the slot map starts and, after a short delay
 * growing up to 5 s, redoubt subscribes again where the map now says (the
 * home moves to another master if its node failed). The client's list of
 * subscriptions does not change; messages published meanwhile are lost,
 * as with any Redis reconnect. A keyspace pattern on every master also
 * gets a client's PUBLISH to a matching channel once from each master.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_cluster_int.h"
#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_pubsub.h"
#include "rd_resp.h"

/* Subscriber connections with nothing subscribed close after this. */
#define RD_CPS_IDLE_MS  5000

/* A subscription's state on one node. */
enum {
    RD_CSUB_NONE = 0,
    RD_CSUB_SENT,                   /* its SUBSCRIBE is on its way */
    RD_CSUB_OK,                     /* confirmed */
    RD_CSUB_UNSENT                  /* its UNSUBSCRIBE is on its way */
};

typedef struct rd_csub_s {
    int             kind;           /* RD_SUB_* */
    unsigned        notif:1;        /* on every master */
    unsigned        visible:1;      /* the client was told */
    unsigned        failed:1;       /* a node refused it (the subscribe
                                       being answered) */
    int             slot;           /* a shard channel's */
    size_t          len;
    char           *data;
    uint8_t        *st;             /* RD_CSUB_* by node index */
    size_t          nst;
    struct rd_csub_s *hnext;        /* its bucket's chain */
    size_t          idx;            /* in ps->subs */
} rd_csub_t;

/* One command sent on a subscriber connection: one frame answers it. */
typedef struct {
    int             kind;
    int             add;
    size_t          len;
    char            data[];
} rd_csubop_t;

typedef struct rd_cpubsub_s rd_cpubsub_t;

typedef struct {
    rd_upconn_t     uc;
    rd_cpubsub_t   *ps;
    size_t          node;
} rd_csubconn_t;

typedef struct rd_cpq_s {
    rd_request_t   *r;
    struct rd_cpq_s *next;
    unsigned        started:1;
} rd_cpq_t;

struct rd_cpubsub_s {
    rd_csess_t     *cs;
    rd_csub_t     **subs;
    size_t          nsubs;
    size_t          cap;
    rd_csub_t     **buckets;        /* by rd_cps_hash: each message is
                                       looked up */
    size_t          nbuckets;       /* 0 or a power of two */
    size_t          nvisible[2];    /* channels and patterns; shard */
    rd_csubconn_t **conns;          /* by node index */
    size_t          nconns;
    int             home;           /* node of channels and patterns */
    rd_cpq_t       *qhead;          /* requests in their turn */
    rd_cpq_t       *qtail;
    rd_buf_t        err;            /* the head subscribe's node error */
    rd_timer_t      retry;
    rd_msec_t       retry_ms;
    rd_timer_t      idle;           /* closes the subscriber connections
                                       once nothing was subscribed for
                                       RD_CPS_IDLE_MS (from the loop:
                                       never inside their own callbacks) */
    rd_buf_t        conn_auth;      /* the AUTH and the database user */
    char           *conn_user;      /* the connections were made with */
    rd_csubconn_t **dead;           /* closed, freed from the loop */
    size_t          ndead;
    rd_timer_t      reap;
    unsigned        running:1;
};

static void rd_cps_run(rd_cpubsub_t *ps);
static void rd_cps_retire(rd_cpubsub_t *ps);
static int rd_cps_conns_current(const rd_cpubsub_t *ps);
static void rd_cps_reconcile(rd_cpubsub_t *ps);

static const char *const rd_cps_verb[] = {
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
    "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"
};

/* --- subscriptions ----------------------------------------------------- */

/* FNV-1a over the kind and the name. */
static size_t
rd_cps_hash(int kind, const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL ^ (uint64_t)kind;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    }
    return (size_t)h;
}

static rd_csub_t *
rd_cps_find(rd_cpubsub_t *ps, int kind, const char *p, size_t n)
{
    if (ps->nbuckets == 0) {
        return NULL;
    }
    rd_csub_t *e = ps->buckets[rd_cps_hash(kind, p, n) & (ps->nbuckets - 1)];
    for (; e; e = e->hnext) {
        if (e->kind == kind && e->len == n && memcmp(e->data, p, n) == 0) {
            return e;
        }
    }
    return NULL;
}

static void
rd_cps_link(rd_cpubsub_t *ps, rd_csub_t *e)
{
    size_t b = rd_cps_hash(e->kind, e->data, e->len) & (ps->nbuckets - 1);
    e->hnext = ps->buckets[b];
    ps->buckets[b] = e;
}

/* Add e to the list and the table (grown to at least one bucket a
 * subscription). */
static void
rd_cps_add(rd_cpubsub_t *ps, rd_csub_t *e)
{
    if (ps->nsubs == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 8;
        ps->subs = rd_realloc(ps->subs, ps->cap * sizeof(*ps->subs));
    }
    e->idx = ps->nsubs;
    ps->subs[ps->nsubs++] = e;
    if (ps->nsubs > ps->nbuckets) {
        free(ps->buckets);
        ps->nbuckets = ps->nbuckets ? ps->nbuckets * 2 : 16;
        ps->buckets = rd_calloc(ps->nbuckets, sizeof(*ps->buckets));
        for (size_t i = 0; i < ps->nsubs; i++) {
            rd_cps_link(ps, ps->subs[i]);
        }
    } else {
        rd_cps_link(ps, e);
    }
}

static void
rd_cps_unlink(rd_cpubsub_t *ps, rd_csub_t *e)
{
    rd_csub_t **pp = &ps->buckets[rd_cps_hash(e->kind, e->data, e->len)
                                  & (ps->nbuckets - 1)];
    while (*pp != e) {
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
}

static uint8_t
rd_cps_st(const rd_csub_t *e, size_t node)
{
    return node < e->nst ? e->st[node] : RD_CSUB_NONE;
}

static void
rd_cps_set_st(rd_csub_t *e, size_t node, uint8_t st)
{
    if (node >= e->nst) {
        size_t n = node + 8;
        e->st = rd_realloc(e->st, n);
        memset(e->st + e->nst, 0, n - e->nst);
        e->nst = n;
    }
    e->st[node] = st;
}

static size_t
rd_cps_count(const rd_cpubsub_t *ps, int kind)
{
    return ps->nvisible[kind == RD_SUB_SHARD];
}

static void
rd_cps_subscribed_mode(rd_cpubsub_t *ps)
{
    rd_session_set_subscribed(ps->cs->session,
                              ps->nvisible[0] + ps->nvisible[1] > 0);
}

/* --- subscriber connections -------------------------------------------- */

static int rd_csubconn_frame(rd_upconn_t *uc, const char *p, size_t n);
static int rd_csubconn_reply(rd_upconn_t *uc, void *data, const char *p,
                             size_t n, int last);
static void rd_csubconn_fail(rd_upconn_t *uc, const char *why);

static const rd_upconn_handler_t rd_csubconn_handler = {
    rd_csubconn_reply, rd_csubconn_fail
};

static void
rd_csubconn_drop_ops(rd_csubconn_t *sc)
{
    while (sc->uc.count > 0) {
        void *op = rd_upconn_pop(&sc->uc);
        if (op != &rd_cluster_discard) {
            free(op);
        }
    }
}

static void
rd_csubconn_free(rd_csubconn_t *sc)
{
    rd_csubconn_drop_ops(sc);
    rd_upconn_free(&sc->uc);
    free(sc);
}

/* The subscriber connection to node i, connected (with the session's
 * AUTH first), or NULL. */
static rd_csubconn_t *
rd_csubconn_get(rd_cpubsub_t *ps, size_t i)
{
    rd_csess_t *cs = ps->cs;
    rd_session_t *s = cs->session;
    rd_ctopo_t *t = cs->topo;

    if (i >= ps->nconns) {
        size_t n = t->nnodes > i + 1 ? t->nnodes : i + 1;
        ps->conns = rd_realloc(ps->conns, n * sizeof(*ps->conns));
        memset(ps->conns + ps->nconns, 0,
               (n - ps->nconns) * sizeof(*ps->conns));
        ps->nconns = n;
    }
    rd_csubconn_t *sc = ps->conns[i];
    if (sc == NULL) {
        sc = rd_calloc(1, sizeof(*sc));
        sc->ps = ps;
        sc->node = i;
        rd_upconn_init(&sc->uc, s->worker, t->db, &t->nodes[i]->addr,
                       t->nodes[i]->host, s->db_user, &rd_csubconn_handler,
                       sc);
        sc->uc.frame = rd_csubconn_frame;
        sc->uc.whole_frames = 1;
        ps->conns[i] = sc;
    }
    if (sc->uc.conn == NULL) {
        sc->uc.user = s->db_user;
        if (rd_upconn_connect(&sc->uc) != 0) {
            rd_session_log(s, RD_LOG_WARN, "upstream unavailable: %s, "
                           "upstream: %s", strerror(errno),
                           sc->uc.addr->text);
            t->nodes[i]->down_until = s->worker->loop.now + 1000;
            return NULL;
        }
        if (rd_buf_used(&cs->auth) > 0) {
            rd_upconn_send(&sc->uc, rd_buf_rpos(&cs->auth),
                           rd_buf_used(&cs->auth), &rd_cluster_discard);
        }
        rd_buf_reset(&ps->conn_auth);
        rd_buf_append(&ps->conn_auth, rd_buf_rpos(&cs->auth),
                      rd_buf_used(&cs->auth));
        free(ps->conn_user);
        ps->conn_user = rd_strndup(s->db_user, strlen(s->db_user));
    }
    return sc;
}

/* Send kind's (un)subscribe of one channel to node i: 0, or -1 when the
 * node cannot be reached. */
static int
rd_cps_send(rd_cpubsub_t *ps, size_t i, int kind, int add, const rd_csub_t *e)
{
    rd_csubconn_t *sc = rd_csubconn_get(ps, i);
    if (sc == NULL) {
        return -1;
    }
    const char *verb = rd_cps_verb[kind + (add ? 0 : 3)];
    rd_str_t argv[2] = { { verb, strlen(verb) }, { e->data, e->len } };
    rd_buf_t b = { 0 };
    rd_resp_encode_command(&b, 2, argv);
    rd_csubop_t *op = rd_alloc(sizeof(*op) + e->len);
    op->kind = kind;
    op->add = add;
    op->len = e->len;
    memcpy(op->data, e->data, e->len);
    rd_upconn_send(&sc->uc, rd_buf_rpos(&b), rd_buf_used(&b), op);
    rd_buf_free(&b);
    return 0;
}

static void
rd_cps_retry_later(rd_cpubsub_t *ps)
{
    rd_worker_t *w = ps->cs->session->worker;

    if (ps->retry.index != 0) {
        return;
    }
    ps->retry_ms = ps->retry_ms == 0 ? 100
                   : ps->retry_ms < 5000 ? ps->retry_ms * 2 : 5000;
    rd_timer_add(&w->loop.timers, &ps->retry, w->loop.now, ps->retry_ms);
}

static void
rd_cps_retry(rd_timer_t *tm)
{
    rd_cpubsub_t *ps = tm->data;

    if (ps->cs->session->conn->closed) {
        return;
    }
    rd_cps_reconcile(ps);
    rd_cps_run(ps);
}

/* Redis no longer has the subscriptions of node i (a failure, a slot
 * that moved): they go where the map says after a refresh. */
static void
rd_cps_lost(rd_cpubsub_t *ps, size_t node)
{
    if (ps->home == (int)node) {
        ps->home = -1;
    }
    rd_ctopo_refresh(ps->cs->topo, ps->cs);
    rd_cps_retry_later(ps);
}

static void
rd_csubconn_fail(rd_upconn_t *uc, const char *why)
{
    rd_csubconn_t *sc = uc->owner;
    rd_cpubsub_t *ps = sc->ps;
    rd_session_t *s = ps->cs->session;

    rd_session_log(s, RD_LOG_WARN, "%s, subscriber upstream: %s", why,
                   uc->addr->text);
    rd_csubconn_drop_ops(sc);
    ps->cs->topo->nodes[sc->node]->down_until = s->worker->loop.now + 1000;
    for (size_t k = 0; k < ps->nsubs; k++) {
        rd_cps_set_st(ps->subs[k], sc->node, RD_CSUB_NONE);
    }
    rd_cps_lost(ps, sc->node);
    rd_cps_run(ps);
}

static int
rd_csubconn_frame(rd_upconn_t *uc, const char *p, size_t n)
{
    rd_csubconn_t *sc = uc->owner;
    rd_cpubsub_t *ps = sc->ps;
    rd_session_t *s = ps->cs->session;
    rd_pubsub_frame_t f;

    rd_pubsub_frame(p, n, &f);
    if (f.what == RD_PSF_MESSAGE) {
        rd_csub_t *e = rd_cps_find(ps, f.kind, f.sub.data, f.sub.len);
        if (e && e->visible) {
            rd_session_message(s, p, n);
        }
        return s->conn->closed ? -1 : 0;
    }
    void *head = uc->count > 0 ? uc->pending[uc->head] : NULL;
    if (f.what == RD_PSF_CONFIRM) {
        rd_csubop_t *op = head == &rd_cluster_discard ? NULL : head;
        if (op && op->kind == f.kind && op->add == rd_pubsub_cmds[f.cmd].add
            && f.sub.data && op->len == f.sub.len
            && memcmp(op->data, f.sub.data, op->len) == 0)
        {
            return 1;               /* the answer to it */
        }
        if (f.kind == RD_SUB_SHARD && !rd_pubsub_cmds[f.cmd].add && f.sub.data) {
            /* Redis's own: the channel's slot left this node. */
            rd_csub_t *e = rd_cps_find(ps, RD_SUB_SHARD, f.sub.data,
                                       f.sub.len);
            if (e && rd_cps_st(e, sc->node) == RD_CSUB_OK) {
                rd_cps_set_st(e, sc->node, RD_CSUB_NONE);
                rd_session_log(s, RD_LOG_NOTICE, "shard channel \"%.*s\" "
                               "left its node: subscribing where the slot "
                               "went, upstream: %s", (int)e->len, e->data,
                               uc->addr->text);
                rd_cps_lost(ps, sc->node);
            }
        }
        return 0;
    }
    return head ? 1 : 0;            /* an error (or the AUTH's +OK) */
}

static int
rd_csubconn_reply(rd_upconn_t *uc, void *data, const char *p, size_t n,
                  int last)
{
    rd_csubconn_t *sc = uc->owner;
    rd_cpubsub_t *ps = sc->ps;
    rd_session_t *s = ps->cs->session;
    rd_csubop_t *op = data;

    (void)last;
    if (data == &rd_cluster_discard) {
        if (n > 0 && p[0] == '-') {
            rd_session_log(s, RD_LOG_WARN, "subscriber upstream refused the "
                           "session's AUTH: %.*s, upstream: %s",
                           (int)(n > 2 ? n - 2 : n), p, uc->addr->text);
        }
        return 0;
    }
    rd_csub_t *e = rd_cps_find(ps, op->kind, op->data, op->len);
    if (n > 0 && p[0] == '-') {
        if (op->add && e && rd_cps_st(e, sc->node) == RD_CSUB_SENT) {
            rd_cps_set_st(e, sc->node, RD_CSUB_NONE);
            if (!e->visible) {
                e->failed = 1;
                if (rd_buf_used(&ps->err) == 0) {
                    rd_buf_append(&ps->err, p, n);
                }
            } else {
                rd_session_log(s, RD_LOG_WARN, "subscribing again to "
                               "\"%.*s\" failed: %.*s, upstream: %s",
                               (int)e->len, e->data,
                               (int)(n > 2 ? n - 2 : n), p, uc->addr->text);
                rd_cps_lost(ps, sc->node);
            }
        }
    } else if (e) {
        uint8_t st = rd_cps_st(e, sc->node);
        if (op->add && st == RD_CSUB_SENT) {
            rd_cps_set_st(e, sc->node, RD_CSUB_OK);
            ps->retry_ms = 0;
        } else if (!op->add && st == RD_CSUB_UNSENT) {
            rd_cps_set_st(e, sc->node, RD_CSUB_NONE);
        }
    }
    free(op);
    rd_cps_run(ps);
    /* (uc may have been retired meanwhile: rd_cps_retire.) */
    return s->conn->closed || uc->conn == NULL ? -1 : 0;
}

/* --- placement --------------------------------------------------------- */

static int
rd_cps_down(const rd_cpubsub_t *ps, size_t i)
{
    const rd_ctopo_t *t = ps->cs->topo;
    return t->nodes[i]->down_until > t->worker->loop.now;
}

/* The home: a master that is up, kept while it is one. */
static int
rd_cps_home(rd_cpubsub_t *ps)
{
    rd_ctopo_t *t = ps->cs->topo;

    if (ps->home >= 0 && t->nodes[ps->home]->master) {
        return ps->home;
    }
    ps->home = -1;
    for (size_t k = 0; k < t->nnodes; k++) {
        size_t i = (t->next_master + k) % t->nnodes;
        if (t->nodes[i]->master && !rd_cps_down(ps, i)) {
            t->next_master = (unsigned)(i + 1);
            ps->home = (int)i;
            break;
        }
    }
    return ps->home;
}

/* Whether e belongs on node i. */
static int
rd_cps_wants(rd_cpubsub_t *ps, const rd_csub_t *e, size_t i)
{
    rd_ctopo_t *t = ps->cs->topo;

    if (e->kind == RD_SUB_SHARD) {
        return t->slot[e->slot] == (int32_t)i;
    }
    if (e->notif) {
        return t->nodes[i]->master;
    }
    return (int)i == ps->home;
}

/* Subscribe where the map wants each subscription and is not yet, and
 * unsubscribe where it no longer wants one. */
static void
rd_cps_reconcile(rd_cpubsub_t *ps)
{
    rd_ctopo_t *t = ps->cs->topo;
    int missing = 0;

    if (!t->ready) {
        return;
    }
    rd_cps_home(ps);
    for (size_t k = 0; k < ps->nsubs; k++) {
        rd_csub_t *e = ps->subs[k];
        if (e->failed) {
            continue;
        }
        for (size_t i = 0; i < t->nnodes; i++) {
            int want = rd_cps_wants(ps, e, i);
            uint8_t st = rd_cps_st(e, i);
            if (want && st == RD_CSUB_NONE) {
                if (rd_cps_down(ps, i)
                    || rd_cps_send(ps, i, e->kind, 1, e) != 0)
                {
                    missing = 1;
                    continue;
                }
                rd_cps_set_st(e, i, RD_CSUB_SENT);
            } else if (!want && (st == RD_CSUB_SENT || st == RD_CSUB_OK)) {
                if (rd_cps_send(ps, i, e->kind, 0, e) == 0) {
                    rd_cps_set_st(e, i, RD_CSUB_UNSENT);
                }
            }
        }
        if (e->kind != RD_SUB_SHARD && !e->notif && ps->home < 0) {
            missing = 1;
        }
        if (e->kind == RD_SUB_SHARD && t->slot[e->slot] < 0) {
            missing = 1;
        }
    }
    if (missing) {
        rd_ctopo_refresh(t, ps->cs);
        rd_cps_retry_later(ps);
    }
}

/* A subscription of the subscribe being answered: 1 confirmed where it
 * belongs, 0 not yet, -1 it cannot be (refused, or no node for it). */
static int
rd_cps_ready(rd_cpubsub_t *ps, const rd_csub_t *e)
{
    rd_ctopo_t *t = ps->cs->topo;
    size_t ok = 0, wanted = 0;

    if (e->failed) {
        return -1;
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        if (!rd_cps_wants(ps, e, i)) {
            continue;
        }
        uint8_t st = rd_cps_st(e, i);
        if (st == RD_CSUB_OK) {
            ok++;
        } else if (st == RD_CSUB_SENT) {
            return 0;
        } else if (!rd_cps_down(ps, i)) {
            wanted++;
        }
    }
    /* A keyspace subscription is answered once every master that is up
     * has it (a master that is down gets it when it is back). */
    return ok > 0 ? 1 : wanted > 0 ? 0 : -1;
}

static void
rd_cps_remove(rd_cpubsub_t *ps, size_t k)
{
    rd_csub_t *e = ps->subs[k];
    for (size_t i = 0; i < e->nst; i++) {
        if (e->st[i] == RD_CSUB_SENT || e->st[i] == RD_CSUB_OK) {
            rd_cps_send(ps, i, e->kind, 0, e);
        }
    }
    if (e->visible) {
        ps->nvisible[e->kind == RD_SUB_SHARD]--;
    }
    rd_cps_unlink(ps, e);
    free(e->st);
    free(e->data);
    free(e);
    if (k < --ps->nsubs) {
        ps->subs[k] = ps->subs[ps->nsubs];
        ps->subs[k]->idx = k;
    }
}

/* --- the commands ------------------------------------------------------ */

static void
rd_cps_confirm(rd_buf_t *b, int ci, const char *p, size_t n, int nil,
               size_t count)
{
    const char *name = rd_pubsub_cmds[ci].name;
    rd_resp_encode_array(b, 3);
    rd_resp_encode_bulk(b, name, strlen(name));
    if (nil) {
        rd_resp_encode_null(b);
    } else {
        rd_resp_encode_bulk(b, p, n);
    }
    rd_resp_encode_integer(b, (int64_t)count);
}

static void
rd_cps_answer(rd_request_t *r, rd_buf_t *b)
{
    rd_request_reply_append(r, rd_buf_rpos(b), rd_buf_used(b));
    rd_buf_free(b);
    rd_request_done(r);
}

/* Start a subscribe: its new channels join the list (not visible yet)
 * and go to their nodes. 0, or -1 when r was answered. */
static int
rd_cps_subscribe_start(rd_cpubsub_t *ps, rd_request_t *r, int ci)
{
    int kind = rd_pubsub_cmds[ci].kind;
    size_t add = 0;

    for (size_t i = 1; i < r->argc; i++) {
        add += rd_cps_find(ps, kind, r->argv[i].data, r->argv[i].len) == NULL;
    }
    if (!rd_request_admit_subscriptions(r, ps->nsubs, add)) {
        return -1;
    }
    if (ps->nsubs == 0 && ps->nconns > 0 && !rd_cps_conns_current(ps)) {
        rd_cps_retire(ps);
    }
    for (size_t i = 1; i < r->argc; i++) {
        rd_str_t *a = &r->argv[i];
        if (rd_cps_find(ps, kind, a->data, a->len)) {
            continue;
        }
        rd_csub_t *e = rd_calloc(1, sizeof(*e));
        e->kind = kind;
        e->notif = kind != RD_SUB_SHARD
                   && rd_pubsub_is_notification(a->data, a->len);
        e->slot = (int)rd_cluster_key_slot(a->data, a->len);
        e->len = a->len;
        e->data = rd_strndup(a->data, a->len);
        rd_cps_add(ps, e);
    }
    rd_buf_reset(&ps->err);
    rd_session_set_subscribed(ps->cs->session, 1);
    rd_cps_reconcile(ps);
    return 0;
}

/* The started subscribe r: answered when each of its channels is
 * confirmed (1), or still waiting (0). */
static int
rd_cps_subscribe_done(rd_cpubsub_t *ps, rd_request_t *r, int ci)
{
    int kind = rd_pubsub_cmds[ci].kind;
    int failed = 0;

    if (!ps->cs->topo->ready) {
        if (ps->cs->topo->gen > 0 && !ps->cs->topo->wake_ok
            && !ps->cs->topo->refreshing)
        {
            failed = 1;
        } else {
            rd_csess_wait(ps->cs);
            return 0;
        }
    }
    for (size_t i = 1; i < r->argc && !failed; i++) {
        rd_csub_t *e = rd_cps_find(ps, kind, r->argv[i].data, r->argv[i].len);
        if (e == NULL || e->visible) {
            continue;
        }
        int rc = rd_cps_ready(ps, e);
        if (rc == 0) {
            return 0;
        }
        failed |= rc < 0;
    }
    if (failed) {
        /* None of its channels is added: the node's error, or ours. */
        for (size_t k = ps->nsubs; k-- > 0;) {
            if (!ps->subs[k]->visible) {
                rd_cps_remove(ps, k);
            }
        }
        rd_cps_subscribed_mode(ps);
        if (rd_buf_used(&ps->err) > 0) {
            rd_buf_t b = { 0 };
            rd_buf_swap(&b, &ps->err);
            rd_cps_answer(r, &b);
        } else {
            rd_request_error(r, "ERR redoubt: upstream unavailable: no "
                             "master of the cluster can be reached");
        }
        return 1;
    }
    rd_buf_t b = { 0 };
    for (size_t i = 1; i < r->argc; i++) {
        rd_csub_t *e = rd_cps_find(ps, kind, r->argv[i].data, r->argv[i].len);
        if (e && !e->visible) {
            e->visible = 1;
            ps->nvisible[kind == RD_SUB_SHARD]++;
        }
        rd_cps_confirm(&b, ci, r->argv[i].data, r->argv[i].len, 0,
                       rd_cps_count(ps, kind));
    }
    rd_cps_subscribed_mode(ps);
    rd_cps_answer(r, &b);
    return 1;
}

static void
rd_cps_unsubscribe(rd_cpubsub_t *ps, rd_request_t *r, int ci)
{
    int kind = rd_pubsub_cmds[ci].kind;
    rd_buf_t b = { 0 };

    if (r->argc == 1) {
        size_t done = 0;
        for (size_t k = 0; k < ps->nsubs;) {
            rd_csub_t *e = ps->subs[k];
            if (e->kind != kind || !e->visible) {
                k++;
                continue;
            }
            char *data = rd_strndup(e->data, e->len);
            size_t len = e->len;
            rd_cps_remove(ps, k);
            rd_cps_confirm(&b, ci, data, len, 0, rd_cps_count(ps, kind));
            free(data);
            done++;
        }
        if (done == 0) {
            rd_cps_confirm(&b, ci, NULL, 0, 1, rd_cps_count(ps, kind));
        }
    } else {
        for (size_t i = 1; i < r->argc; i++) {
            rd_str_t *a = &r->argv[i];
            rd_csub_t *e = rd_cps_find(ps, kind, a->data, a->len);
            if (e && e->visible) {
                rd_cps_remove(ps, e->idx);
            }
            rd_cps_confirm(&b, ci, a->data, a->len, 0, rd_cps_count(ps, kind));
        }
    }
    rd_cps_subscribed_mode(ps);
    rd_cps_answer(r, &b);
}

/* A command other than the subscribe family, in its turn: Redis's answer
 * in subscribed mode, or routed as usual. */
static void
rd_cps_other(rd_cpubsub_t *ps, rd_request_t *r, int deferred)
{
    const rd_command_t *c = r->cmd;

    if (ps->nvisible[0] + ps->nvisible[1] > 0 && c
        && rd_command_arity_ok(c, r->argc)
        && r->conncmd.kind != RD_CONN_RESET)
    {
        if (strcmp(c->name, "ping") == 0) {
            if (r->argc > 2) {
                /* (arity -1, but PING itself takes one argument) */
                rd_request_error(r, "ERR wrong number of arguments for "
                                 "'ping' command");
                return;
            }
            rd_buf_t b = { 0 };
            rd_resp_encode_array(&b, 2);
            rd_resp_encode_bulk(&b, "pong", 4);
            if (r->argc == 2) {
                rd_resp_encode_bulk(&b, r->argv[1].data, r->argv[1].len);
            } else {
                rd_resp_encode_bulk(&b, "", 0);
            }
            rd_cps_answer(r, &b);
            return;
        }
        rd_request_error(r, "ERR Can't execute '%s': only (P|S)SUBSCRIBE / "
                         "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed "
                         "in this context", c->name);
        return;
    }
    if (!deferred) {
        return;                     /* the caller routes it */
    }
    int rc = rd_cluster_route_rest(ps->cs, r);
    if (rc == RD_DONE && !r->done) {
        rd_request_done(r);
    }
}

/* Answer the requests in their turn, from the head, as far as they go. */
static void
rd_cps_run(rd_cpubsub_t *ps)
{
    rd_session_t *s = ps->cs->session;

    if (ps->running) {
        return;
    }
    ps->running = 1;
    while (ps->qhead && !s->conn->closed) {
        rd_cpq_t *q = ps->qhead;
        rd_request_t *r = q->r;
        int ci = rd_pubsub_cmd(r->argv[0]);

        if (ci >= 0 && !q->started && rd_cmulti_open(ps->cs)) {
            /* Inside MULTI: the transaction's rules refuse it. */
            rd_cps_other(ps, r, 1);
        } else if (ci >= 0 && rd_pubsub_cmds[ci].add) {
            if (!q->started) {
                q->started = 1;
                if (rd_cps_subscribe_start(ps, r, ci) != 0) {
                    goto next;
                }
            }
            if (!rd_cps_subscribe_done(ps, r, ci)) {
                break;
            }
        } else if (ci >= 0) {
            rd_cps_unsubscribe(ps, r, ci);
        } else {
            rd_cps_other(ps, r, 1);
        }
    next:
        ps->qhead = q->next;
        if (ps->qhead == NULL) {
            ps->qtail = NULL;
        }
        free(q);
    }
    ps->running = 0;
    if (!s->conn->closed && ps->qhead == NULL && ps->nsubs == 0
        && ps->nconns > 0)
    {
        rd_timer_del(&s->worker->loop.timers, &ps->idle);
        rd_timer_add(&s->worker->loop.timers, &ps->idle, s->worker->loop.now,
                     RD_CPS_IDLE_MS);
    }
}

static void
rd_cps_reap(rd_timer_t *tm)
{
    rd_cpubsub_t *ps = tm->data;
    for (size_t i = 0; i < ps->ndead; i++) {
        rd_csubconn_free(ps->dead[i]);
    }
    free(ps->dead);
    ps->dead = NULL;
    ps->ndead = 0;
}

/* Nothing is subscribed and the session authenticated anew (AUTH, HELLO
 * AUTH, RESET) since its subscriber connections were made: they close,
 * and the next subscription connects as the session's user of now. Safe
 * inside their own callbacks: they are freed from the loop. */
static void
rd_cps_retire(rd_cpubsub_t *ps)
{
    rd_worker_t *w = ps->cs->session->worker;

    for (size_t i = 0; i < ps->nconns; i++) {
        rd_csubconn_t *sc = ps->conns[i];
        if (sc == NULL) {
            continue;
        }
        rd_upconn_close(&sc->uc);
        rd_csubconn_drop_ops(sc);
        ps->dead = rd_realloc(ps->dead, (ps->ndead + 1) * sizeof(*ps->dead));
        ps->dead[ps->ndead++] = sc;
        ps->conns[i] = NULL;
    }
    ps->home = -1;
    if (ps->reap.index == 0) {
        rd_timer_add(&w->loop.timers, &ps->reap, w->loop.now, 0);
    }
}

/* Whether the connections were made as the session is now. */
static int
rd_cps_conns_current(const rd_cpubsub_t *ps)
{
    const rd_csess_t *cs = ps->cs;
    return rd_buf_used(&ps->conn_auth) == rd_buf_used(&cs->auth)
           && memcmp(rd_buf_rpos(&ps->conn_auth), rd_buf_rpos(&cs->auth),
                     rd_buf_used(&cs->auth)) == 0
           && ps->conn_user && strcmp(ps->conn_user, cs->session->db_user) == 0;
}

/* Nothing subscribed for RD_CPS_IDLE_MS: the connections close (a
 * subscriber that comes and goes keeps them meanwhile). */
static void
rd_cps_idle(rd_timer_t *tm)
{
    rd_cpubsub_t *ps = tm->data;

    if (ps->qhead != NULL || ps->nsubs > 0) {
        return;
    }
    for (size_t i = 0; i < ps->nconns; i++) {
        if (ps->conns[i]) {
            rd_csubconn_free(ps->conns[i]);
        }
    }
    free(ps->conns);
    ps->conns = NULL;
    ps->nconns = 0;
    ps->home = -1;
}

static void
rd_cps_free(rd_cpubsub_t *ps)
{
    rd_worker_t *w = ps->cs->session->worker;

    rd_timer_del(&w->loop.timers, &ps->retry);
    rd_timer_del(&w->loop.timers, &ps->idle);
    rd_timer_del(&w->loop.timers, &ps->reap);
    rd_cps_reap(&ps->reap);
    rd_buf_free(&ps->conn_auth);
    free(ps->conn_user);
    while (ps->qhead) {
        rd_cpq_t *q = ps->qhead;
        ps->qhead = q->next;
        free(q);
    }
    for (size_t i = 0; i < ps->nconns; i++) {
        if (ps->conns[i]) {
            rd_csubconn_free(ps->conns[i]);
        }
    }
    free(ps->conns);
    for (size_t k = 0; k < ps->nsubs; k++) {
        free(ps->subs[k]->st);
        free(ps->subs[k]->data);
        free(ps->subs[k]);
    }
    free(ps->subs);
    free(ps->buckets);
    rd_buf_free(&ps->err);
    free(ps);
}

void
rd_cpubsub_free(rd_csess_t *cs)
{
    if (cs->pubsub) {
        rd_cps_free(cs->pubsub);
        cs->pubsub = NULL;
    }
}

void
rd_cpubsub_reset(rd_csess_t *cs)
{
    rd_cpubsub_t *ps = cs->pubsub;
    if (ps == NULL) {
        return;
    }
    while (ps->nsubs > 0) {
        rd_cps_remove(ps, ps->nsubs - 1);
    }
    rd_cps_subscribed_mode(ps);
    /* The RESET is the session's AUTH now: the next subscription
     * connects anew (rd_cps_conns_current). */
}

void
rd_cpubsub_resume(rd_csess_t *cs)
{
    if (cs->pubsub && !cs->session->conn->closed) {
        rd_cps_reconcile(cs->pubsub);
        rd_cps_run(cs->pubsub);
    }
}

int
rd_cpubsub_route(rd_csess_t *cs, rd_request_t *r)
{
    rd_cpubsub_t *ps = cs->pubsub;
    int ci = rd_pubsub_cmd(r->argv[0]);

    if (ci < 0) {
        if (ps == NULL || (ps->qhead == NULL
                           && ps->nvisible[0] + ps->nvisible[1] == 0))
        {
            return RD_DECLINED;
        }
        if (ps->qhead == NULL) {
            rd_cps_other(ps, r, 0);
            return r->done ? RD_DONE : RD_DECLINED;
        }
    } else {
        if (r->cmd && !rd_command_arity_ok(r->cmd, r->argc)) {
            rd_request_error(r, "ERR wrong number of arguments for '%s' "
                             "command", r->cmd->name);
            return RD_DONE;
        }
        if (rd_cmulti_open(cs) && (ps == NULL || ps->qhead == NULL)) {
            return RD_DECLINED;     /* refused by the transaction's rules */
        }
        if (rd_pubsub_cmds[ci].kind == RD_SUB_SHARD && r->argc > 2) {
            unsigned slot = rd_cluster_key_slot(r->argv[1].data,
                                                r->argv[1].len);
            for (size_t i = 2; i < r->argc; i++) {
                if (rd_cluster_key_slot(r->argv[i].data, r->argv[i].len)
                    != slot)
                {
                    rd_request_error(r, "CROSSSLOT Keys in request don't "
                                     "hash to the same slot");
                    return RD_DONE;
                }
            }
        }
        if (ps == NULL) {
            ps = rd_calloc(1, sizeof(*ps));
            ps->cs = cs;
            ps->home = -1;
            ps->retry.handler = rd_cps_retry;
            ps->retry.data = ps;
            ps->idle.handler = rd_cps_idle;
            ps->idle.data = ps;
            ps->reap.handler = rd_cps_reap;
            ps->reap.data = ps;
            cs->pubsub = ps;
        }
    }
    r->upstream = "(subscriber connections)";
    rd_cpq_t *q = rd_calloc(1, sizeof(*q));
    q->r = r;
    if (ps->qtail) {
        ps->qtail->next = q;
    } else {
        ps->qhead = q;
    }
    ps->qtail = q;
    rd_cps_run(ps);
    return r->done ? RD_DONE : RD_AGAIN;
}

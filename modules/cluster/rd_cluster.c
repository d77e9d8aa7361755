/*
 * rd_cluster.c - the cluster module: a whole Redis Cluster behind one
 * address ("rediss://host:port?mode=cluster").
 *
 * Topology. Each worker keeps, per cluster database, a map from the 16384
 * hash slots to the master serving each (rd_ctopo_t), learned with
 * CLUSTER SLOTS from any reachable node: the known masters first, then the
 * seeds (the uri's address and cluster.seeds). The query authenticates as
 * cluster.discovery_user when one is configured, otherwise with the
 * credentials of the session that needed the map (its AUTH, replayed on a
 * short-lived connection of the worker's own; the copy is wiped when the
 * refresh ends). A refresh runs when a session first needs the map, after
 * a MOVED, after a node connection failed, and at the first command once
 * cluster.refresh_interval has passed; never more than one at a time per
 * database in a worker. Requests that need a map before the first one is
 * known wait for it; the others are routed with the map at hand while a
 * refresh runs.
 *
 * Routing. The keys of a request come from the command table (key specs,
 * numkeys commands, keyless commands); their CRC16 slot, {hash tags}
 * included, picks the master. Keys in different slots get Redis's own
 * -CROSSSLOT error. Keyless commands go to the node the session used last,
 * or one it has a connection to, or a master. Each session opens its own
 * connections to the nodes it needs, lazily, and replays its AUTH on each
 * (the session's database user also names the minted client certificate).
 *
 * Pipelines. A request is written to its node as soon as it is decoded;
 * later requests do not wait for earlier ones on other nodes. The core
 * returns replies in request order and bounds the requests in flight per
 * session (limits.max_pipeline): past it, the client is not read.
 *
 * Ordering invariant. Commands of one session that touch one slot reach
 * Redis in the order the client sent them, whatever happens in between
 * (a wait for a slot map, MOVED, ASK, TRYAGAIN, a reconnect, a failover);
 * replies return in request order (the core). Commands that are not
 * confined to one slot - AUTH, keyless commands, those sent to every
 * master, an MGET split over several slots - are barriers: nothing of the
 * session crosses them, whatever the slot. One rule keeps both:
 *
 *   a part (a command, or one slot's share of a split MGET) for slot S is
 *   sent to node N only when no earlier part of the session for S is
 *   parked, and every earlier part of the session for S still in flight
 *   went on the session's connection to N, which Redis answers in order;
 *   a barrier is sent only when no earlier part of the session is parked
 *   (in any lane) or on a connection not up yet, nothing is sent while a
 *   barrier or one of its parts waits, and no part is sent again once a
 *   later barrier was sent.
 *
 * Per session and slot, a lane (rd_clane_t) counts the parts in flight,
 * remembers their node and the latest of them, and keeps the parked parts
 * in request order; it sends from its head only. A part is parked when the
 * rule holds it back (a command routed with a new map behind one still on
 * its way to the old node), when its node could not be reached (until a
 * newer map), after MOVED or ASK (until the later parts already in flight
 * on the old node are back) and for cluster.tryagain_delay after TRYAGAIN.
 * Parking never reorders: a later command for the slot queues behind. A
 * TRYAGAIN that comes back while later parts for its slot are already in
 * flight behind it goes to the client (the command did not run; run later,
 * it would run after them). Commands sent before a redirection came back
 * may run on the old node before the redirected one runs on the new one;
 * Redis redirects those too when they touch the same key (MOVED for the
 * whole slot, ASK for keys that left).
 *
 * Barriers. Requests that the rule holds back wait, in request order, in
 * the session's held queue (wait_head, with those that need the first
 * map): a barrier while any part is parked (nparked) or was sent on a
 * connection still being made and has no reply yet (nearly: if the
 * connection is never made it parks for a map), any request behind a
 * held one or while a barrier's part is parked (nbparked). The queue is
 * drained from its head whenever a lane lets a part go, a reply begins, a
 * connection fails or a refresh ends; AUTH takes its nodes and becomes
 * the AUTH that new connections replay only when it is sent. With nothing
 * parked nothing waits: a barrier goes out as it is decoded, and parts
 * already in flight on connections that are up are not waited for (each
 * connection answers in order). One of those that comes back with MOVED,
 * ASK or TRYAGAIN after a later barrier was sent (barrier_seq) is not
 * sent again: its error goes to the client (it did not run; run now, it
 * would run after the barrier, e.g. as the user of a later AUTH).
 *
 * Redirections. An error reply is held back until it is whole: MOVED
 * updates the slot's entry, starts a refresh and sends the command again,
 * to the named node; ASK sends ASKING and the command to the named node
 * and leaves the map alone; TRYAGAIN sends it again after
 * cluster.tryagain_delay (each through its lane, as above). After
 * cluster.max_redirects of them the last error goes to the client.
 *
 * Node failure. When a node connection fails, each command pending on it
 * gets "-ERR redoubt: upstream ..." (a reply already partly sent to the
 * client cannot be repaired: the session is closed then), a refresh
 * starts, and the next command for that node connects again, possibly to
 * the replica promoted in its place. Commands that never reached the node
 * (its connection could not be made) wait, parked, for a map learned after
 * the failure: they are sent again, in their order, when it names another
 * node for their slot; otherwise their error stands. A refresh that ends
 * wakes the waiting sessions from the event loop (a zero timer), never
 * inside the call that started it.
 *
 * Special commands (as in Teleport's Redis Cluster support): DBSIZE sums,
 * KEYS merges, FLUSHDB/FLUSHALL/SCRIPT FLUSH/SCRIPT LOAD run on every
 * master, SCRIPT EXISTS answers 1 only where every master has the script,
 * MGET is split by slot and merged back in order. Fan-out requests go to
 * all nodes at once; one failed part fails the whole command. AUTH is sent
 * to every node the session is connected to. Commands that cannot be done
 * correctly through a gateway to a cluster are refused (one table,
 * rd_cluster_unsupported).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_cluster_slots.h"
#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_resp.h"
#include "rd_session.h"
#include "rd_stats.h"
#include "rd_upconn.h"
#include "rd_worker.h"

rd_module_t rd_cluster_module;

/* --- configuration -------------------------------------------------------- */

typedef struct {
    char    **seeds;                /* "host:port", extra seeds */
    size_t    nseeds;
    char     *discovery_user;
    char     *discovery_password;
    int64_t   refresh_interval;     /* ms */
    int64_t   max_redirects;
    int64_t   tryagain_delay;       /* ms */
} rd_cluster_db_conf_t;

#define D(field) offsetof(rd_cluster_db_conf_t, field)

static const rd_conf_range_t rd_cluster_redirects_range = { 0, 100 };

static const char *
rd_cluster_set_seeds(rd_conf_t *cf, const config_setting_t *s,
                     const rd_directive_t *d, void *conf)
{
    rd_cluster_db_conf_t *c = conf;

    if (config_setting_type(s) != CONFIG_TYPE_ARRAY
        && config_setting_type(s) != CONFIG_TYPE_LIST)
    {
        return "must be a list of \"host:port\" strings";
    }
    int n = config_setting_length(s);
    c->seeds = rd_palloc(cf->pool, (size_t)(n + 1) * sizeof(char *));
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *err;
        rd_sockaddr_t sa;

        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            return "must be a list of \"host:port\" strings";
        }
        const char *v = config_setting_get_string(e);
        if (rd_sockaddr_parse(cf->pool, v, &sa, &err) != 0) {
            return err;
        }
        c->seeds[i] = sa.text;
    }
    c->nseeds = (size_t)n;
    return NULL;
}

static const rd_directive_t rd_cluster_directives[] = {
    { "cluster.seeds", RD_CONF_DB, rd_cluster_set_seeds, 0, NULL },
    { "cluster.discovery_user", RD_CONF_DB, rd_conf_set_str,
      D(discovery_user), NULL },
    { "cluster.discovery_password", RD_CONF_DB, rd_conf_set_str,
      D(discovery_password), NULL },
    { "cluster.refresh_interval", RD_CONF_DB, rd_conf_set_msec,
      D(refresh_interval), NULL },
    { "cluster.max_redirects", RD_CONF_DB, rd_conf_set_num,
      D(max_redirects), &rd_cluster_redirects_range },
    { "cluster.tryagain_delay", RD_CONF_DB, rd_conf_set_msec,
      D(tryagain_delay), NULL },
    rd_null_directive
};

static void *
rd_cluster_create_db(rd_conf_t *cf)
{
    rd_cluster_db_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->refresh_interval = RD_CONF_UNSET;
    c->max_redirects = RD_CONF_UNSET;
    c->tryagain_delay = RD_CONF_UNSET;
    return c;
}

static const char *
rd_cluster_init_db(rd_conf_t *cf, void *conf)
{
    rd_cluster_db_conf_t *c = conf;
    rd_database_t *db = cf->database;

    if (c->refresh_interval == RD_CONF_UNSET) {
        c->refresh_interval = 60 * 1000;
    }
    if (c->max_redirects == RD_CONF_UNSET) {
        c->max_redirects = 5;
    }
    if (c->tryagain_delay == RD_CONF_UNSET) {
        c->tryagain_delay = 100;
    }
    if (db->mode != RD_DB_CLUSTER
        && (c->nseeds || c->discovery_user || c->discovery_password))
    {
        return "cluster settings need \"?mode=cluster\" in the uri";
    }
    if ((c->discovery_user == NULL) != (c->discovery_password == NULL)) {
        return "cluster.discovery_user and cluster.discovery_password go "
               "together";
    }
    return NULL;
}

#define rd_cluster_db_conf(db) \
    ((rd_cluster_db_conf_t *)(db)->ctx[rd_cluster_module.index])

/* --- commands that cannot be routed to a cluster correctly ---------------- */

/* The reference's list ("Cluster mode commands" in DESIGN.md), plus the
 * Pub/Sub commands and RESET: after them Redis does not answer once per
 * request (or resets one node's connection only). Shorten it as features
 * land. */
static const char *const rd_cluster_unsupported[] = {
    "acl", "asking", "client", "cluster", "config", "debug", "exec",
    "hello", "info", "latency", "memory", "migrate", "module", "monitor",
    "multi", "pfdebug", "pfselftest", "psubscribe", "psync", "punsubscribe",
    "readonly", "readwrite", "replconf", "replicaof", "role", "scan",
    "script|debug", "script|kill", "shutdown", "slaveof", "slowlog",
    "ssubscribe", "sunsubscribe", "sync", "time", "wait", "watch",
    "subscribe", "unsubscribe", "reset",
};

static int
rd_cluster_is_unsupported(const rd_request_t *r)
{
    if (r->conncmd.kind == RD_CONN_HELLO && r->conncmd.protover == 3) {
        return 0;               /* -NOPROTO from the resp module */
    }
    for (size_t i = 0; i < rd_countof(rd_cluster_unsupported); i++) {
        const char *u = rd_cluster_unsupported[i];
        const char *bar = strchr(u, '|');
        if (bar == NULL) {
            if (rd_str_eq_ci(r->argv[0], u)) {
                return 1;
            }
            continue;
        }
        size_t n = (size_t)(bar - u);
        if (r->argc >= 2 && r->argv[0].len == n
            && strncasecmp(r->argv[0].data, u, n) == 0
            && rd_str_eq_ci(r->argv[1], bar + 1))
        {
            return 1;
        }
    }
    return 0;
}

/* --- per-worker topology ------------------------------------------------- */

typedef struct {
    char           host[RD_CLUSTER_HOST_MAX];
    uint16_t       port;
    rd_sockaddr_t  addr;            /* addr.text points to text */
    char           text[RD_CLUSTER_HOST_MAX + 8];
    unsigned       master:1;        /* serves slots in the current map */
    unsigned       seed:1;
    rd_msec_t      down_until;      /* a connection to it just failed */
} rd_cnode_t;

typedef struct rd_csess_s rd_csess_t;

typedef struct {
    rd_worker_t          *worker;
    rd_database_t        *db;
    rd_cluster_db_conf_t *conf;
    rd_cnode_t          **nodes;          /* stable: never removed */
    size_t                nnodes;
    int32_t               slot[RD_CLUSTER_SLOTS];  /* node index or -1 */
    unsigned              ready:1;        /* a map has been learned */
    rd_msec_t             refreshed_at;
    unsigned              next_master;    /* round robin for keyless */

    /* The refresh in flight. */
    unsigned              refreshing:1;
    rd_upconn_t           rc;
    size_t               *cand;           /* node indexes to try */
    size_t                ncand;
    size_t                tried;
    rd_buf_t              rauth;          /* AUTH to send first (wiped) */
    char                  ruser[128];
    rd_buf_t              reply;
    char                  auth_error[200]; /* the AUTH's error reply */
    char                  why[600];
    rd_csess_t           *waiters;        /* sessions waiting for a map */

    /* The refreshes that ended, and the last one's result, for the
     * waiters woken by the wake timer. */
    uint64_t              gen;
    int                   wake_ok;
    char                  wake_why[600];
    rd_timer_t            wake;
} rd_ctopo_t;

/* Markers for replies nobody reads (a replayed AUTH, ASKING). */
static char rd_cluster_discard;
static char rd_cluster_auth_marker;
static char rd_cluster_slots_marker;

static rd_ctopo_t *
rd_ctopo_find(rd_worker_t *w, rd_database_t *db)
{
    rd_ctopo_t **t = w->ctx[rd_cluster_module.index];
    for (size_t i = 0; i < w->cycle->ndatabases; i++) {
        if (t[i] && t[i]->db == db) {
            return t[i];
        }
    }
    return NULL;
}

/* The index of node host:port, added when new. -1 for a host that is not
 * a numeric address (workers never wait for DNS). */
static int
rd_ctopo_node(rd_ctopo_t *t, const char *host, size_t hlen, unsigned port)
{
    for (size_t i = 0; i < t->nnodes; i++) {
        rd_cnode_t *n = t->nodes[i];
        if (n->port == port && strlen(n->host) == hlen
            && memcmp(n->host, host, hlen) == 0)
        {
            return (int)i;
        }
    }
    if (hlen == 0 || hlen >= RD_CLUSTER_HOST_MAX || port == 0
        || port > 65535)
    {
        return -1;
    }
    rd_cnode_t *n = rd_calloc(1, sizeof(*n));
    memcpy(n->host, host, hlen);
    n->host[hlen] = '\0';
    n->port = (uint16_t)port;

    struct sockaddr_in *sin = (struct sockaddr_in *)&n->addr.addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&n->addr.addr;
    if (inet_pton(AF_INET, n->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(n->port);
        n->addr.len = sizeof(*sin);
        snprintf(n->text, sizeof(n->text), "%s:%u", n->host, port);
    } else if (inet_pton(AF_INET6, n->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(n->port);
        n->addr.len = sizeof(*sin6);
        snprintf(n->text, sizeof(n->text), "[%s]:%u", n->host, port);
    } else {
        rd_log_warn("database \"%s\": cluster node \"%s\" is not a numeric "
                    "address; set cluster-preferred-endpoint-type ip",
                    t->db->name, n->host);
        free(n);
        return -1;
    }
    n->addr.text = n->text;
    t->nodes = rd_realloc(t->nodes, (t->nnodes + 1) * sizeof(*t->nodes));
    t->nodes[t->nnodes] = n;
    return (int)t->nnodes++;
}

/* Split "host:port" (the host may be empty or an IPv6 address) and find
 * or add the node. */
static int
rd_ctopo_node_text(rd_ctopo_t *t, const char *p, size_t n,
                   const rd_cnode_t *asked)
{
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--) {
        if (p[i - 1] == ':') {
            colon = p + i - 1;
            break;
        }
    }
    if (colon == NULL) {
        return -1;
    }
    unsigned port = 0;
    const char *q = colon + 1;
    if (q == p + n) {
        return -1;
    }
    for (; q < p + n; q++) {
        if (*q < '0' || *q > '9' || port > 65535) {
            return -1;
        }
        port = port * 10 + (unsigned)(*q - '0');
    }
    const char *host = p;
    size_t hlen = (size_t)(colon - p);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (hlen == 0 && asked) {
        host = asked->host;
        hlen = strlen(asked->host);
    }
    return rd_ctopo_node(t, host, hlen, port);
}

static void rd_ctopo_refresh(rd_ctopo_t *t, rd_csess_t *cs);
static void rd_ctopo_refresh_done(rd_ctopo_t *t, int ok);

/* --- sessions, requests ---------------------------------------------------- */

typedef struct {
    rd_upconn_t     uc;
    rd_csess_t     *cs;
    size_t          node;
} rd_cconn_t;

typedef enum {
    RD_CK_DIRECT = 0,      /* one node; the reply streams to the client */
    RD_CK_MGET,            /* split by slot, merged in order */
    RD_CK_SUM,             /* DBSIZE */
    RD_CK_KEYS,            /* KEYS */
    RD_CK_ALLOK,           /* FLUSHDB, FLUSHALL, SCRIPT FLUSH */
    RD_CK_SAME,            /* SCRIPT LOAD */
    RD_CK_AND,             /* SCRIPT EXISTS */
    RD_CK_AUTH             /* AUTH on every connection of the session */
} rd_ckind_t;

typedef struct rd_creq_s rd_creq_t;
typedef struct rd_cpart_s rd_cpart_t;

/* Why a parked part waits (it is sent from its lane's head only). */
enum {
    RD_CWAIT_NONE = 0,     /* for the parts before it (the rule) */
    RD_CWAIT_MAP,          /* for a map newer than map_gen */
    RD_CWAIT_DELAY         /* for its retry timer (TRYAGAIN) */
};

struct rd_cpart_s {
    rd_creq_t      *cr;
    rd_buf_t        cmd;            /* own command; empty: the request's */
    int             slot;           /* -1: sent to node */
    int             node;           /* target when slot < 0; last sent to */
    int             ask_node;       /* ASK target for the next send, or -1 */
    unsigned        redirects;
    char            type;           /* first byte of the reply */
    unsigned        done:1;
    unsigned        any:1;          /* keyless: any node will do */
    rd_buf_t        reply;          /* held reply (fan-out, errors) */
    unsigned        inflight:1;     /* counted in its lane, on a node */
    unsigned        early:1;        /* sent before its connection was up,
                                       no reply yet (cs->nearly) */
    unsigned        wait:2;         /* RD_CWAIT_*, when parked */
    uint64_t        map_gen;        /* RD_CWAIT_MAP: t->gen when parked */
    rd_cpart_t     *next_park;      /* the lane's parked list */
    size_t         *pos;            /* MGET: argv positions of the keys */
    size_t          npos;
    rd_timer_t      retry;
};

struct rd_creq_s {
    rd_request_t   *r;
    rd_worker_t    *worker;
    rd_csess_t     *cs;
    rd_ckind_t      kind;
    rd_cpart_t     *parts;
    size_t          nparts;
    size_t          left;           /* parts without a final reply */
    uint64_t        seq;            /* the session's request order */
    uint64_t        map_gen;        /* in wait_head: t->gen when queued */
    rd_creq_t      *next_wait;
    unsigned        barrier:1;      /* not confined to one slot */
};

/*
 * A session's lane for one slot (the ordering invariant at the top): the
 * parts in flight all went to node, on the session's connection to it,
 * in request order, the latest being last_seq; the parked ones wait in
 * request order. Lanes live in a small open-addressing table per session
 * (slot -1: a free entry) while they hold a part.
 */
typedef struct {
    int32_t         slot;
    int32_t         node;
    uint32_t        inflight;
    uint32_t        nparked;
    uint64_t        last_seq;
    rd_cpart_t     *head;
    rd_cpart_t     *tail;
} rd_clane_t;

struct rd_csess_s {
    rd_session_t   *session;
    rd_ctopo_t     *topo;
    rd_cconn_t    **conns;          /* by node index; NULL: never used */
    size_t          nconns;
    int             last_node;
    rd_buf_t        auth;           /* the session's AUTH, as RESP */
    rd_buf_t        prev_auth;      /* before an AUTH in flight */
    rd_creq_t      *wait_head;      /* requests held back (a map, a
                                       barrier), in request order */
    rd_creq_t      *wait_tail;
    uint64_t        seq;            /* requests routed so far */
    uint64_t        barrier_seq;    /* part seq of the last barrier sent */
    uint32_t        nparked;        /* parked parts, all lanes */
    uint32_t        nbparked;       /* those of barriers (split MGET) */
    uint32_t        nearly;         /* parts on connections not yet up */
    unsigned        draining:1;
    rd_clane_t     *lanes;          /* by slot (rd_clane_t) */
    size_t          nlanes;
    size_t          lanes_cap;      /* 0 or a power of two */
    rd_csess_t     *next_waiter;
    rd_csess_t     *prev_waiter;
    unsigned        waiting:1;
};

static void rd_cpart_send(rd_cpart_t *p);
static void rd_cpart_transmit(rd_cpart_t *p, int node);
static void rd_cpart_final(rd_cpart_t *p);
static void rd_csess_wait(rd_csess_t *cs);
static void rd_csess_drain(rd_csess_t *cs);

static void
rd_cpart_set_error(rd_cpart_t *p, const char *msg)
{
    rd_buf_reset(&p->reply);
    rd_resp_encode_error(&p->reply, msg);
    p->type = '-';
}

/* --- lanes: the ordering invariant (see the top) ------------------------- */

/* A part's place in the session's order: its request, then its index (a
 * split MGET has at most one part per slot, so fewer than 2^16). */
static uint64_t
rd_cpart_seq(const rd_cpart_t *p)
{
    return (p->cr->seq << 16) | (uint64_t)(p - p->cr->parts);
}

static size_t
rd_clane_hash(int slot)
{
    uint32_t h = (uint32_t)slot * 0x9e3779b1u;
    return (size_t)(h ^ (h >> 15));
}

static rd_clane_t *
rd_clane_find(rd_csess_t *cs, int slot)
{
    if (cs->lanes_cap == 0) {
        return NULL;
    }
    size_t mask = cs->lanes_cap - 1;
    for (size_t i = rd_clane_hash(slot) & mask;; i = (i + 1) & mask) {
        rd_clane_t *l = &cs->lanes[i];
        if (l->slot == slot) {
            return l;
        }
        if (l->slot < 0) {
            return NULL;
        }
    }
}

static rd_clane_t *
rd_clane_slot_entry(rd_clane_t *lanes, size_t cap, int slot)
{
    size_t mask = cap - 1;
    size_t i = rd_clane_hash(slot) & mask;
    while (lanes[i].slot >= 0 && lanes[i].slot != slot) {
        i = (i + 1) & mask;
    }
    return &lanes[i];
}

/* The lane of slot, made when it has none (at most half the entries are
 * used, so a probe always ends). */
static rd_clane_t *
rd_clane_get(rd_csess_t *cs, int slot)
{
    rd_clane_t *l = rd_clane_find(cs, slot);
    if (l) {
        return l;
    }
    if ((cs->nlanes + 1) * 2 > cs->lanes_cap) {
        size_t cap = cs->lanes_cap ? cs->lanes_cap * 2 : 8;
        rd_clane_t *lanes = rd_alloc(cap * sizeof(*lanes));
        for (size_t i = 0; i < cap; i++) {
            lanes[i].slot = -1;
        }
        for (size_t i = 0; i < cs->lanes_cap; i++) {
            if (cs->lanes[i].slot >= 0) {
                *rd_clane_slot_entry(lanes, cap, cs->lanes[i].slot) =
                    cs->lanes[i];
            }
        }
        free(cs->lanes);
        cs->lanes = lanes;
        cs->lanes_cap = cap;
    }
    l = rd_clane_slot_entry(cs->lanes, cs->lanes_cap, slot);
    memset(l, 0, sizeof(*l));
    l->slot = slot;
    l->node = -1;
    cs->nlanes++;
    return l;
}

/* Forget slot's lane once it holds nothing (backward-shift deletion, so
 * no tombstones); a table left empty goes back to the smallest size. */
static void
rd_clane_gc(rd_csess_t *cs, int slot)
{
    rd_clane_t *l = rd_clane_find(cs, slot);
    if (l == NULL || l->inflight > 0 || l->nparked > 0) {
        return;
    }
    size_t mask = cs->lanes_cap - 1;
    size_t i = (size_t)(l - cs->lanes);
    for (size_t j = (i + 1) & mask; cs->lanes[j].slot >= 0;
         j = (j + 1) & mask)
    {
        size_t home = rd_clane_hash(cs->lanes[j].slot) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            cs->lanes[i] = cs->lanes[j];
            i = j;
        }
    }
    cs->lanes[i].slot = -1;
    if (--cs->nlanes == 0 && cs->lanes_cap > 8) {
        free(cs->lanes);
        cs->lanes = NULL;
        cs->lanes_cap = 0;
    }
}

/* Park p in its lane, in request order. */
static void
rd_cpart_park(rd_cpart_t *p, unsigned wait)
{
    rd_clane_t *l = rd_clane_get(p->cr->cs, p->slot);
    uint64_t seq = rd_cpart_seq(p);

    p->wait = wait & 3;
    if (l->tail == NULL || rd_cpart_seq(l->tail) < seq) {
        p->next_park = NULL;
        if (l->tail) {
            l->tail->next_park = p;
        } else {
            l->head = p;
        }
        l->tail = p;
    } else {
        rd_cpart_t **pp = &l->head;
        while (rd_cpart_seq(*pp) < seq) {
            pp = &(*pp)->next_park;
        }
        p->next_park = *pp;
        *pp = p;
    }
    l->nparked++;
    p->cr->cs->nparked++;
    p->cr->cs->nbparked += p->cr->barrier;
}

/* p's reply began, or its connection failed: it is no longer on its way
 * to a node that may never be reached. */
static void
rd_cpart_arrived(rd_cpart_t *p)
{
    if (p->early) {
        p->early = 0;
        p->cr->cs->nearly--;
    }
}

/* p left its lane's parked list. */
static void
rd_csess_unparked(rd_csess_t *cs, rd_cpart_t *p)
{
    cs->nparked--;
    cs->nbparked -= p->cr->barrier;
}

/* p went to node on the session's connection to it. */
static void
rd_clane_sent(rd_cpart_t *p, int node)
{
    rd_clane_t *l = rd_clane_get(p->cr->cs, p->slot);
    l->inflight++;
    l->node = node;
    l->last_seq = rd_cpart_seq(p);
    p->inflight = 1;
}

/* p's reply came back, or its connection failed. */
static void
rd_clane_back(rd_cpart_t *p)
{
    if (!p->inflight) {
        return;
    }
    rd_csess_t *cs = p->cr->cs;
    rd_clane_t *l = rd_clane_find(cs, p->slot);
    p->inflight = 0;
    if (l) {
        l->inflight--;
        rd_clane_gc(cs, p->slot);
    }
}

/*
 * Send what the rule lets go from the head of slot's lane: the oldest
 * parked part, once it waits for nothing but its turn, when nothing is in
 * flight for the slot or all of it went to the same node before it. A
 * part that is sent, fails or parks again changes the lane, so it is
 * looked up afresh each time round.
 */
static void
rd_clane_send(rd_csess_t *cs, int slot)
{
    rd_ctopo_t *t = cs->topo;

    while (!cs->session->conn->closed) {
        rd_clane_t *l = rd_clane_find(cs, slot);
        if (l == NULL || l->head == NULL) {
            return;
        }
        rd_cpart_t *p = l->head;
        if (p->wait != RD_CWAIT_NONE) {
            return;
        }
        int node = p->ask_node >= 0 ? p->ask_node : t->slot[slot];
        if (node >= 0 && l->inflight > 0
            && (l->node != node || l->last_seq > rd_cpart_seq(p)))
        {
            return;
        }
        l->head = p->next_park;
        if (l->head == NULL) {
            l->tail = NULL;
        }
        l->nparked--;
        rd_csess_unparked(cs, p);
        p->next_park = NULL;
        rd_clane_gc(cs, slot);
        rd_cpart_transmit(p, node);
    }
}

/* Run slot's lane; what it let go may let the held requests go too. */
static void
rd_clane_run(rd_csess_t *cs, int slot)
{
    rd_clane_send(cs, slot);
    if (cs->wait_head) {
        rd_csess_drain(cs);
    }
}

/* The slots of the session's lanes that hold parked parts (to run them
 * all: running changes the table). Free the array; *n its length. */
static int *
rd_csess_parked_slots(rd_csess_t *cs, size_t *n)
{
    int *slots = rd_alloc((cs->nlanes + 1) * sizeof(int));
    *n = 0;
    for (size_t i = 0; i < cs->lanes_cap; i++) {
        if (cs->lanes[i].slot >= 0 && cs->lanes[i].nparked > 0) {
            slots[(*n)++] = cs->lanes[i].slot;
        }
    }
    return slots;
}

/* --- node connections ---------------------------------------------------- */

/*
 * A part that never reached its node (the connection could not be made)
 * waits, parked in its lane, for a map learned after now: after a
 * failover it names the promoted replica. Its error reply is set already
 * and stands if the map still names the same node. A keyless one goes to
 * another node at once. 1 when it waits or was sent again, 0 when it
 * cannot (an ASK, too many tries, a barrier sent after it).
 */
static int
rd_cpart_wait_map(rd_cpart_t *p)
{
    rd_csess_t *cs = p->cr->cs;
    rd_ctopo_t *t = cs->topo;

    if (p->node >= 0) {
        t->nodes[p->node]->down_until = t->worker->loop.now + 1000;
    }
    if (rd_cpart_seq(p) < cs->barrier_seq) {
        return 0;               /* sent again, it would run after it */
    }
    if (p->any && p->redirects < (unsigned)t->conf->max_redirects) {
        /* A keyless command: another node will do. */
        p->redirects++;
        p->node = -1;
        rd_buf_reset(&p->reply);
        p->type = 0;
        rd_cpart_send(p);
        return 1;
    }
    if (p->slot < 0 || p->ask_node >= 0
        || p->redirects >= (unsigned)cs->topo->conf->max_redirects)
    {
        return 0;
    }
    p->redirects++;
    p->map_gen = t->gen;
    rd_cpart_park(p, RD_CWAIT_MAP);
    rd_csess_wait(cs);
    return 1;
}

static int
rd_cconn_reply(rd_upconn_t *uc, void *data, const char *p, size_t n,
               int last)
{
    rd_cconn_t *cc = uc->owner;
    rd_csess_t *cs = cc->cs;
    rd_session_t *s = cs->session;

    if (data == &rd_cluster_discard) {
        return 0;
    }
    rd_cpart_t *part = data;
    rd_creq_t *cr = part->cr;
    rd_request_t *r = cr->r;
    int slot = part->slot;      /* part may be gone once answered */

    rd_cpart_arrived(part);
    if (last) {
        rd_clane_back(part);
    }
    if (part->type == 0 && n > 0) {
        part->type = p[0];
    }
    if (cr->kind == RD_CK_DIRECT && part->type != '-') {
        rd_request_reply_append(r, p, n);
        if (s->conn->closed) {
            return -1;
        }
        if (last) {
            part->done = 1;
            cr->left--;
            rd_stats_latency(uc->db, s->worker->loop.now_usec
                                     - r->start_usec);
            rd_request_done(r);
        }
    } else {
        rd_buf_append(&part->reply, p, n);
        if (last) {
            rd_cpart_final(part);
        }
    }
    if (last && slot >= 0) {
        rd_clane_run(cs, slot);
    } else if (cs->wait_head && !s->conn->closed) {
        rd_csess_drain(cs);
    }
    return s->conn->closed ? -1 : 0;
}

/* A node connection failed: every command pending on it gets an error,
 * or waits for a new map when none of them was sent (never_up). They are
 * taken off the connection first: a part sent again may reconnect it. */
static void
rd_cconn_fail(rd_upconn_t *uc, const char *why)
{
    rd_cconn_t *cc = uc->owner;
    rd_csess_t *cs = cc->cs;
    rd_session_t *s = cs->session;
    char msg[512];
    int never_up = uc->never_up;

    rd_session_log(s, RD_LOG_WARN, "%s, node: %s", why, uc->addr->text);
    snprintf(msg, sizeof(msg), "ERR redoubt: %s (node %s)", why,
             uc->addr->text);

    size_t n = 0;
    rd_cpart_t **parts = rd_alloc((uc->count + 1) * sizeof(*parts));
    int *slots = rd_alloc((uc->count + 1) * sizeof(int));
    while (uc->count > 0) {
        void *data = rd_upconn_pop(uc);
        if (data != &rd_cluster_discard) {
            parts[n] = data;
            slots[n] = parts[n]->slot;
            rd_clane_back(parts[n]);
            rd_cpart_arrived(parts[n]);
            n++;
        }
    }
    for (size_t i = 0; i < n && !s->conn->closed; i++) {
        rd_cpart_t *part = parts[i];
        rd_request_t *r = part->cr->r;
        if (part->cr->kind == RD_CK_DIRECT && r->streaming) {
            rd_session_close(s, "upstream connection lost mid-reply");
            break;
        }
        if (part->cr->kind == RD_CK_DIRECT && rd_buf_used(&r->reply) > 0) {
            s->buffered -= rd_buf_used(&r->reply);
            rd_buf_reset(&r->reply);
            r->reply_type = 0;
            r->reply_head_len = 0;
        }
        rd_cpart_set_error(part, msg);
        if (never_up && rd_cpart_wait_map(part)) {
            continue;
        }
        rd_cpart_final(part);
    }
    if (!s->conn->closed) {
        rd_ctopo_refresh(cs->topo, cs);
    }
    for (size_t i = 0; i < n && !s->conn->closed; i++) {
        if (slots[i] >= 0) {
            rd_clane_run(cs, slots[i]);
        }
    }
    if (cs->wait_head && !s->conn->closed) {
        rd_csess_drain(cs);
    }
    free(parts);
    free(slots);
}

static const rd_upconn_handler_t rd_cconn_handler = {
    rd_cconn_reply, rd_cconn_fail
};

/* The session's connection to node i, connected (or connecting) with the
 * session's AUTH queued first. NULL with errno when it cannot connect. */
static rd_cconn_t *
rd_csess_conn(rd_csess_t *cs, size_t i)
{
    rd_session_t *s = cs->session;
    rd_ctopo_t *t = cs->topo;

    if (i >= cs->nconns) {
        size_t n = t->nnodes > i + 1 ? t->nnodes : i + 1;
        cs->conns = rd_realloc(cs->conns, n * sizeof(*cs->conns));
        memset(cs->conns + cs->nconns, 0,
               (n - cs->nconns) * sizeof(*cs->conns));
        cs->nconns = n;
    }
    rd_cconn_t *cc = cs->conns[i];
    if (cc == NULL) {
        cc = rd_calloc(1, sizeof(*cc));
        cc->cs = cs;
        cc->node = i;
        rd_upconn_init(&cc->uc, s->worker, t->db, &t->nodes[i]->addr,
                       t->nodes[i]->host, s->db_user, &rd_cconn_handler, cc);
        cs->conns[i] = cc;
    }
    if (cc->uc.conn == NULL) {
        cc->uc.user = s->db_user;
        if (rd_upconn_connect(&cc->uc) != 0) {
            return NULL;
        }
        if (rd_buf_used(&cs->auth) > 0) {
            rd_upconn_send(&cc->uc, rd_buf_rpos(&cs->auth),
                           rd_buf_used(&cs->auth), &rd_cluster_discard);
        }
    }
    return cc;
}

/* A node for a keyless command: the one used last, one the session is
 * connected to, a master, any other known node (seeds); nodes whose
 * connection just failed only when nothing else is left. */
static int
rd_csess_any_node(rd_csess_t *cs)
{
    rd_ctopo_t *t = cs->topo;
    rd_msec_t now = t->worker->loop.now;

    if (cs->last_node >= 0 && (size_t)cs->last_node < cs->nconns
        && cs->conns[cs->last_node] && cs->conns[cs->last_node]->uc.conn
        && t->nodes[cs->last_node]->down_until <= now)
    {
        return cs->last_node;
    }
    for (size_t i = 0; i < cs->nconns; i++) {
        if (cs->conns[i] && cs->conns[i]->uc.conn
            && t->nodes[i]->down_until <= now)
        {
            return (int)i;
        }
    }
    for (int pass = 0; pass < 3; pass++) {
        for (size_t k = 0; k < t->nnodes; k++) {
            size_t i = (t->next_master + k) % t->nnodes;
            rd_cnode_t *n = t->nodes[i];
            if ((pass == 0 && (!n->master || n->down_until > now))
                || (pass == 1 && n->down_until > now))
            {
                continue;
            }
            t->next_master = (unsigned)(i + 1);
            return (int)i;
        }
    }
    return -1;
}

/* --- sending and redirections -------------------------------------------- */

static void
rd_cpart_retry_handler(rd_timer_t *tm)
{
    rd_cpart_t *p = tm->data;
    rd_csess_t *cs = p->cr->cs;

    if (cs->session->conn->closed) {
        return;
    }
    if (p->slot >= 0) {
        p->wait = RD_CWAIT_NONE;
        rd_clane_run(cs, p->slot);
    } else {
        rd_cpart_send(p);
    }
}

/* Send p (new, or again after a redirection): a part for a slot goes
 * through its lane, the others to their node at once. */
static void
rd_cpart_send(rd_cpart_t *p)
{
    rd_csess_t *cs = p->cr->cs;
    int node;

    if (cs->session->conn->closed) {
        return;
    }
    if (p->slot >= 0) {
        rd_cpart_park(p, RD_CWAIT_NONE);
        rd_clane_run(cs, p->slot);
        return;
    }
    if (p->ask_node >= 0) {
        node = p->ask_node;
    } else {
        if (p->node < 0) {
            p->any = 1;
        }
        node = p->any ? rd_csess_any_node(cs) : p->node;
    }
    rd_cpart_transmit(p, node);
}

/* Put p on the session's connection to node (-1: no node serves it). */
static void
rd_cpart_transmit(rd_cpart_t *p, int node)
{
    rd_creq_t *cr = p->cr;
    rd_csess_t *cs = cr->cs;
    rd_ctopo_t *t = cs->topo;
    char msg[512];

    if (node < 0) {
        rd_cpart_set_error(p, p->slot >= 0
                              ? "CLUSTERDOWN Hash slot not served"
                              : "ERR redoubt: no cluster node known");
        rd_cpart_final(p);
        return;
    }
    rd_cconn_t *cc = rd_csess_conn(cs, (size_t)node);
    if (cc == NULL) {
        snprintf(msg, sizeof(msg), "ERR redoubt: upstream unavailable: %s "
                 "(node %s)", strerror(errno), t->nodes[node]->text);
        rd_stats_upstream_failed(t->db, 0);
        rd_cpart_set_error(p, msg);
        p->node = node;
        if (rd_cpart_wait_map(p)) {
            return;
        }
        rd_ctopo_refresh(t, cs);
        rd_cpart_final(p);
        return;
    }
    if (p->ask_node >= 0) {
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        rd_upconn_send(&cc->uc, asking, sizeof(asking) - 1,
                       &rd_cluster_discard);
        p->ask_node = -1;
    }
    p->node = node;
    cs->last_node = node;
    if (cr->kind == RD_CK_DIRECT) {
        cr->r->upstream = t->nodes[node]->text;
    }
    rd_buf_t *cmd = rd_buf_used(&p->cmd) > 0 ? &p->cmd : &cr->r->raw;
    rd_upconn_send(&cc->uc, rd_buf_rpos(cmd), rd_buf_used(cmd), p);
    if (!cc->uc.connected) {
        p->early = 1;
        cs->nearly++;
    }
    if (p->slot >= 0) {
        rd_clane_sent(p, node);
    }
}

/* "MOVED 3999 127.0.0.1:6381", "ASK ...", "TRYAGAIN ...": 1 when the part
 * was sent again (or will be), 0 when the error is for the client (too
 * many redirections, or a barrier was sent after the part). A part for a
 * slot is parked in its lane (the caller runs the lane). */
static int
rd_cpart_redirect(rd_cpart_t *p)
{
    rd_creq_t *cr = p->cr;
    rd_ctopo_t *t = cr->cs->topo;
    const char *e = rd_buf_rpos(&p->reply) + 1;
    size_t n = rd_buf_used(&p->reply) - 1;
    int moved = 0, ask = 0;

    while (n > 0 && (e[n - 1] == '\r' || e[n - 1] == '\n')) {
        n--;
    }
    if (n > 6 && memcmp(e, "MOVED ", 6) == 0) {
        moved = 1;
    } else if (n > 4 && memcmp(e, "ASK ", 4) == 0) {
        ask = 1;
    } else if (!(n >= 8 && memcmp(e, "TRYAGAIN", 8) == 0)) {
        return 0;
    }
    if (moved || ask) {
        rd_stats_redirect(t->db, ask);
    }
    if (p->redirects >= (unsigned)t->conf->max_redirects
        || rd_cpart_seq(p) < cr->cs->barrier_seq)
    {
        /* (A barrier sent after it: sent again, it would run after the
         * barrier. It did not run.) */
        return 0;
    }

    int node = -1;
    unsigned slot = 0;
    if (moved || ask) {
        const char *q = (const char *)memchr(e, ' ', n) + 1;
        const char *end = e + n;
        while (q < end && *q >= '0' && *q <= '9' && slot < RD_CLUSTER_SLOTS) {
            slot = slot * 10 + (unsigned)(*q++ - '0');
        }
        if (q >= end || *q != ' ' || slot >= RD_CLUSTER_SLOTS) {
            return 0;
        }
        q++;
        node = rd_ctopo_node_text(t, q, (size_t)(end - q),
                                  p->node >= 0 ? t->nodes[p->node] : NULL);
        if (node < 0) {
            return 0;
        }
    } else if (p->slot >= 0) {
        /* Later parts for the slot already went out behind this one: run
         * after its delay, it would run after them. It did not run. */
        rd_clane_t *l = rd_clane_find(cr->cs, p->slot);
        if (l && l->inflight > 0) {
            return 0;
        }
    }

    p->redirects++;
    rd_buf_reset(&p->reply);
    p->type = 0;
    if (moved) {
        rd_log_debug("database \"%s\": slot %u moved to %s", t->db->name,
                     slot, t->nodes[node]->text);
        t->slot[slot] = node;
        t->nodes[node]->master = 1;
        if (p->slot < 0) {
            p->node = node;
        }
        rd_ctopo_refresh(t, cr->cs);
    } else if (ask) {
        p->ask_node = node;
    } else {
        rd_timer_add(&cr->worker->loop.timers, &p->retry,
                     cr->worker->loop.now, t->conf->tryagain_delay);
        if (p->slot >= 0) {
            rd_cpart_park(p, RD_CWAIT_DELAY);
        }
        return 1;
    }
    if (p->slot >= 0) {
        rd_cpart_park(p, RD_CWAIT_NONE);
    } else {
        rd_cpart_send(p);
    }
    return 1;
}

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

/* AUTH went to every connection: remember it if all accepted it, forget
 * it if all refused it (each connection keeps its former user then). */
static void
rd_creq_auth_result(rd_creq_t *cr, int ok)
{
    rd_csess_t *cs = cr->cs;
    size_t nok = 0;
    for (size_t i = 0; i < cr->nparts; i++) {
        nok += cr->parts[i].type == '+';
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
    if (err) {
        rd_request_reply_append(r, rd_buf_rpos(&err->reply),
                                rd_buf_used(&err->reply));
        rd_request_done(r);
        return;
    }
    switch (cr->kind) {
    case RD_CK_SUM:
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
    case RD_CK_ALLOK:
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
static void
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

/* --- routing --------------------------------------------------------------- */

static void
rd_creq_free(void *ctx)
{
    rd_creq_t *cr = ctx;
    for (size_t i = 0; i < cr->nparts; i++) {
        rd_cpart_t *p = &cr->parts[i];
        rd_timer_del(&cr->worker->loop.timers, &p->retry);
        rd_buf_free(&p->cmd);
        rd_buf_free(&p->reply);
        free(p->pos);
    }
    free(cr->parts);
    free(cr);
}

static rd_creq_t *
rd_creq_new(rd_csess_t *cs, rd_request_t *r, rd_ckind_t kind, size_t nparts)
{
    rd_creq_t *cr = rd_calloc(1, sizeof(*cr));
    cr->r = r;
    cr->worker = cs->session->worker;
    cr->cs = cs;
    cr->kind = kind;
    cr->seq = ++cs->seq;
    cr->nparts = nparts;
    cr->left = nparts;
    cr->parts = rd_calloc(nparts ? nparts : 1, sizeof(rd_cpart_t));
    for (size_t i = 0; i < nparts; i++) {
        rd_cpart_t *p = &cr->parts[i];
        p->cr = cr;
        p->slot = -1;
        p->node = -1;
        p->ask_node = -1;
        p->retry.handler = rd_cpart_retry_handler;
        p->retry.data = p;
    }
    rd_request_ctx(r, rd_cluster_module) = cr;
    return cr;
}

static void
rd_creq_dispatch(rd_creq_t *cr)
{
    for (size_t i = 0; i < cr->nparts; i++) {
        if (cr->cs->session->conn->closed) {
            return;
        }
        rd_cpart_send(&cr->parts[i]);
    }
}

/* Fan-out kinds need the masters; set one part per master. */
static void
rd_creq_all_masters(rd_creq_t *cr)
{
    rd_ctopo_t *t = cr->cs->topo;
    size_t n = 0;

    for (size_t i = 0; i < t->nnodes; i++) {
        n += t->nodes[i]->master;
    }
    cr->parts = rd_realloc(cr->parts, (n ? n : 1) * sizeof(rd_cpart_t));
    memset(cr->parts, 0, (n ? n : 1) * sizeof(rd_cpart_t));
    cr->nparts = cr->left = n;
    size_t k = 0;
    for (size_t i = 0; i < t->nnodes; i++) {
        if (!t->nodes[i]->master) {
            continue;
        }
        rd_cpart_t *p = &cr->parts[k++];
        p->cr = cr;
        p->slot = -1;
        p->node = (int)i;
        p->ask_node = -1;
        p->retry.handler = rd_cpart_retry_handler;
        p->retry.data = p;
    }
}

/* MGET: one part per slot, each with the argv positions of its keys. */
static void
rd_creq_split_mget(rd_creq_t *cr)
{
    rd_request_t *r = cr->r;
    size_t nkeys = r->argc - 1;
    int *slot = rd_alloc(nkeys * sizeof(int));
    size_t nparts = 0;

    for (size_t j = 0; j < nkeys; j++) {
        slot[j] = (int)rd_cluster_key_slot(r->argv[j + 1].data,
                                           r->argv[j + 1].len);
    }
    cr->parts = rd_realloc(cr->parts, nkeys * sizeof(rd_cpart_t));
    memset(cr->parts, 0, nkeys * sizeof(rd_cpart_t));
    for (size_t j = 0; j < nkeys; j++) {
        rd_cpart_t *p = NULL;
        for (size_t k = 0; k < nparts; k++) {
            if (cr->parts[k].slot == slot[j]) {
                p = &cr->parts[k];
                break;
            }
        }
        if (p == NULL) {
            p = &cr->parts[nparts++];
            p->cr = cr;
            p->slot = slot[j];
            p->node = -1;
            p->ask_node = -1;
            p->retry.handler = rd_cpart_retry_handler;
            p->retry.data = p;
            p->pos = rd_alloc(nkeys * sizeof(size_t));
        }
        p->pos[p->npos++] = j + 1;
    }
    for (size_t k = 0; k < nparts; k++) {
        rd_cpart_t *p = &cr->parts[k];
        rd_str_t *argv = rd_alloc((p->npos + 1) * sizeof(rd_str_t));
        argv[0] = r->argv[0];
        for (size_t i = 0; i < p->npos; i++) {
            argv[i + 1] = r->argv[p->pos[i]];
        }
        rd_resp_encode_command(&p->cmd, p->npos + 1, argv);
        free(argv);
    }
    cr->nparts = cr->left = nparts;
    free(slot);
}

/* AUTH: a part for every node the session is connected to (or one node),
 * so that every connection runs as the same user; the new AUTH is the
 * one new connections replay from now on. */
static void
rd_creq_auth_parts(rd_creq_t *cr)
{
    rd_csess_t *cs = cr->cs;
    rd_request_t *r = cr->r;
    size_t n = 0;

    for (size_t i = 0; i < cs->nconns; i++) {
        n += cs->conns[i] && cs->conns[i]->uc.conn;
    }
    size_t np = n ? n : 1;
    cr->parts = rd_realloc(cr->parts, np * sizeof(rd_cpart_t));
    memset(cr->parts, 0, np * sizeof(rd_cpart_t));
    cr->nparts = cr->left = np;
    for (size_t i = 0; i < np; i++) {
        rd_cpart_t *p = &cr->parts[i];
        p->cr = cr;
        p->slot = -1;
        p->node = -1;
        p->ask_node = -1;
        p->retry.handler = rd_cpart_retry_handler;
        p->retry.data = p;
    }
    size_t k = 0;
    for (size_t i = 0; i < cs->nconns && n; i++) {
        if (cs->conns[i] && cs->conns[i]->uc.conn) {
            cr->parts[k++].node = (int)i;
        }
    }
    if (n == 0) {
        cr->parts[0].node = rd_csess_any_node(cs);
        cr->parts[0].any = 1;
    }
    if (n == 0 && cr->parts[0].node >= 0) {
        /* Connect before the new AUTH is remembered: a new connection
         * replays the one before, and this one is sent once, as the
         * request itself. */
        rd_csess_conn(cs, (size_t)cr->parts[0].node);
    }
    rd_buf_wipe(&cs->prev_auth);
    rd_buf_swap(&cs->prev_auth, &cs->auth);
    rd_buf_append(&cs->auth, rd_buf_rpos(&r->raw), rd_buf_used(&r->raw));
}

/* Make cr's parts with the map at hand and send them. -1 when no node
 * serves it (nothing sent). */
static int
rd_creq_start(rd_creq_t *cr)
{
    if (cr->barrier) {
        cr->cs->barrier_seq = cr->seq << 16;
    }
    switch (cr->kind) {
    case RD_CK_DIRECT:
        break;
    case RD_CK_AUTH:
        rd_creq_auth_parts(cr);
        break;
    case RD_CK_MGET:
        cr->r->upstream = NULL;
        rd_creq_split_mget(cr);
        break;
    default:
        rd_creq_all_masters(cr);
        break;
    }
    if (cr->nparts == 0) {
        return -1;
    }
    rd_creq_dispatch(cr);
    return 0;
}

static int
rd_creq_needs_map(const rd_creq_t *cr)
{
    return cr->kind == RD_CK_DIRECT ? cr->parts[0].slot >= 0
                                    : cr->kind != RD_CK_AUTH;
}

/* Whether cr must wait, apart from the requests held before it (the rule
 * at the top): a barrier while any part of the session is parked or on a
 * connection not up yet (it may park when that fails), any request while
 * a part of a barrier is parked, and one that needs a map before the
 * first one is known. */
static int
rd_creq_held(const rd_creq_t *cr)
{
    const rd_csess_t *cs = cr->cs;

    return (cr->barrier ? cs->nparked > 0 || cs->nearly > 0
                        : cs->nbparked > 0)
           || (rd_creq_needs_map(cr) && !cs->topo->ready);
}

/* Hold cr back, behind the requests held already. */
static void
rd_csess_hold(rd_csess_t *cs, rd_creq_t *cr)
{
    cr->map_gen = cs->topo->gen;
    cr->next_wait = NULL;
    if (cs->wait_tail) {
        cs->wait_tail->next_wait = cr;
    } else {
        cs->wait_head = cr;
    }
    cs->wait_tail = cr;
    if (rd_creq_needs_map(cr) && !cs->topo->ready) {
        rd_csess_wait(cs);
    }
}

/*
 * Send the held requests the rule lets go now, from the head, in order.
 * One that needs the first map waits for a refresh that ends after it was
 * held, and fails when that one learned nothing. Parts sent may come
 * back here (their lanes run): the outer call goes on.
 */
static void
rd_csess_drain(rd_csess_t *cs)
{
    rd_session_t *s = cs->session;
    rd_ctopo_t *t = cs->topo;

    if (cs->draining) {
        return;
    }
    cs->draining = 1;
    while (cs->wait_head && !s->conn->closed) {
        rd_creq_t *cr = cs->wait_head;
        int nomap = rd_creq_needs_map(cr) && !t->ready;
        if (cr->barrier ? cs->nparked > 0 || cs->nearly > 0
                        : cs->nbparked > 0)
        {
            break;
        }
        if (nomap && cr->map_gen >= t->gen) {
            rd_csess_wait(cs);
            break;
        }
        cs->wait_head = cr->next_wait;
        if (cs->wait_head == NULL) {
            cs->wait_tail = NULL;
        }
        cr->next_wait = NULL;
        if (nomap) {
            rd_request_error(cr->r, "ERR redoubt: cluster topology "
                             "unavailable: %s", t->wake_why);
        } else if (rd_creq_start(cr) != 0) {
            rd_request_error(cr->r, "CLUSTERDOWN Hash slot not served");
        }
    }
    cs->draining = 0;
}

/*
 * A refresh ended (t->gen counts them; t->wake_ok and t->wake_why say how
 * the last one went): what waited for a map goes on. Parked parts whose
 * node could not be reached are sent again, in their lane's order, when
 * the map now names another node for their slot; otherwise their error
 * stands. Parts parked after that refresh ended wait for the next one.
 */
static void
rd_csess_resume(rd_csess_t *cs)
{
    rd_session_t *s = cs->session;
    rd_ctopo_t *t = cs->topo;
    int again = 0;

    size_t nslots;
    int *slots = rd_csess_parked_slots(cs, &nslots);
    for (size_t k = 0; k < nslots && !s->conn->closed; k++) {
        int slot = slots[k];
        rd_clane_t *l = rd_clane_find(cs, slot);
        rd_cpart_t *failed = NULL, **ft = &failed;
        if (l == NULL) {
            continue;
        }
        /* Take the parts whose error stands off the lane first: they
         * are answered once the lane is consistent again. */
        rd_cpart_t **pp = &l->head, *last = NULL;
        while (*pp) {
            rd_cpart_t *p = *pp;
            if (p->wait == RD_CWAIT_MAP && p->map_gen < t->gen) {
                if (t->wake_ok && t->slot[slot] >= 0
                    && t->slot[slot] != p->node)
                {
                    rd_buf_reset(&p->reply);
                    p->type = 0;
                    p->wait = RD_CWAIT_NONE;
                } else {
                    *pp = p->next_park;
                    l->nparked--;
                    rd_csess_unparked(cs, p);
                    p->next_park = NULL;
                    *ft = p;
                    ft = &p->next_park;
                    continue;
                }
            } else if (p->wait == RD_CWAIT_MAP) {
                again = 1;
            }
            last = p;
            pp = &p->next_park;
        }
        l->tail = last;
        rd_clane_gc(cs, slot);
        while (failed && !s->conn->closed) {
            rd_cpart_t *p = failed;
            failed = p->next_park;
            p->next_park = NULL;
            rd_cpart_final(p);
        }
        rd_clane_run(cs, slot);
    }
    free(slots);

    if (!s->conn->closed) {
        rd_csess_drain(cs);
    }
    if (again && !s->conn->closed) {
        rd_csess_wait(cs);
    }
}

/* Wait for the next map: the parts parked for one, the held requests
 * that need the first one. */
static void
rd_csess_wait(rd_csess_t *cs)
{
    rd_ctopo_t *t = cs->topo;

    if (!cs->waiting) {
        cs->waiting = 1;
        cs->prev_waiter = NULL;
        cs->next_waiter = t->waiters;
        if (t->waiters) {
            t->waiters->prev_waiter = cs;
        }
        t->waiters = cs;
    }
    rd_ctopo_refresh(t, cs);
}

static void
rd_csess_unwait(rd_csess_t *cs)
{
    rd_ctopo_t *t = cs->topo;
    if (!cs->waiting) {
        return;
    }
    if (cs->prev_waiter) {
        cs->prev_waiter->next_waiter = cs->next_waiter;
    } else {
        t->waiters = cs->next_waiter;
    }
    if (cs->next_waiter) {
        cs->next_waiter->prev_waiter = cs->prev_waiter;
    }
    cs->waiting = 0;
    cs->next_waiter = cs->prev_waiter = NULL;
}

static void
rd_csess_cleanup(rd_session_t *s, void *data)
{
    rd_csess_t *cs = data;

    rd_csess_unwait(cs);
    for (size_t i = 0; i < cs->nconns; i++) {
        if (cs->conns[i]) {
            rd_upconn_free(&cs->conns[i]->uc);
            free(cs->conns[i]);
        }
    }
    free(cs->conns);
    free(cs->lanes);
    rd_buf_wipe(&cs->auth);
    rd_buf_wipe(&cs->prev_auth);
    free(cs);
}

static rd_csess_t *
rd_csess_get(rd_session_t *s)
{
    rd_csess_t *cs = rd_session_ctx(s, rd_cluster_module);
    if (cs == NULL) {
        cs = rd_calloc(1, sizeof(*cs));
        cs->session = s;
        cs->topo = rd_ctopo_find(s->worker, s->database);
        cs->last_node = -1;
        rd_session_ctx(s, rd_cluster_module) = cs;
        rd_session_cleanup_add(s, rd_csess_cleanup, cs);
    }
    return cs;
}

#define RD_CLUSTER_KEYS_SMALL 16

/* The slot all keys of r hash to: >= 0, -1 keyless (or keys Redis will
 * refuse anyway), -2 keys in different slots. */
static int
rd_cluster_request_slot(const rd_command_t *cmd, rd_request_t *r)
{
    size_t small[RD_CLUSTER_KEYS_SMALL];
    size_t *idx = small;
    int n = rd_command_keys(cmd, r->argc, r->argv, idx, rd_countof(small));
    int slot = -1;

    if (n > (int)rd_countof(small)) {
        idx = rd_alloc((size_t)n * sizeof(size_t));
        n = rd_command_keys(cmd, r->argc, r->argv, idx, (size_t)n);
    }
    for (int i = 0; i < n; i++) {
        int s = (int)rd_cluster_key_slot(r->argv[idx[i]].data,
                                         r->argv[idx[i]].len);
        if (slot >= 0 && s != slot) {
            slot = -2;
            break;
        }
        slot = s;
    }
    if (idx != small) {
        free(idx);
    }
    return slot;
}

static int
rd_cluster_filter(rd_session_t *s, rd_request_t *r)
{
    if (s->database->mode != RD_DB_CLUSTER) {
        return RD_DECLINED;
    }
    if (rd_cluster_is_unsupported(r)) {
        rd_request_error(r, "ERR redoubt: command not supported");
        return RD_DONE;
    }
    return RD_DECLINED;
}

static int
rd_cluster_route(rd_session_t *s, rd_request_t *r)
{
    if (s->database->mode != RD_DB_CLUSTER) {
        return RD_DECLINED;
    }
    rd_csess_t *cs = rd_csess_get(s);
    rd_ctopo_t *t = cs->topo;
    const rd_command_t *cmd = rd_command_lookup(r->argc, r->argv);
    const char *name = cmd ? cmd->name : "";
    rd_ckind_t kind = RD_CK_DIRECT;
    int slot = -1;

    if (strcmp(name, "dbsize") == 0) {
        kind = RD_CK_SUM;
    } else if (strcmp(name, "keys") == 0) {
        kind = RD_CK_KEYS;
    } else if (strcmp(name, "flushdb") == 0 || strcmp(name, "flushall") == 0
               || strcmp(name, "script|flush") == 0)
    {
        kind = RD_CK_ALLOK;
    } else if (strcmp(name, "script|load") == 0) {
        kind = RD_CK_SAME;
    } else if (strcmp(name, "script|exists") == 0) {
        kind = RD_CK_AND;
    } else if (strcmp(name, "auth") == 0) {
        kind = RD_CK_AUTH;
    } else if (strcmp(name, "mget") == 0
               && rd_command_arity_ok(cmd, r->argc))
    {
        kind = RD_CK_MGET;
    } else if (cmd) {
        slot = rd_cluster_request_slot(cmd, r);
        if (slot == -2) {
            rd_request_error(r, "CROSSSLOT Keys in request don't hash to "
                             "the same slot");
            return RD_DONE;
        }
    }

    if (t->ready && t->conf->refresh_interval > 0
        && s->worker->loop.now - t->refreshed_at
           >= (rd_msec_t)t->conf->refresh_interval)
    {
        rd_ctopo_refresh(t, cs);
    }

    rd_creq_t *cr = rd_creq_new(cs, r, kind, kind == RD_CK_DIRECT);
    if (kind == RD_CK_DIRECT) {
        cr->parts[0].slot = slot;
    } else if (kind != RD_CK_AUTH) {
        r->upstream = "(all masters)";
    }
    /* A barrier: not confined to one slot (a split MGET: keys in more
     * than one). */
    cr->barrier = slot < 0 && !(kind == RD_CK_MGET
                                && rd_cluster_request_slot(cmd, r) >= 0);
    if (cs->wait_head || rd_creq_held(cr)) {
        rd_csess_hold(cs, cr);
        return RD_AGAIN;
    }
    if (rd_creq_start(cr) != 0) {
        rd_request_error(r, "CLUSTERDOWN Hash slot not served");
        return RD_DONE;
    }
    return RD_AGAIN;
}

/* --- topology refresh ------------------------------------------------------ */

static void rd_ctopo_try_next(rd_ctopo_t *t);

static int
rd_ctopo_reply(rd_upconn_t *uc, void *data, const char *p, size_t n,
               int last)
{
    rd_ctopo_t *t = uc->owner;

    if (data == &rd_cluster_auth_marker) {
        /* Kept when it is an error: it explains a NOAUTH that follows. */
        size_t k = strlen(t->auth_error);
        if ((k > 0 || (n > 0 && p[0] == '-'))
            && k + n < sizeof(t->auth_error))
        {
            memcpy(t->auth_error + k, p, n);
            t->auth_error[k + n] = '\0';
        }
        return 0;
    }
    rd_buf_append(&t->reply, p, n);
    if (!last) {
        return 0;
    }

    rd_cluster_range_t *ranges = NULL;
    const char *err = NULL;
    const rd_cnode_t *asked = t->nodes[t->cand[t->tried]];
    int nr = rd_cluster_parse_slots(rd_buf_rpos(&t->reply),
                                    rd_buf_used(&t->reply), asked->host,
                                    &ranges, &err);
    if (nr < 0) {
        if (t->auth_error[0] == '-') {
            size_t k = strcspn(t->auth_error, "\r\n");
            snprintf(t->why, sizeof(t->why), "%s: AUTH as \"%s\": %.*s",
                     asked->text, t->ruser, (int)k - 1, t->auth_error + 1);
        } else if (rd_buf_used(&t->reply) > 1
                   && rd_buf_rpos(&t->reply)[0] == '-')
        {
            size_t k = rd_buf_used(&t->reply) - 3;
            snprintf(t->why, sizeof(t->why), "%s: %.*s", asked->text,
                     (int)(k < 200 ? k : 200), rd_buf_rpos(&t->reply) + 1);
        } else {
            snprintf(t->why, sizeof(t->why), "%s: CLUSTER SLOTS: %s",
                     asked->text, err);
        }
        rd_upconn_close(uc);
        rd_ctopo_try_next(t);
        return -1;
    }

    for (size_t i = 0; i < RD_CLUSTER_SLOTS; i++) {
        t->slot[i] = -1;
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        t->nodes[i]->master = 0;
    }
    for (int i = 0; i < nr; i++) {
        int node = rd_ctopo_node(t, ranges[i].host, strlen(ranges[i].host),
                                 ranges[i].port);
        if (node < 0) {
            continue;
        }
        t->nodes[node]->master = 1;
        for (unsigned s = ranges[i].start; s <= ranges[i].end; s++) {
            t->slot[s] = node;
        }
    }
    free(ranges);
    rd_log_debug("database \"%s\": cluster map from %s: %d slot ranges",
                 t->db->name, asked->text, nr);
    rd_upconn_close(uc);
    rd_ctopo_refresh_done(t, 1);
    return -1;
}

static void
rd_ctopo_fail(rd_upconn_t *uc, const char *why)
{
    rd_ctopo_t *t = uc->owner;
    snprintf(t->why, sizeof(t->why), "%s: %s",
             t->nodes[t->cand[t->tried]]->text, why);
    uc->count = 0;
    rd_ctopo_try_next(t);
}

static const rd_upconn_handler_t rd_ctopo_handler = {
    rd_ctopo_reply, rd_ctopo_fail
};

static void
rd_ctopo_try_next(rd_ctopo_t *t)
{
    static const char slots[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";

    t->rc.count = 0;
    for (t->tried++; t->tried < t->ncand; t->tried++) {
        rd_cnode_t *n = t->nodes[t->cand[t->tried]];
        rd_buf_reset(&t->reply);
        t->auth_error[0] = '\0';
        t->rc.addr = &n->addr;
        t->rc.host = n->host;
        t->rc.user = t->ruser;
        if (rd_upconn_connect(&t->rc) != 0) {
            snprintf(t->why, sizeof(t->why), "%s: %s", n->text,
                     strerror(errno));
            continue;
        }
        if (rd_buf_used(&t->rauth) > 0) {
            rd_upconn_send(&t->rc, rd_buf_rpos(&t->rauth),
                           rd_buf_used(&t->rauth), &rd_cluster_auth_marker);
        }
        rd_upconn_send(&t->rc, slots, sizeof(slots) - 1,
                       &rd_cluster_slots_marker);
        return;
    }
    rd_log_warn("database \"%s\": cannot learn the cluster map: %s",
                t->db->name, t->why);
    rd_ctopo_refresh_done(t, 0);
}

static void
rd_ctopo_refresh_done(rd_ctopo_t *t, int ok)
{
    t->refreshing = 0;
    rd_buf_wipe(&t->rauth);
    rd_buf_free(&t->reply);
    if (ok) {
        t->ready = 1;
    }
    rd_stats_cluster_map(t->db, t->ready ? 1 : -1);
    t->refreshed_at = t->worker->loop.now;

    /* The waiting sessions go on from the event loop, not inside whatever
     * started this refresh (it may end at once when no node can be
     * reached, in the middle of a session's send). */
    t->gen++;
    t->wake_ok = ok;
    snprintf(t->wake_why, sizeof(t->wake_why), "%s", t->why);
    if (t->waiters) {
        rd_timer_add(&t->worker->loop.timers, &t->wake, t->worker->loop.now,
                     0);
    }
}

/* Wake the sessions that waited when the last refresh ended; those that
 * wait again (for a map newer than that one) join a new list. */
static void
rd_ctopo_wake(rd_timer_t *tm)
{
    rd_ctopo_t *t = tm->data;
    rd_csess_t *list = t->waiters;

    t->waiters = NULL;
    while (list) {
        rd_csess_t *cs = list;
        list = cs->next_waiter;
        cs->waiting = 0;
        cs->next_waiter = cs->prev_waiter = NULL;
        if (list) {
            list->prev_waiter = NULL;
        }
        rd_csess_resume(cs);
    }
}

/*
 * Start a refresh unless one is running. The query authenticates as the
 * discovery user, or with the credentials of session cs.
 */
#define RD_CLUSTER_REFRESH_GAP 100    /* ms between refreshes nobody waits
                                          for (node failures, MOVED) */

static void
rd_ctopo_refresh(rd_ctopo_t *t, rd_csess_t *cs)
{
    if (t->refreshing) {
        return;
    }
    if (t->ready && t->waiters == NULL
        && t->worker->loop.now - t->refreshed_at < RD_CLUSTER_REFRESH_GAP)
    {
        return;
    }
    t->refreshing = 1;
    t->why[0] = '\0';

    rd_buf_wipe(&t->rauth);
    if (t->conf->discovery_user) {
        rd_str_t argv[3] = {
            RD_STR("AUTH"),
            { t->conf->discovery_user, strlen(t->conf->discovery_user) },
            { t->conf->discovery_password,
              strlen(t->conf->discovery_password) }
        };
        rd_resp_encode_command(&t->rauth, 3, argv);
        snprintf(t->ruser, sizeof(t->ruser), "%s", t->conf->discovery_user);
    } else {
        if (cs && rd_buf_used(&cs->auth) > 0) {
            rd_buf_append(&t->rauth, rd_buf_rpos(&cs->auth),
                          rd_buf_used(&cs->auth));
        }
        snprintf(t->ruser, sizeof(t->ruser), "%s",
                 cs ? cs->session->db_user : "default");
    }

    /* Candidates: the masters of the current map, then every other node
     * (seeds included). */
    t->cand = rd_realloc(t->cand, (t->nnodes + 1) * sizeof(size_t));
    t->ncand = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < t->nnodes; i++) {
            if ((pass == 0) == (t->nodes[i]->master != 0)) {
                t->cand[t->ncand++] = i;
            }
        }
    }
    t->tried = (size_t)-1;
    rd_ctopo_try_next(t);
}

/* --- worker ------------------------------------------------------------------ */

static int
rd_cluster_init_worker(rd_worker_t *w)
{
    rd_cycle_t *cycle = w->cycle;
    rd_ctopo_t **topos = rd_calloc(cycle->ndatabases + 1, sizeof(*topos));

    for (size_t i = 0; i < cycle->ndatabases; i++) {
        rd_database_t *db = &cycle->databases[i];
        if (db->mode != RD_DB_CLUSTER) {
            continue;
        }
        rd_ctopo_t *t = rd_calloc(1, sizeof(*t));
        t->worker = w;
        t->db = db;
        t->conf = rd_cluster_db_conf(db);
        for (size_t s = 0; s < RD_CLUSTER_SLOTS; s++) {
            t->slot[s] = -1;
        }
        rd_upconn_init(&t->rc, w, db, NULL, NULL, t->ruser,
                       &rd_ctopo_handler, t);
        t->wake.handler = rd_ctopo_wake;
        t->wake.data = t;
        const char *seed = db->addr.text;
        for (size_t k = 0; seed; k++) {
            int node = rd_ctopo_node_text(t, seed, strlen(seed), NULL);
            if (node >= 0) {
                t->nodes[node]->seed = 1;
            } else {
                rd_log_warn("database \"%s\": seed %s is not a numeric "
                            "address, skipped", db->name, seed);
            }
            seed = k < t->conf->nseeds ? t->conf->seeds[k] : NULL;
        }
        topos[i] = t;
    }
    w->ctx[rd_cluster_module.index] = topos;

    /* With a discovery user the map can be learned before any session
     * needs it. */
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        if (topos[i] && topos[i]->conf->discovery_user) {
            rd_ctopo_refresh(topos[i], NULL);
        }
    }
    return RD_OK;
}

static void
rd_cluster_exit_worker(rd_worker_t *w)
{
    rd_ctopo_t **topos = w->ctx[rd_cluster_module.index];
    if (topos == NULL) {
        return;
    }
    for (size_t i = 0; i < w->cycle->ndatabases; i++) {
        rd_ctopo_t *t = topos[i];
        if (t == NULL) {
            continue;
        }
        rd_timer_del(&w->loop.timers, &t->wake);
        rd_upconn_free(&t->rc);
        rd_buf_wipe(&t->rauth);
        rd_buf_free(&t->reply);
        for (size_t k = 0; k < t->nnodes; k++) {
            free(t->nodes[k]);
        }
        free(t->nodes);
        free(t->cand);
        free(t);
    }
    free(topos);
    w->ctx[rd_cluster_module.index] = NULL;
}

static int
rd_cluster_postconfiguration(rd_cycle_t *cycle)
{
    rd_phase_add(cycle, RD_PHASE_FILTER, rd_cluster_filter);
    return rd_phase_add(cycle, RD_PHASE_ROUTE, rd_cluster_route);
}

rd_module_t rd_cluster_module = {
    .name = "cluster",
    .directives = rd_cluster_directives,
    .create_conf = { NULL, NULL, rd_cluster_create_db },
    .init_conf = { NULL, NULL, rd_cluster_init_db },
    .postconfiguration = rd_cluster_postconfiguration,
    .init_worker = rd_cluster_init_worker,
    .exit_worker = rd_cluster_exit_worker,
    .free_request_ctx = rd_creq_free,
};

/*
 * rd_cluster_int.h - the cluster module's private header: the types and
 * functions its files share (rd_cluster.c, rd_cluster_topo.c,
 * rd_cluster_conn.c, rd_cluster_parts.c, rd_cluster_merge.c). Not for
 * other modules.
 */
#ifndef RD_CLUSTER_INT_H
#define RD_CLUSTER_INT_H

#include "rd_core.h"
#include "rd_buf.h"
#include "rd_cluster_slots.h"
#include "rd_session.h"
#include "rd_timer.h"
#include "rd_upstream.h"
#include "rd_worker.h"

extern rd_module_t rd_cluster_module;

/* The module's row of the shared counters (rd_cluster.c, rd_stats.h): a
 * database's slot map in this worker, 1 known, -1 the last attempt failed
 * and none is known, 0 not tried; /healthz reads it. */
enum { RD_CLUSTER_STAT_MAP = 0 };

/* --- configuration -------------------------------------------------------- */

/* cluster.read_from: where the read-only commands of one slot go. */
enum {
    RD_CREAD_MASTER = 0,            /* the slot's master, like the rest */
    RD_CREAD_REPLICA,               /* a replica of it */
    RD_CREAD_PREFER_REPLICA         /* a replica, unless the session's
                                       parts for the slot are on their
                                       way to the master (rd_cpart_node) */
};

typedef struct {
    char    **seeds;                /* "host:port", extra seeds */
    size_t    nseeds;
    char     *discovery_user;
    char     *discovery_password;
    int64_t   refresh_interval;     /* ms */
    int64_t   max_redirects;
    int64_t   tryagain_delay;       /* ms */
    int64_t   read_from;            /* RD_CREAD_* */
} rd_cluster_db_conf_t;

/* --- per-worker topology ------------------------------------------------- */

typedef struct {
    char           host[RD_CLUSTER_HOST_MAX];
    uint16_t       port;
    rd_sockaddr_t  addr;            /* addr.text points to text */
    char           text[RD_CLUSTER_HOST_MAX + 8];
    unsigned       master:1;        /* serves slots in the current map */
    unsigned       seed:1;
    rd_msec_t      down_until;      /* a connection to it just failed */
    /* Only with cluster.read_from other than "master" (the map keeps no
     * replicas otherwise): listed as a replica in the current map, and a
     * master's replicas (node indexes) in the order the map lists them. */
    unsigned       replica:1;
    unsigned       nreplicas;
    int32_t        replicas[RD_CLUSTER_REPLICAS_MAX];
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

/* --- sessions, requests ---------------------------------------------------- */

/* What waits to be sent on a node connection held by a transaction
 * (rd_cconn_send). */
typedef struct {
    size_t          len;
    void           *data;
    unsigned        hold:1;         /* a transaction's MULTI: hold again */
} rd_cheld_t;

typedef struct {
    rd_upconn_t     uc;
    rd_csess_t     *cs;
    size_t          node;
    /* A transaction's MULTI is on its way and the node has not answered
     * it yet (rd_cluster_multi.c): what the session sends meanwhile
     * waits here, in order, so that nothing joins the transaction. */
    struct rd_cpart_s *hold;
    rd_buf_t        held;           /* the bytes, in order */
    rd_cheld_t     *held_ents;
    size_t          nheld;
    size_t          held_cap;
} rd_cconn_t;

typedef enum {
    RD_CK_DIRECT = 0,      /* one node; the reply streams to the client */
    RD_CK_MGET,            /* split by slot, merged in order */
    RD_CK_SPLIT_SUM,       /* split by slot, added up (DEL, EXISTS, ...) */
    RD_CK_SPLIT_OK,        /* split by slot, +OK from all (MSET) */
    RD_CK_SUM,             /* DBSIZE */
    RD_CK_KEYS,            /* KEYS */
    RD_CK_ALLOK,           /* FLUSHDB, FLUSHALL, SCRIPT FLUSH */
    RD_CK_SAME,            /* SCRIPT LOAD */
    RD_CK_AND,             /* SCRIPT EXISTS */
    RD_CK_ONEOK,           /* +OK if one master says so (SCRIPT KILL) */
    RD_CK_AUTH,            /* AUTH on every connection of the session */
    RD_CK_CUSTOM           /* parts made by cr->setup, merged by cr->merge */
} rd_ckind_t;

typedef struct rd_creq_s rd_creq_t;
typedef struct rd_cpart_s rd_cpart_t;

/* RD_CK_CUSTOM: make cr's parts with the map at hand (rd_creq_parts(),
 * then set each part's slot or node and, when it is not the request's
 * own bytes, its cmd); 0, or -1 when no node serves it. */
typedef int (*rd_creq_setup_pt)(rd_creq_t *cr);
/* Merge the parts' final replies (none is an error: the first error goes
 * to the client as it is) into out; -1 when they cannot be merged (the
 * client gets "the cluster nodes answered differently" then). Also
 * allowed for the other fan-out kinds, instead of their own merge. */
typedef int (*rd_creq_merge_pt)(rd_creq_t *cr, rd_buf_t *out);
/* A request that needs its own setup and merge (rd_cluster_kinds): set
 * cr->setup, cr->merge and cr->data before it is submitted; 0, or -1
 * when r was answered (a bad argument). */
typedef int (*rd_creq_prepare_pt)(rd_creq_t *cr);

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
    size_t         *pos;            /* split: argv positions of the keys */
    size_t          npos;
    rd_timer_t      retry;
    /* A whole transaction, MULTI ... EXEC (rd_cluster_multi.c): the
     * replies that come before the EXEC's, those of them still due for
     * the current send, and whether one of them (held in reply) stands
     * for the EXEC's. 0 for every other part. */
    uint32_t        pre;
    uint32_t        pre_left;
    unsigned        pre_err:1;
    /* cluster.read_from: this part went to a replica; it goes to the
     * master from now on (a MOVED, or it never reached the replica). */
    unsigned        on_replica:1;
    unsigned        master_only:1;
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
    /* Sets state on the node connection that a later part depends on
     * (WATCH, for its EXEC): after MOVED or ASK it is sent again only
     * while nothing of its slot went out behind it, else it would run
     * after them (on another node than their own). */
    unsigned        sets_state:1;
    rd_creq_setup_pt setup;         /* RD_CK_CUSTOM */
    rd_creq_merge_pt merge;         /* NULL: the kind's own merge */
    void            *data;          /* for setup and merge; freed with
                                       free_data when the request ends */
    void           (*free_data)(void *data);
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
    struct rd_cmulti_s *multi;      /* rd_cluster_multi.c; NULL: none */
    struct rd_clocal_s *local;      /* rd_cluster_local.c; NULL: none */
    struct rd_cpubsub_s *pubsub;    /* rd_cluster_pubsub.c; NULL: none */
};

/* Marker for replies nobody reads (a replayed AUTH, ASKING). */
extern char rd_cluster_discard;

/* rd_cluster_topo.c */
extern const rd_upconn_handler_t rd_ctopo_handler;

rd_ctopo_t *rd_ctopo_find(rd_worker_t *w, rd_database_t *db);
int rd_ctopo_node_text(rd_ctopo_t *t, const char *p, size_t n,
                       const rd_cnode_t *asked);
void rd_ctopo_wake(rd_timer_t *tm);
void rd_ctopo_refresh(rd_ctopo_t *t, rd_csess_t *cs);

/* rd_cluster_conn.c */
int rd_cpart_wait_map(rd_cpart_t *p);
rd_cconn_t *rd_csess_conn(rd_csess_t *cs, size_t i);
int rd_csess_any_node(rd_csess_t *cs);
/* Queue bytes whose reply belongs to data on cc, or hold them while a
 * transaction's MULTI waits for its reply; hold: these bytes are such a
 * MULTI (the connection is held from then on). */
void rd_cconn_send(rd_cconn_t *cc, const char *b, size_t n, void *data,
                   int hold);
/* The MULTI that held cc was answered: send what waited, up to the next
 * transaction's MULTI. */
void rd_cconn_release(rd_cconn_t *cc);
/* The session ends: free cc. */
void rd_cconn_free(rd_cconn_t *cc);

/* rd_cluster_parts.c */
void rd_cpart_set_error(rd_cpart_t *p, const char *msg);
uint64_t rd_cpart_seq(const rd_cpart_t *p);
rd_clane_t *rd_clane_find(rd_csess_t *cs, int slot);
void rd_clane_gc(rd_csess_t *cs, int slot);
void rd_cpart_park(rd_cpart_t *p, unsigned wait);
void rd_cpart_arrived(rd_cpart_t *p);
void rd_csess_unparked(rd_csess_t *cs, rd_cpart_t *p);
void rd_clane_back(rd_cpart_t *p);
void rd_clane_run(rd_csess_t *cs, int slot);
int *rd_csess_parked_slots(rd_csess_t *cs, size_t *n);
void rd_cpart_retry_handler(rd_timer_t *tm);
void rd_cpart_send(rd_cpart_t *p);
int rd_cpart_redirect(rd_cpart_t *p);

/* rd_cluster_merge.c */
void rd_cpart_final(rd_cpart_t *p);
/* RANDOMKEY: every master, a random one of the keys they name. */
int rd_crandom_prepare(rd_creq_t *cr);
/* PUBSUB CHANNELS and SHARDCHANNELS: every master, the channels without
 * duplicates; NUMSUB and SHARDNUMSUB: every master, the counts added up
 * channel by channel. */
int rd_cpsinfo_channels_prepare(rd_creq_t *cr);
int rd_cpsinfo_numsub_prepare(rd_creq_t *cr);

/* rd_cluster_scan.c: SCAN over every master (its cursor, rd_cluster_scan.c) */
int rd_cscan_prepare(rd_creq_t *cr);
/* The slot of the keys a SCAN MATCH pattern can match, or -1 when they
 * may be in any slot. */
int rd_cscan_pattern_slot(const char *p, size_t n);

/* rd_cluster.c */
/* A new request of the session for r (nparts parts, each from
 * rd_cpart_init), in the session's order. */
rd_creq_t *rd_creq_new(rd_csess_t *cs, rd_request_t *r, rd_ckind_t kind,
                       size_t nparts);
/* Give cr n fresh parts (rd_cpart_init: no slot, no node). */
void rd_creq_parts(rd_creq_t *cr, size_t n);
void rd_cpart_init(rd_creq_t *cr, rd_cpart_t *p);
/* One part per master of the current map (none when none is known). */
void rd_creq_all_masters(rd_creq_t *cr);
/* Route cr as rd_cluster_route does: hold it back (the rule at the top)
 * or start it. RD_AGAIN, or RD_DONE when it was answered. */
int rd_creq_submit(rd_creq_t *cr);
/* The slot all keys of r hash to: >= 0, -1 keyless (or keys Redis will
 * refuse anyway), -2 keys in different slots. */
int rd_cluster_request_slot(const rd_request_t *r);
/* rd_cluster_route after the Pub/Sub step: a request that waited its
 * turn behind the session's subscribe-family commands. */
int rd_cluster_route_rest(rd_csess_t *cs, rd_request_t *r);
void rd_csess_drain(rd_csess_t *cs);
void rd_csess_resume(rd_csess_t *cs);
void rd_csess_wait(rd_csess_t *cs);

/* rd_cluster_multi.c: MULTI/EXEC/DISCARD/WATCH/UNWATCH and the commands
 * queued between them. RD_DECLINED when r is not its business. */
int rd_cmulti_route(rd_csess_t *cs, rd_request_t *r);
/* RESET: no transaction, nothing watched (UNWATCH to every node a WATCH
 * went to). */
void rd_cmulti_reset(rd_csess_t *cs);
/* A MULTI was answered and its EXEC or DISCARD not yet routed. */
int rd_cmulti_open(const rd_csess_t *cs);
/* The session ends: free cs->multi. */
void rd_cmulti_free(rd_csess_t *cs);
/* The length of the MULTI a transaction part's command starts with. */
extern const size_t rd_cmulti_multi_len;
/* p (p->pre > 0) goes to node now: 0, or -1 when it was answered. */
int rd_cmulti_transmit(rd_cpart_t *p, int node);
/* A reply chunk for p while p->pre_left > 0 or p->pre_err: 1 taken, 0
 * the part's final reply (*n is 0 when the held error stands for it). */
int rd_cmulti_pre_reply(rd_cpart_t *p, const char *b, size_t *n, int last);
/* A node connection of the session failed. */
void rd_cmulti_conn_failed(rd_csess_t *cs);
void rd_cmulti_watch_sent(rd_cpart_t *p, int node);

/* rd_cluster_local.c: the commands redoubt answers itself (HELLO, CLIENT,
 * SELECT, INFO, ...) or spreads its own way. RD_DECLINED for the rest. */
int rd_clocal_route(rd_csess_t *cs, rd_request_t *r);
/* RESET (RD_CONN_RESET): the session's transaction, subscriptions,
 * name, CLIENT flags and AUTH end, and every node connection of the
 * session gets the RESET (new ones send it first, as an AUTH). */
int rd_clocal_reset(rd_csess_t *cs, rd_request_t *r);
/* The session ends: free cs->local. */
void rd_clocal_free(rd_csess_t *cs);
/* A new connection of the session to a node: queue the session's
 * CLIENT NO-EVICT / NO-TOUCH on it (after its AUTH). */
void rd_clocal_replay(rd_csess_t *cs, rd_cconn_t *cc);
/* The session's CLIENT ID (HELLO's id), unique in the gateway. */
uint64_t rd_clocal_client_id(const rd_session_t *s);

/* rd_cluster_pubsub.c: the subscribe family, and the other commands of
 * a subscribed session. RD_DECLINED when r is not its business. */
int rd_cpubsub_route(rd_csess_t *cs, rd_request_t *r);
/* A refresh ended: subscribe where the new map says. */
void rd_cpubsub_resume(rd_csess_t *cs);
/* RESET: every subscription ends, without a reply of its own. */
void rd_cpubsub_reset(rd_csess_t *cs);
/* The session ends: free cs->pubsub. */
void rd_cpubsub_free(rd_csess_t *cs);

/* rd_cluster_info.c: INFO's replies of every master merged into one. */
int rd_cinfo_merge(rd_creq_t *cr, rd_buf_t *out);

#endif /* RD_CLUSTER_INT_H */

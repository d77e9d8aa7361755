/*
 * rd_cluster.c - the cluster module: a whole Redis Cluster behind one
 * address ("rediss://host:port?mode=cluster"). It is the router
 * (rd_router_t, rd_cycle.h) of the mode=cluster databases; the core's
 * route module calls its filter and route handlers.
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
 * master, an MGET, DEL, MSET, ... split over several slots - are
 * barriers: nothing of the session crosses them, whatever the slot. One
 * rule keeps both:
 *
 *   a part (a command, or one slot's share of a split command) for slot S is
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
 * Replica reads (cluster.read_from, "master" by default: nothing below
 * happens then, and the map keeps no replicas). With "replica" or
 * "prefer-replica" the map also keeps each master's replicas from CLUSTER
 * SLOTS, every new connection of a session sends READONLY after its AUTH
 * (reply not read), and a read-only command (the command table's flag)
 * routed by its keys - one slot, or one slot's part of a split MGET or
 * EXISTS - may go to a replica of the slot's master: the session's one
 * (its id picks among them), not one whose connection just failed, else
 * the master. The lane rule above still decides: a read goes to a node
 * other than the one the session's parts for the slot are in flight to
 * only once they are back. "replica" waits for them (a read behind the
 * session's write to the slot goes to the replica after the write's
 * reply, and may not see it yet: replicas lag); "prefer-replica" sends
 * the read where they went, so a read pipelined behind a write to its
 * slot is served by the master. Transactions, keyless, fan-out and
 * other commands go to masters as before. A MOVED from a replica, or a
 * replica that could not be reached (rd_cpart_wait_map), sends that read
 * to the master (p->master_only); one that failed after it was sent gets
 * the usual error. Keyless commands never pick a replica's connection.
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
 * Special commands (as in Teleport's Redis Cluster support, and as the
 * command table's routing tips say: rd_cluster_kind): DBSIZE sums, KEYS
 * merges, FLUSHDB/FLUSHALL/SCRIPT FLUSH/SCRIPT LOAD and FUNCTION
 * LOAD/DELETE/FLUSH/RESTORE run on every master (one answer when all
 * agree: not atomic, a master that refused keeps its state), SCRIPT
 * EXISTS answers 1 only where every master has the script (so that
 * EVALSHA works whatever its keys; EVAL caches its script on its keys'
 * master only), FUNCTION KILL and SCRIPT KILL go to every master (+OK
 * when one stopped its function or script, else the first error). MGET is split by slot and
 * merged back in order; DEL, UNLINK, EXISTS and TOUCH are split and
 * summed, MSET is split and +OK when every part is (not atomic across
 * slots: each slot's part is). RANDOMKEY asks every master and answers
 * a key of a random one that has keys. SCAN walks the masters one at a
 * time with a cursor that names the master (rd_cluster_scan.c). PUBSUB
 * CHANNELS/SHARDCHANNELS join every master's channels without
 * duplicates, NUMPAT sums and NUMSUB/SHARDNUMSUB sum per channel (the
 * subscribers of the masters: those connected to replicas are not seen).
 * FUNCTION LIST/DUMP/STATS come from one master, FCALL and EVAL route
 * by their keys. Fan-out requests go to all nodes at once; one failed
 * part fails the whole command. AUTH is sent to every node the session
 * is connected to, and so is RESET (rd_cluster_local.c), which also ends
 * the session's transaction and subscriptions. Commands that cannot be done correctly through a
 * gateway to a cluster are refused (one table, rd_cluster_unsupported).
 * SPUBLISH routes by its shard channel's slot (no key for COMMAND
 * GETKEYS, but Redis Cluster routes it so); SUBSCRIBE and the rest of the
 * family, and everything a subscribed session sends, go to
 * rd_cluster_pubsub.c first (rd_cluster_route).
 *
 * Files: rd_cluster.c (this: configuration, the refused commands, the
 * fan-out kinds, routing, the held queue, the worker hooks),
 * rd_cluster_topo.c (the slot map and its refresh), rd_cluster_conn.c
 * (node connections), rd_cluster_parts.c (lanes, sending, redirections),
 * rd_cluster_merge.c (fan-out replies), rd_cluster_scan.c (SCAN),
 * rd_cluster_multi.c (MULTI/EXEC/WATCH: the session's transaction,
 * queued here and sent to one node at EXEC), rd_cluster_local.c (AUTH,
 * HELLO, CLIENT, SELECT, READONLY answered for the session; TIME,
 * CONFIG, SLOWLOG, LATENCY, MEMORY from one or every master),
 * rd_cluster_info.c (INFO merged over the masters),
 * rd_cluster_pubsub.c (the subscribe family on subscriber connections
 * of the session's own, and subscribed mode);
 * rd_cluster_int.h declares what they share.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "rd_cluster_int.h"
#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_resp.h"
#include "rd_session.h"
#include "rd_stats.h"

rd_module_t rd_cluster_module;

static int rd_cluster_filter(rd_session_t *s, rd_request_t *r);
static int rd_cluster_route(rd_session_t *s, rd_request_t *r);

static const rd_router_t rd_cluster_router = {
    "cluster", rd_cluster_filter, rd_cluster_route
};

/* --- configuration -------------------------------------------------------- */

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

static const char *
rd_cluster_set_read_from(rd_conf_t *cf, const config_setting_t *s,
                         const rd_directive_t *d, void *conf)
{
    static const char *const names[] = {
        [RD_CREAD_MASTER] = "master",
        [RD_CREAD_REPLICA] = "replica",
        [RD_CREAD_PREFER_REPLICA] = "prefer-replica",
    };
    rd_cluster_db_conf_t *c = conf;
    const char *v;

    (void)cf;
    (void)d;
    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        v = config_setting_get_string(s);
        for (size_t i = 0; i < rd_countof(names); i++) {
            if (strcmp(v, names[i]) == 0) {
                c->read_from = (int64_t)i;
                return NULL;
            }
        }
    }
    return "must be \"master\", \"replica\" or \"prefer-replica\"";
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
    { "cluster.read_from", RD_CONF_DB, rd_cluster_set_read_from, 0, NULL },
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
    /* This module routes the cluster databases (rd_router_t). */
    if (db->mode == RD_DB_CLUSTER) {
        db->router = &rd_cluster_router;
    }
    if (db->mode != RD_DB_CLUSTER
        && (c->nseeds || c->discovery_user || c->discovery_password
            || c->read_from != RD_CREAD_MASTER))
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

/* The reference's list ("Cluster mode commands" in DESIGN.md). Shorten
 * it as features land. */
static const char *const rd_cluster_unsupported[] = {
    "acl|deluser",
    "acl|dryrun",
    "acl|getuser",
    "acl|list",
    "acl|load",
    "acl|log",
    "acl|save",
    "acl|setuser",
    "acl|users",
    "asking",
    "client|caching",
    "client|getredir",
    "client|kill",
    "client|pause",
    "client|reply",
    "client|tracking",
    "client|trackinginfo",
    "client|unblock",
    "client|unpause",
    "cluster",
    "debug",
    "migrate",
    "module",
    "monitor",
    "pfdebug",
    "pfselftest",
    "psync",
    "replconf",
    "replicaof",
    "role",
    "script|debug",
    "shutdown",
    "slaveof",
    "sync",
    "wait",
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

/* --- how a command is spread over the masters ------------------------- */

/*
 * The fan-out kind comes from the command's routing tips in the command
 * table (Redis's request_policy and response_policy, which redis-cli and
 * the cluster clients follow too). request_policy all_shards or
 * all_nodes sends the command to every master (redoubt sends nothing to
 * replicas), and the replies are
 *   response_policy agg_sum           added up           RD_CK_SUM (DBSIZE)
 *   response_policy agg_logical_and   ANDed, element by element
 *                                                        RD_CK_AND (SCRIPT
 *                                                        EXISTS)
 *   response_policy all_succeeded     one +OK for all    RD_CK_ALLOK
 *                                                        (FLUSHDB, FLUSHALL,
 *                                                        SCRIPT FLUSH,
 *                                                        FUNCTION DELETE,
 *                                                        FLUSH, RESTORE)
 *   response_policy one_succeeded     the first +OK, else the first error
 *                                                        RD_CK_ONEOK
 *                                                        (FUNCTION KILL,
 *                                                        SCRIPT KILL)
 *   no response_policy                arrays joined      RD_CK_KEYS (KEYS)
 * request_policy multi_shard is split by slot, each slot's keys (with
 * the arguments that follow each key: MSET's values) in one part, when
 * the keys are all the arguments after the name, at one step, and are in
 * more than one slot; the replies are
 *   no response_policy                merged back in the keys' order
 *                                                        RD_CK_MGET (MGET)
 *   response_policy agg_sum           added up           RD_CK_SPLIT_SUM
 *                                                        (DEL, UNLINK,
 *                                                        EXISTS, TOUCH)
 *   response_policy all_succeeded     one +OK for all    RD_CK_SPLIT_OK
 *                                                        (MSET)
 * A key repeated goes to its slot's part with its repetitions, so each
 * part counts as Redis does (DEL k k deletes one, EXISTS k k counts two).
 * A split that lands in one slot is an ordinary command for that slot.
 * Other multi_shard policies (agg_min: MSETNX) need the keys in one
 * slot: they go to one node, and keys in several slots get -CROSSSLOT,
 * as do the commands without tips whose keys must share a slot (RENAME,
 * SUNIONSTORE, EVAL, ...). The other all_shards policies (agg_min,
 * special) go to one node. AUTH goes to every connection of the session
 * (RD_CK_AUTH); rd_cluster_kinds has redoubt's exceptions to the tips,
 * looked up before them (also for commands without tips: PUBSUB
 * CHANNELS, NUMSUB, ...), and the commands with a setup and merge of
 * their own (RD_CK_CUSTOM: SCAN, rd_cluster_scan.c; RANDOMKEY and PUBSUB,
 * rd_cluster_merge.c). Commands the cluster router refuses (above)
 * never get here, whatever their tips.
 */

#define RD_CLUSTER_TIPS_REQ (RD_TIP_REQ_ALL_NODES | RD_TIP_REQ_ALL_SHARDS \
                             | RD_TIP_REQ_MULTI_SHARD | RD_TIP_REQ_SPECIAL)
#define RD_CLUSTER_TIPS_RESP (RD_TIP_RESP_ONE_SUCCEEDED                 \
                              | RD_TIP_RESP_ALL_SUCCEEDED               \
                              | RD_TIP_RESP_AGG_LOGICAL_AND             \
                              | RD_TIP_RESP_AGG_LOGICAL_OR              \
                              | RD_TIP_RESP_AGG_MIN | RD_TIP_RESP_AGG_MAX \
                              | RD_TIP_RESP_AGG_SUM | RD_TIP_RESP_SPECIAL)

static const struct {
    const char         *name;   /* a command table row's name */
    rd_ckind_t          kind;
    rd_creq_prepare_pt  prepare;        /* RD_CK_CUSTOM */
} rd_cluster_kinds[] = {
    /* all_succeeded, but the answer is the script's SHA1 or the
     * library's name, not +OK: every master must give the same one. */
    { "function|load", RD_CK_SAME, NULL },
    { "script|load", RD_CK_SAME, NULL },
    /* The first node's answer is the answer. */
    { "ping", RD_CK_DIRECT, NULL },
    /* A random key of a random master that has one. */
    { "randomkey", RD_CK_CUSTOM, rd_crandom_prepare },
    /* The cursor names the master (rd_cluster_scan.c). */
    { "scan", RD_CK_CUSTOM, rd_cscan_prepare },
    /* No tips in Redis 7.0, but each master knows only its own
     * subscribers: every master, the channels joined without
     * duplicates, the counts added up (per channel for NUMSUB). */
    { "pubsub|channels", RD_CK_CUSTOM, rd_cpsinfo_channels_prepare },
    { "pubsub|numpat", RD_CK_SUM, NULL },
    { "pubsub|numsub", RD_CK_CUSTOM, rd_cpsinfo_numsub_prepare },
    { "pubsub|shardchannels", RD_CK_CUSTOM, rd_cpsinfo_channels_prepare },
    { "pubsub|shardnumsub", RD_CK_CUSTOM, rd_cpsinfo_numsub_prepare },
};

/* For a split kind, the step between r's keys (2: MSET's key value
 * pairs) when they are all its arguments after the name, else 0. */
static size_t
rd_cluster_split_step(const rd_request_t *r)
{
    if (r->nkeys < 2 || r->keys[0] != 1 || r->keys[1] <= r->keys[0]) {
        return 0;
    }
    size_t step = r->keys[1] - r->keys[0];
    if (r->argc != 1 + (size_t)r->nkeys * step) {
        return 0;
    }
    for (int j = 0; j < r->nkeys; j++) {
        if (r->keys[j] != 1 + (size_t)j * step) {
            return 0;
        }
    }
    return step;
}

static rd_ckind_t
rd_cluster_kind(const rd_request_t *r, rd_creq_prepare_pt *prepare)
{
    const rd_command_t *c = r->cmd;

    *prepare = NULL;
    if (r->conncmd.kind == RD_CONN_AUTH) {
        return RD_CK_AUTH;
    }
    if (c == NULL) {
        return RD_CK_DIRECT;
    }
    /* The exceptions first: some have no tips at all (PUBSUB CHANNELS,
     * NUMSUB, ...: Redis 7.0 gives them none). */
    for (size_t i = 0; i < rd_countof(rd_cluster_kinds); i++) {
        if (strcmp(c->name, rd_cluster_kinds[i].name) == 0) {
            *prepare = rd_cluster_kinds[i].prepare;
            return rd_cluster_kinds[i].kind;
        }
    }
    if ((c->tips & RD_CLUSTER_TIPS_REQ) == 0) {
        return RD_CK_DIRECT;
    }
    uint32_t resp = c->tips & RD_CLUSTER_TIPS_RESP;
    if (c->tips & RD_TIP_REQ_MULTI_SHARD) {
        rd_ckind_t k = resp == 0 ? RD_CK_MGET
                       : resp == RD_TIP_RESP_AGG_SUM ? RD_CK_SPLIT_SUM
                       : resp == RD_TIP_RESP_ALL_SUCCEEDED ? RD_CK_SPLIT_OK
                       : RD_CK_DIRECT;
        /* nkeys is -1 when the arity is broken: one node answers; keys in
         * one slot go there as they are. */
        if (k == RD_CK_DIRECT || rd_cluster_split_step(r) == 0
            || rd_cluster_request_slot(r) != -2)
        {
            return RD_CK_DIRECT;
        }
        return k;
    }
    if (c->tips & RD_TIP_REQ_SPECIAL) {
        return RD_CK_DIRECT;    /* only in rd_cluster_kinds */
    }
    switch (resp) {
    case 0:
        return RD_CK_KEYS;
    case RD_TIP_RESP_AGG_SUM:
        return RD_CK_SUM;
    case RD_TIP_RESP_AGG_LOGICAL_AND:
        return RD_CK_AND;
    case RD_TIP_RESP_ALL_SUCCEEDED:
        return RD_CK_ALLOK;
    case RD_TIP_RESP_ONE_SUCCEEDED:
        return RD_CK_ONEOK;
    default:
        return RD_CK_DIRECT;
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
    if (cr->free_data) {
        cr->free_data(cr->data);
    }
    free(cr);
}

/* A part of cr not yet given a slot or a node. */
void
rd_cpart_init(rd_creq_t *cr, rd_cpart_t *p)
{
    p->cr = cr;
    p->slot = -1;
    p->node = -1;
    p->ask_node = -1;
    p->retry.handler = rd_cpart_retry_handler;
    p->retry.data = p;
}

rd_creq_t *
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
        rd_cpart_init(cr, &cr->parts[i]);
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

void
rd_creq_parts(rd_creq_t *cr, size_t n)
{
    cr->parts = rd_realloc(cr->parts, (n ? n : 1) * sizeof(rd_cpart_t));
    memset(cr->parts, 0, (n ? n : 1) * sizeof(rd_cpart_t));
    cr->nparts = cr->left = n;
    for (size_t i = 0; i < n; i++) {
        rd_cpart_init(cr, &cr->parts[i]);
    }
}

/* Fan-out kinds need the masters; set one part per master. */
void
rd_creq_all_masters(rd_creq_t *cr)
{
    rd_ctopo_t *t = cr->cs->topo;
    size_t n = 0;

    for (size_t i = 0; i < t->nnodes; i++) {
        n += t->nodes[i]->master;
    }
    rd_creq_parts(cr, n);
    size_t k = 0;
    for (size_t i = 0; i < t->nnodes; i++) {
        if (t->nodes[i]->master) {
            cr->parts[k++].node = (int)i;
        }
    }
}

/* A split kind: one part per slot, each with the argv positions of its
 * keys, in the order the client gave them, and a command of its own:
 * the name, then each key with the step - 1 arguments that follow it. */
static void
rd_creq_split(rd_creq_t *cr)
{
    rd_request_t *r = cr->r;
    size_t nkeys = (size_t)r->nkeys, step = rd_cluster_split_step(r);
    int *slot = rd_alloc(nkeys * sizeof(int));
    int32_t *part = rd_alloc(RD_CLUSTER_SLOTS * sizeof(int32_t));
    size_t nparts = 0;

    /* (rd_cluster_kind made sure of the step.) */
    memset(part, 0xff, RD_CLUSTER_SLOTS * sizeof(int32_t));
    for (size_t j = 0; j < nkeys; j++) {
        const rd_str_t *k = &r->argv[r->keys[j]];
        slot[j] = (int)rd_cluster_key_slot(k->data, k->len);
        if (part[slot[j]] < 0) {
            part[slot[j]] = (int32_t)nparts++;
        }
    }
    rd_creq_parts(cr, nparts);
    for (size_t j = 0; j < nkeys; j++) {
        cr->parts[part[slot[j]]].npos++;
    }
    for (size_t k = 0; k < nparts; k++) {
        cr->parts[k].pos = rd_alloc(cr->parts[k].npos * sizeof(size_t));
        cr->parts[k].npos = 0;
    }
    for (size_t j = 0; j < nkeys; j++) {
        rd_cpart_t *p = &cr->parts[part[slot[j]]];
        p->slot = slot[j];
        p->pos[p->npos++] = r->keys[j];
    }
    for (size_t k = 0; k < nparts; k++) {
        rd_cpart_t *p = &cr->parts[k];
        size_t argc = 1 + p->npos * step;
        rd_str_t *argv = rd_alloc(argc * sizeof(rd_str_t));
        argv[0] = r->argv[0];
        for (size_t i = 0; i < p->npos; i++) {
            memcpy(&argv[1 + i * step], &r->argv[p->pos[i]],
                   step * sizeof(rd_str_t));
        }
        rd_resp_encode_command(&p->cmd, argc, argv);
        free(argv);
    }
    free(part);
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
    rd_creq_parts(cr, np);
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
    case RD_CK_SPLIT_SUM:
    case RD_CK_SPLIT_OK:
        cr->r->upstream = NULL;
        rd_creq_split(cr);
        break;
    case RD_CK_CUSTOM:
        if (cr->setup(cr) != 0) {
            return -1;
        }
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
void
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
void
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
    rd_cpubsub_resume(cs);
}

/* Wait for the next map: the parts parked for one, the held requests
 * that need the first one. */
void
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
    rd_cpubsub_free(cs);
    rd_cmulti_free(cs);
    rd_clocal_free(cs);
    for (size_t i = 0; i < cs->nconns; i++) {
        if (cs->conns[i]) {
            rd_cconn_free(cs->conns[i]);
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

/* The slot all keys of r hash to: >= 0, -1 keyless (or keys Redis will
 * refuse anyway), -2 keys in different slots. */
int
rd_cluster_request_slot(const rd_request_t *r)
{
    int slot = -1;

    for (int i = 0; i < r->nkeys; i++) {
        const rd_str_t *k = &r->argv[r->keys[i]];
        int s = (int)rd_cluster_key_slot(k->data, k->len);
        if (slot >= 0 && s != slot) {
            return -2;
        }
        slot = s;
    }
    if (r->nkeys == 0 && r->cmd && (r->cmd->flags & RD_CMD_PUBSUB)) {
        /* A shard channel (SPUBLISH's) is no key for COMMAND GETKEYS but
         * names its slot, as Redis Cluster routes it. */
        size_t idx[8];
        int n = rd_command_keys_ex(r->cmd, r->argc, r->argv,
                                   RD_KEYS_NOT_KEYS, idx, NULL, 8);
        for (int i = 0; i < n && i < 8; i++) {
            const rd_str_t *k = &r->argv[idx[i]];
            int s = (int)rd_cluster_key_slot(k->data, k->len);
            if (slot >= 0 && s != slot) {
                return -2;
            }
            slot = s;
        }
    }
    return slot;
}

static int
rd_cluster_filter(rd_session_t *s, rd_request_t *r)
{
    if (rd_cluster_is_unsupported(r)) {
        rd_request_error(r, "ERR redoubt: command not supported");
        return RD_DONE;
    }
    return RD_DECLINED;
}

/* Hold cr back (the rule at the top) or start it. */
int
rd_creq_submit(rd_creq_t *cr)
{
    rd_csess_t *cs = cr->cs;

    if (cs->wait_head || rd_creq_held(cr)) {
        rd_csess_hold(cs, cr);
        return RD_AGAIN;
    }
    if (rd_creq_start(cr) != 0) {
        rd_request_error(cr->r, "CLUSTERDOWN Hash slot not served");
        return RD_DONE;
    }
    return RD_AGAIN;
}

static int
rd_cluster_route(rd_session_t *s, rd_request_t *r)
{
    rd_csess_t *cs = rd_csess_get(s);
    rd_ctopo_t *t = cs->topo;
    int rc;

    if (t->ready && t->conf->refresh_interval > 0
        && s->worker->loop.now - t->refreshed_at
           >= (rd_msec_t)t->conf->refresh_interval)
    {
        rd_ctopo_refresh(t, cs);
    }

    /* The subscribe family, and what a subscribed session sends
     * (rd_cluster_pubsub.c), come first. */
    rc = rd_cpubsub_route(cs, r);
    if (rc != RD_DECLINED) {
        return rc;
    }
    return rd_cluster_route_rest(cs, r);
}

int
rd_cluster_route_rest(rd_csess_t *cs, rd_request_t *r)
{
    int rc;

    /* RESET runs at once, inside MULTI too, as in Redis. */
    if (r->conncmd.kind == RD_CONN_RESET) {
        return rd_clocal_reset(cs, r);
    }
    /* A transaction queues what the client sends until EXEC
     * (rd_cluster_multi.c); the commands redoubt answers itself or
     * spreads its own way come next (rd_cluster_local.c). */
    rc = rd_cmulti_route(cs, r);
    if (rc != RD_DECLINED) {
        return rc;
    }
    rc = rd_clocal_route(cs, r);
    if (rc != RD_DECLINED) {
        return rc;
    }

    rd_creq_prepare_pt prepare;
    rd_ckind_t kind = rd_cluster_kind(r, &prepare);
    int slot = -1;

    if (kind == RD_CK_DIRECT) {
        slot = rd_cluster_request_slot(r);
        if (slot == -2) {
            rd_request_error(r, "CROSSSLOT Keys in request don't hash to "
                             "the same slot");
            return RD_DONE;
        }
    }

    rd_creq_t *cr = rd_creq_new(cs, r, kind, kind == RD_CK_DIRECT);
    if (kind == RD_CK_DIRECT) {
        cr->parts[0].slot = slot;
    } else if (kind != RD_CK_AUTH) {
        r->upstream = "(all masters)";
    }
    if (prepare && prepare(cr) != 0) {
        return RD_DONE;         /* answered: a bad argument */
    }
    /* A barrier: not confined to one slot (a split command has keys in
     * more than one: rd_cluster_kind). */
    cr->barrier = slot < 0;
    return rd_creq_submit(cr);
}

/* --- worker ------------------------------------------------------------------ */

static int
rd_cluster_init_worker(rd_worker_t *w)
{
    rd_cycle_t *cycle = w->cycle;
    rd_ctopo_t **topos = rd_calloc(cycle->ndatabases + 1, sizeof(*topos));

    for (size_t i = 0; i < cycle->ndatabases; i++) {
        rd_database_t *db = &cycle->databases[i];
        if (db->router != &rd_cluster_router) {
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

/* The module's row of the shared counters (RD_CLUSTER_STAT_MAP): not in
 * /metrics, a health state for /healthz. */
static const rd_stats_def_t rd_cluster_stats[] = {
    [RD_CLUSTER_STAT_MAP] = {
        .name = "redoubt_cluster_slot_map", .type = RD_STATS_GAUGE,
        .scope = RD_STATS_DB, .flags = RD_STATS_PROCESS | RD_STATS_HIDDEN,
        .unhealthy = "the cluster slot map is unavailable" },
    rd_null_stat
};

rd_module_t rd_cluster_module = {
    .name = "cluster",
    .directives = rd_cluster_directives,
    .create_conf = { NULL, NULL, rd_cluster_create_db },
    .init_conf = { NULL, NULL, rd_cluster_init_db },
    .init_worker = rd_cluster_init_worker,
    .exit_worker = rd_cluster_exit_worker,
    .free_request_ctx = rd_creq_free,
    .stats = rd_cluster_stats,
};

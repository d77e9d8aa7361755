/*
 * rd_cluster_multi.c - transactions in cluster mode: MULTI, EXEC, DISCARD,
 * WATCH, UNWATCH and the commands queued between them.
 *
 * Redis runs a transaction on one node, on one connection. redoubt keeps
 * the session's MULTI queue itself, as that node would, and hands the node
 * the whole transaction at EXEC:
 *
 *   - MULTI is answered +OK here and each command after it +QUEUED (the
 *     filters have passed it: roles are checked at queue time), after the
 *     checks Redis makes when it queues, with Redis's texts: unknown
 *     command or subcommand, wrong number of arguments, "Command not
 *     allowed inside a transaction". MULTI inside MULTI and WATCH inside
 *     MULTI get Redis's errors and change nothing, as in Redis.
 *   - The transaction is pinned to one slot: the WATCHed keys' or the
 *     first queued key's. A command with keys in another slot gets
 *     -CROSSSLOT. Commands redoubt spreads over several nodes (request
 *     policy all_nodes or all_shards: DBSIZE, KEYS, FLUSHALL, INFO, ...;
 *     PING excepted) and those about redoubt's own session (@connection
 *     commands but PING, ECHO and COMMAND; the subscribe family) get an
 *     -ERR. Every such refusal makes the transaction dirty through the
 *     core's own rule (rd_session_txn_answered): the core sends the EXEC
 *     on as a DISCARD answered -EXECABORT, as Redis answers a transaction
 *     with a rejected command. The queue is bounded (RD_CMULTI_MAX_*).
 *   - EXEC sends MULTI, then the commands and EXEC in one write (see
 *     below for why not all in one) as one part,
 *     through the slot's lane (the ordering invariant at the top of
 *     rd_cluster.c), on the session's own connection to the slot's
 *     master; a keyless transaction goes where keyless commands go (a
 *     barrier). The part expects p->pre = n + 1 replies before the
 *     EXEC's: rd_cmulti_pre_reply() reads them, and the EXEC's reply (the
 *     array, nil when a watched key changed, -EXECABORT) goes to the
 *     client as Redis wrote it. An EXEC with nothing queued and nothing
 *     watched is answered *0 here.
 *   - When the node answered one of the commands with MOVED, ASK or
 *     TRYAGAIN, nothing ran (Redis discards a transaction with a
 *     redirected command; a redirected EXEC too): that error stands for
 *     the EXEC's, and rd_cpart_redirect() sends the whole transaction
 *     again, to the node named, up to cluster.max_redirects times. For
 *     ASK, the ASKING before the MULTI is enough: Redis keeps a client's
 *     ASKING flag while it is in MULTI (resetClient), and checks EXEC
 *     with the keys of the queued commands (getNodeByQuery). With WATCH
 *     there is no retry: the keys are watched on the first node, and the
 *     error goes to the client.
 *   - A queue-time error Redis gives for reasons of its own (its ACL,
 *     OOM) makes it answer the EXEC -EXECABORT, which the client gets. A
 *     MULTI the node itself may refuse (an ACL without +multi for the
 *     database user): so the MULTI goes alone first, and the commands
 *     and EXEC only once the node answered it +OK; until then nothing
 *     else of the session goes on that connection (rd_cconn_send holds
 *     it), so nothing joins the transaction. A refused MULTI is the
 *     EXEC's answer and nothing of the transaction runs. (It costs one
 *     round trip per transaction.)
 *
 * WATCH goes to its keys' node at once, as a command of its slot (keys in
 * several slots: -CROSSSLOT); a later WATCH must use the same slot, and
 * so must the transaction. Redis keeps a watch per connection, so the
 * watch is tied to the nodes that ran a WATCH of it (learned from their
 * replies) and to the session's connections to them: an EXEC that would go
 * to another node or when the WATCHes ran on several (the slot moved), or
 * after a node connection of the session failed (a dead connection forgot
 * its watch; any of them, as redoubt cannot always tell which one held
 * it), is answered with an error and nothing runs. EXEC ends the watch, as
 * in Redis; DISCARD, UNWATCH, an aborted or refused EXEC send UNWATCH to
 * every node where a WATCH ran, so that no watch stays behind on a
 * connection to make a later EXEC answer nil; they are answered here when
 * nothing is watched.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_cluster_int.h"
#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_resp.h"
#include "rd_session.h"
#include "rd_txn.h"

/* What one transaction may queue: the bytes of its commands (the session's
 * memory bound, limits.client_output_limit; this when that is 0) and
 * their number (the replies a part may expect). */
#define RD_CMULTI_MAX_BYTES     (512LL * 1024 * 1024)
#define RD_CMULTI_MAX_COMMANDS  (1024 * 1024)

#define RD_CWATCH_NODES 4

#define RD_CMULTI_CROSSSLOT "CROSSSLOT Keys in request don't hash to the " \
                            "same slot"

/* Some nodes, by index (all: more than RD_CWATCH_NODES, every node). */
typedef struct {
    int             node[RD_CWATCH_NODES];
    unsigned        n;
    unsigned        all:1;
} rd_cnodes_t;

/* A session's watch: the keys WATCHed since the last EXEC, DISCARD or
 * UNWATCH. Shared (refs) by the session, the WATCH requests that learn
 * its node and the EXEC that depends on it. */
typedef struct {
    unsigned        refs;
    int             slot;
    /* The nodes where a WATCH of it ran (its reply was not an error): the
     * watch holds only when that is one node, the EXEC's. */
    rd_cnodes_t     ran;
    /* The nodes a WATCH of it was sent to: when it ends, each of them
     * gets an UNWATCH (behind a WATCH still due there). */
    rd_cnodes_t     sent;
    unsigned        ended:1;        /* a WATCH sent now is undone at once */
    uint64_t        fails;          /* cs->multi->fails when it began */
} rd_cwatch_t;

typedef struct rd_cmulti_s rd_cmulti_t;

struct rd_cmulti_s {
    unsigned        open:1;         /* MULTI answered: queueing */
    int             slot;           /* the transaction's slot, -1 none */
    rd_buf_t        queue;          /* the queued commands, as RESP */
    size_t          nqueued;
    rd_cwatch_t    *watch;          /* NULL: nothing watched */
    uint64_t        fails;          /* node connections that failed */
};

/* A request of this file (cr->data). */
typedef struct {
    rd_cwatch_t    *watch;
    rd_buf_t        cur;            /* a reply before the EXEC's, when it
                                       is an error */
    char            type;           /* its first byte */
} rd_cmulti_req_t;

static const char rd_cmulti_multi[] = "*1\r\n$5\r\nMULTI\r\n";
/* The MULTI at the head of a transaction part's command, sent alone. */
const size_t rd_cmulti_multi_len = sizeof(rd_cmulti_multi) - 1;
static const char rd_cmulti_exec[] = "*1\r\n$4\r\nEXEC\r\n";
static const char rd_cmulti_unwatch[] = "*1\r\n$7\r\nUNWATCH\r\n";

static void
rd_cwatch_unref(rd_cwatch_t *w)
{
    if (w && --w->refs == 0) {
        free(w);
    }
}

static void
rd_cmulti_req_free(void *data)
{
    rd_cmulti_req_t *x = data;
    rd_cwatch_unref(x->watch);
    rd_buf_free(&x->cur);
    free(x);
}

static rd_cmulti_req_t *
rd_cmulti_req(rd_creq_t *cr, rd_cwatch_t *w)
{
    rd_cmulti_req_t *x = rd_calloc(1, sizeof(*x));
    x->watch = w;
    if (w) {
        w->refs++;
    }
    cr->data = x;
    cr->free_data = rd_cmulti_req_free;
    return x;
}

static int
rd_cmulti_answer(rd_request_t *r, const char *reply)
{
    rd_request_reply_append(r, reply, strlen(reply));
    rd_request_done(r);
    return RD_DONE;
}

/* An error for a command Redis would not queue: the transaction aborts
 * (the core's rule for what redoubt refuses inside MULTI). */
static int
rd_cmulti_reject(rd_csess_t *cs, rd_request_t *r, const char *msg)
{
    rd_buf_t b = { 0 };
    rd_resp_encode_error(&b, msg);
    rd_request_reply_append(r, rd_buf_rpos(&b), rd_buf_used(&b));
    rd_buf_free(&b);
    rd_session_txn_answered(cs->session, r);
    rd_request_done(r);
    return RD_DONE;
}

/* Append at most max bytes of a (up to its first NUL, as Redis's %s). */
static size_t
rd_cmulti_cstr(rd_buf_t *b, rd_str_t a, size_t max)
{
    size_t n = a.len < max ? a.len : max;
    const char *z = memchr(a.data, '\0', n);
    if (z) {
        n = (size_t)(z - a.data);
    }
    rd_buf_append(b, a.data, n);
    return n;
}

/* Redis's rejection of a command it does not know (processCommand):
 * "unknown command '<name>', with args beginning with: '<a>' '<b>' ...",
 * the arguments while fewer than 128 bytes of them were written, and
 * newlines as spaces. */
static void
rd_cmulti_unknown(const rd_request_t *r, char *msg, size_t size)
{
    rd_buf_t b = { 0 };

    if (r->cmd && r->cmd->subcommands > 0) {
        rd_buf_append_str(&b, "ERR unknown subcommand '");
        rd_cmulti_cstr(&b, r->argv[1], 128);
        rd_buf_append_str(&b, "'. Try ");
        size_t at = rd_buf_used(&b);
        size_t n = rd_cmulti_cstr(&b, r->argv[0], (size_t)-1);
        for (size_t i = 0; i < n; i++) {
            char *c = rd_buf_rpos(&b) + at + i;
            if (*c >= 'a' && *c <= 'z') {
                *c = (char)(*c - 'a' + 'A');
            }
        }
        rd_buf_append_str(&b, " HELP.");
    } else {
        rd_buf_append_str(&b, "ERR unknown command '");
        rd_cmulti_cstr(&b, r->argv[0], 128);
        rd_buf_append_str(&b, "', with args beginning with: ");
        size_t args = 0;
        for (size_t i = 1; i < r->argc && args < 128; i++) {
            rd_buf_append(&b, "'", 1);
            args += rd_cmulti_cstr(&b, r->argv[i], 128 - args) + 3;
            rd_buf_append(&b, "' ", 2);
        }
    }
    size_t n = rd_buf_used(&b) < size - 1 ? rd_buf_used(&b) : size - 1;
    memcpy(msg, rd_buf_rpos(&b), n);
    msg[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (msg[i] == '\r' || msg[i] == '\n') {
            msg[i] = ' ';
        }
    }
    rd_buf_free(&b);
}

/* Commands that cannot be part of a transaction on one node: spread over
 * every master, about redoubt's session rather than a node connection, or
 * changing what the connection's replies are (the subscribe family). */
static int
rd_cmulti_unqueueable(const rd_command_t *c)
{
    static const char *const allowed[] = { "ping", "echo", "command" };
    static const char *const subscribe[] = {
        "subscribe", "psubscribe", "ssubscribe",
        "unsubscribe", "punsubscribe", "sunsubscribe"
    };
    size_t n = strcspn(c->name, "|");

    for (size_t i = 0; i < rd_countof(allowed); i++) {
        if (strlen(allowed[i]) == n && strncmp(c->name, allowed[i], n) == 0) {
            return 0;
        }
    }
    for (size_t i = 0; i < rd_countof(subscribe); i++) {
        if (strcmp(c->name, subscribe[i]) == 0) {
            return 1;
        }
    }
    return (c->tips & (RD_TIP_REQ_ALL_NODES | RD_TIP_REQ_ALL_SHARDS)) != 0
           || (c->acl & RD_CAT_CONNECTION) != 0;
}

/* A command inside MULTI: queued (+QUEUED) or refused as Redis would at
 * queue time, or as redoubt must in cluster mode. */
static int
rd_cmulti_queue(rd_csess_t *cs, rd_request_t *r)
{
    rd_cmulti_t *m = cs->multi;
    const rd_command_t *c = r->cmd;
    rd_core_conf_t *ccf = rd_core_conf(cs->session->cycle);
    char msg[512];

    if (c == NULL || (c->subcommands > 0 && r->argc >= 2)) {
        rd_cmulti_unknown(r, msg, sizeof(msg));
        return rd_cmulti_reject(cs, r, msg);
    }
    if (!rd_command_arity_ok(c, r->argc)) {
        snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' "
                 "command", c->name);
        return rd_cmulti_reject(cs, r, msg);
    }
    if (c->flags & RD_CMD_NO_MULTI) {
        return rd_cmulti_reject(cs, r, "ERR Command not allowed inside a "
                                "transaction");
    }
    if (rd_cmulti_unqueueable(c)) {
        snprintf(msg, sizeof(msg), "ERR redoubt: '%s' cannot be part of a "
                 "transaction in cluster mode", c->name);
        return rd_cmulti_reject(cs, r, msg);
    }
    int slot = rd_cluster_request_slot(r);
    if (slot == -2 || (slot >= 0 && m->slot >= 0 && slot != m->slot)) {
        return rd_cmulti_reject(cs, r, RD_CMULTI_CROSSSLOT);
    }
    int64_t max = ccf->client_output_limit > 0 ? ccf->client_output_limit
                                               : RD_CMULTI_MAX_BYTES;
    if (rd_buf_used(&m->queue) + rd_buf_used(&r->raw) > (uint64_t)max
        || m->nqueued >= RD_CMULTI_MAX_COMMANDS)
    {
        return rd_cmulti_reject(cs, r, "ERR redoubt: transaction too large "
                                "(limits.client_output_limit)");
    }
    if (slot >= 0) {
        m->slot = slot;
    }
    rd_buf_append(&m->queue, rd_buf_rpos(&r->raw), rd_buf_used(&r->raw));
    m->nqueued++;
    return rd_cmulti_answer(r, "+QUEUED\r\n");
}

static void
rd_cnodes_add(rd_cnodes_t *ns, int node)
{
    for (unsigned i = 0; i < ns->n; i++) {
        if (ns->node[i] == node) {
            return;
        }
    }
    if (ns->n == RD_CWATCH_NODES) {
        ns->all = 1;
        return;
    }
    ns->node[ns->n++] = node;
}

static void
rd_cwatch_unwatch_on(rd_csess_t *cs, int node)
{
    rd_cconn_t *cc = (size_t)node < cs->nconns ? cs->conns[node] : NULL;

    if (cc && cc->uc.conn) {
        rd_cconn_send(cc, rd_cmulti_unwatch, sizeof(rd_cmulti_unwatch) - 1,
                      &rd_cluster_discard, 0);
    }
}

/* The watch ends: UNWATCH, answered by nobody, on the session's
 * connection to each node a WATCH of it went to but except (-1: none),
 * and behind any WATCH of it sent from now on. What the nodes hold for
 * the session is then what redoubt believes they hold: nothing. */
static void
rd_cwatch_end(rd_csess_t *cs, rd_cwatch_t *w, int except)
{
    size_t n = w->sent.all ? cs->nconns : w->sent.n;

    w->ended = 1;
    for (size_t i = 0; i < n; i++) {
        int node = w->sent.all ? (int)i : w->sent.node[i];
        if (node != except) {
            rd_cwatch_unwatch_on(cs, node);
        }
    }
}

/* A WATCH part went to node (rd_cpart_transmit). */
void
rd_cmulti_watch_sent(rd_cpart_t *p, int node)
{
    rd_cmulti_req_t *x = p->cr->data;

    rd_cnodes_add(&x->watch->sent, node);
    if (x->watch->ended) {
        rd_cwatch_unwatch_on(p->cr->cs, node);
    }
}

/* End the session's watch: UNWATCH to the node that holds it, answered
 * +OK (or -EXECABORT for an EXEC sent as DISCARD: r->exec_abort), and to
 * every other node where it ran; +OK here when nothing is watched. A
 * WATCH whose reply is still due has the same slot: the UNWATCH follows
 * it there. Takes the session's reference. */
static int
rd_cmulti_unwatch_send(rd_csess_t *cs, rd_request_t *r, rd_cwatch_t *w)
{
    rd_ctopo_t *t = cs->topo;

    if (w == NULL) {
        return rd_cmulti_answer(r, "+OK\r\n");
    }
    rd_creq_t *cr = rd_creq_new(cs, r, RD_CK_DIRECT, 1);
    rd_cpart_t *p = &cr->parts[0];
    rd_buf_append(&p->cmd, rd_cmulti_unwatch, sizeof(rd_cmulti_unwatch) - 1);
    int first = w->ran.n > 0 ? w->ran.node[0] : -1;
    if (first >= 0 && t->slot[w->slot] != first) {
        /* The slot moved: to the node itself, as a barrier. */
        p->node = first;
        cr->barrier = 1;
    } else {
        p->slot = w->slot;
    }
    rd_cwatch_end(cs, w, first);
    rd_cwatch_unref(w);
    return rd_creq_submit(cr);
}

static int
rd_cmulti_discard(rd_csess_t *cs, rd_request_t *r)
{
    rd_cmulti_t *m = cs->multi;
    rd_cwatch_t *w = m->watch;

    m->open = 0;
    m->watch = NULL;
    rd_buf_free(&m->queue);
    m->nqueued = 0;
    return rd_cmulti_unwatch_send(cs, r, w);
}

static int
rd_cmulti_exec_run(rd_csess_t *cs, rd_request_t *r)
{
    rd_cmulti_t *m = cs->multi;
    rd_cwatch_t *w = m->watch;

    m->open = 0;
    m->watch = NULL;
    if (m->nqueued == 0 && w == NULL) {
        rd_buf_free(&m->queue);
        return rd_cmulti_answer(r, "*0\r\n");
    }
    rd_creq_t *cr = rd_creq_new(cs, r, RD_CK_DIRECT, 1);
    rd_cpart_t *p = &cr->parts[0];
    rd_cmulti_req(cr, w);
    rd_cwatch_unref(w);         /* the request holds it now */
    rd_buf_reserve(&p->cmd, sizeof(rd_cmulti_multi) + rd_buf_used(&m->queue)
                            + sizeof(rd_cmulti_exec));
    rd_buf_append(&p->cmd, rd_cmulti_multi, sizeof(rd_cmulti_multi) - 1);
    rd_buf_append(&p->cmd, rd_buf_rpos(&m->queue), rd_buf_used(&m->queue));
    rd_buf_append(&p->cmd, rd_cmulti_exec, sizeof(rd_cmulti_exec) - 1);
    rd_buf_free(&m->queue);
    p->pre = (uint32_t)m->nqueued + 1;
    m->nqueued = 0;
    p->slot = m->slot >= 0 ? m->slot : w ? w->slot : -1;
    if (w) {
        /* Watched on the node it went to: never sent anywhere else. */
        p->redirects = (unsigned)cs->topo->conf->max_redirects;
    }
    cr->barrier = p->slot < 0;
    return rd_creq_submit(cr);
}

/* WATCH: one part for its slot; its reply says which node holds the
 * watch. */
static int
rd_cmulti_watch_setup(rd_creq_t *cr)
{
    rd_cmulti_req_t *x = cr->data;
    rd_creq_parts(cr, 1);
    cr->parts[0].slot = x->watch->slot;
    return 0;
}

static int
rd_cmulti_watch_merge(rd_creq_t *cr, rd_buf_t *out)
{
    rd_cmulti_req_t *x = cr->data;
    rd_cpart_t *p = &cr->parts[0];

    if (p->node >= 0) {
        if (p->type != '-') {
            rd_cnodes_add(&x->watch->ran, p->node);
        }
        cr->r->upstream = cr->cs->topo->nodes[p->node]->text;
    }
    rd_buf_append(out, rd_buf_rpos(&p->reply), rd_buf_used(&p->reply));
    return 0;
}

static int
rd_cmulti_watch(rd_csess_t *cs, rd_request_t *r)
{
    rd_cmulti_t *m = cs->multi;

    if (r->nkeys <= 0) {
        /* No keys (WATCH alone): Redis's arity error. */
        return rd_cmulti_answer(r, "-ERR wrong number of arguments for "
                                "'watch' command\r\n");
    }
    /* (A watch lost with a connection stays lost until EXEC, DISCARD or
     * UNWATCH: the keys WATCHed before are not watched any more.) */
    int slot = rd_cluster_request_slot(r);
    if (slot < 0 || (m->watch && m->watch->slot != slot)) {
        rd_request_error(r, RD_CMULTI_CROSSSLOT);
        return RD_DONE;
    }
    if (m->watch == NULL) {
        m->watch = rd_calloc(1, sizeof(*m->watch));
        m->watch->refs = 1;
        m->watch->slot = slot;
        m->watch->fails = m->fails;
    }
    rd_creq_t *cr = rd_creq_new(cs, r, RD_CK_CUSTOM, 0);
    rd_cmulti_req(cr, m->watch);
    cr->setup = rd_cmulti_watch_setup;
    cr->merge = rd_cmulti_watch_merge;
    /* A WATCH sent again after its EXEC went out would be left behind,
     * making a later EXEC of the session answer nil: its redirection is
     * then its answer, as a WATCH that failed (none holds). */
    cr->sets_state = 1;
    return rd_creq_submit(cr);
}

int
rd_cmulti_route(rd_csess_t *cs, rd_request_t *r)
{
    rd_cmulti_t *m = cs->multi;
    rd_conn_kind_t k = r->conncmd.kind;

    if (m == NULL) {
        if (k != RD_CONN_MULTI && k != RD_CONN_EXEC && k != RD_CONN_DISCARD
            && k != RD_CONN_WATCH && k != RD_CONN_UNWATCH)
        {
            return RD_DECLINED;
        }
        m = cs->multi = rd_calloc(1, sizeof(*m));
        m->slot = -1;
    }

    if (m->open) {
        switch (k) {
        case RD_CONN_MULTI:
            return rd_cmulti_answer(r, "-ERR MULTI calls can not be "
                                    "nested\r\n");
        case RD_CONN_WATCH:
            return rd_cmulti_answer(r, "-ERR WATCH inside MULTI is not "
                                    "allowed\r\n");
        case RD_CONN_DISCARD:
            /* Also the core's EXEC of a dirty transaction (r->exec_abort:
             * its +OK becomes -EXECABORT). */
            return rd_cmulti_discard(cs, r);
        case RD_CONN_EXEC:
            /* (A dirty one arrives as DISCARD, above.) */
            return rd_cmulti_exec_run(cs, r);
        default:
            return rd_cmulti_queue(cs, r);
        }
    }

    switch (k) {
    case RD_CONN_MULTI:
        m->open = 1;
        m->slot = -1;
        if (m->watch && m->watch->fails == m->fails) {
            m->slot = m->watch->slot;
        }
        return rd_cmulti_answer(r, "+OK\r\n");
    case RD_CONN_EXEC:
        return rd_cmulti_answer(r, "-ERR EXEC without MULTI\r\n");
    case RD_CONN_DISCARD:
        return rd_cmulti_answer(r, "-ERR DISCARD without MULTI\r\n");
    case RD_CONN_WATCH:
        return rd_cmulti_watch(cs, r);
    case RD_CONN_UNWATCH: {
        rd_cwatch_t *w = m->watch;
        m->watch = NULL;
        return rd_cmulti_unwatch_send(cs, r, w);
    }
    default:
        return RD_DECLINED;
    }
}

/*
 * A part carrying a whole transaction is about to go to node: refuse it
 * when its watch cannot hold there (another node, or a connection of the
 * session failed since the WATCH), else expect its replies anew. -1 when
 * it was answered instead.
 */
int
rd_cmulti_transmit(rd_cpart_t *p, int node)
{
    rd_creq_t *cr = p->cr;
    rd_cmulti_req_t *x = cr->data;
    rd_cwatch_t *w = x ? x->watch : NULL;
    const char *why = NULL;

    if (w && cr->cs->multi && w->fails != cr->cs->multi->fails) {
        why = "ERR redoubt: a cluster node connection failed after WATCH "
              "(the watch is lost): the transaction was not run";
    } else if (w && (w->ran.all || w->ran.n > 1
                     || (w->ran.n == 1 && node != w->ran.node[0])))
    {
        why = "ERR redoubt: the watched keys' slot moved to another node: "
              "the transaction was not run";
    }
    if (why) {
        /* Where the watch still holds, end it, as Redis's own failed
         * EXEC would: a later EXEC of the session there would answer
         * nil. */
        rd_cwatch_end(cr->cs, w, -1);
        rd_cpart_set_error(p, why);
        rd_cpart_final(p);
        return -1;
    }
    if (w) {
        /* The EXEC ends it there; elsewhere, UNWATCH. */
        rd_cwatch_end(cr->cs, w, node);
    }
    p->pre_left = p->pre;
    p->pre_err = 0;
    if (x) {
        rd_buf_reset(&x->cur);
        x->type = 0;
    }
    return 0;
}

static int
rd_cmulti_is_redirect(const rd_buf_t *b)
{
    const char *e = rd_buf_rpos(b);
    size_t n = rd_buf_used(b);

    return (n > 7 && memcmp(e, "-MOVED ", 7) == 0)
           || (n > 5 && memcmp(e, "-ASK ", 5) == 0)
           || (n >= 9 && memcmp(e, "-TRYAGAIN", 9) == 0);
}

/*
 * Bytes of a reply for a part carrying a whole transaction while one
 * before the EXEC's is due (p->pre_left), or after one of them was an
 * error that answers for the EXEC (p->pre_err). 1: taken (a reply before
 * the EXEC's); 0: the EXEC's reply, for the caller to handle as the
 * part's, with *n set to 0 when the held error (p->reply) stands for it.
 */
int
rd_cmulti_pre_reply(rd_cpart_t *p, const char *b, size_t *n, int last)
{
    rd_cmulti_req_t *x = p->cr->data;

    if (p->pre_left == 0) {
        *n = 0;
        return 0;
    }
    if (x->type == 0 && *n > 0) {
        x->type = b[0];
    }
    if (x->type == '-' && !p->pre_err) {
        rd_buf_append(&x->cur, b, *n);
    }
    if (!last) {
        return 1;
    }
    if (p->pre_left == p->pre) {
        /* The MULTI, sent alone (rd_cpart_transmit): the node accepted
         * it, send the commands and EXEC, then what waited behind; or it
         * refused it (its ACL) and nothing else went: that error is the
         * EXEC's answer. Sent together, a refused MULTI would have let
         * the node run the commands one by one. */
        rd_cconn_t *cc = p->cr->cs->conns[p->node];
        int ok = x->type == '+';
        if (!ok && x->type != '-') {
            rd_buf_reset(&x->cur);
            rd_resp_encode_error(&x->cur, "ERR redoubt: unexpected reply "
                                 "to MULTI: the transaction was not run");
        }
        if (ok) {
            rd_buf_t *cmd = &p->cmd;
            rd_upconn_send(&cc->uc, rd_buf_rpos(cmd) + rd_cmulti_multi_len,
                           rd_buf_used(cmd) - rd_cmulti_multi_len, p);
            for (uint32_t i = 1; i < p->pre; i++) {
                rd_upconn_send(&cc->uc, "", 0, p);
            }
            p->pre_left--;
        } else {
            if (x->watch) {
                /* The watch outlives a refused MULTI in Redis; for the
                 * client this EXEC ended it. Ahead of what was held. */
                rd_upconn_send(&cc->uc, rd_cmulti_unwatch,
                               sizeof(rd_cmulti_unwatch) - 1,
                               &rd_cluster_discard);
            }
            rd_buf_reset(&p->reply);
            rd_buf_append(&p->reply, rd_buf_rpos(&x->cur),
                          rd_buf_used(&x->cur));
            p->type = '-';
            p->pre_left = 0;
            *n = 0;
        }
        rd_buf_reset(&x->cur);
        x->type = 0;
        rd_cconn_release(cc);
        return ok;
    }
    /* The first redirection of a command: nothing of the transaction
     * ran, this is the answer. */
    if (x->type == '-' && !p->pre_err && rd_cmulti_is_redirect(&x->cur)) {
        rd_buf_reset(&p->reply);
        rd_buf_append(&p->reply, rd_buf_rpos(&x->cur), rd_buf_used(&x->cur));
        p->type = '-';
        p->pre_err = 1;
    }
    rd_buf_reset(&x->cur);
    x->type = 0;
    p->pre_left--;
    return 1;
}

/* A node connection of the session failed: a watch on it is gone. */
void
rd_cmulti_conn_failed(rd_csess_t *cs)
{
    if (cs->multi) {
        cs->multi->fails++;
    }
}

void
rd_cmulti_reset(rd_csess_t *cs)
{
    rd_cmulti_t *m = cs->multi;
    if (m == NULL) {
        return;
    }
    m->open = 0;
    rd_buf_free(&m->queue);
    m->nqueued = 0;
    m->slot = -1;
    if (m->watch) {
        rd_cwatch_end(cs, m->watch, -1);
        rd_cwatch_unref(m->watch);
        m->watch = NULL;
    }
}

int
rd_cmulti_open(const rd_csess_t *cs)
{
    return cs->multi != NULL && cs->multi->open;
}

void
rd_cmulti_free(rd_csess_t *cs)
{
    rd_cmulti_t *m = cs->multi;
    if (m == NULL) {
        return;
    }
    rd_buf_free(&m->queue);
    rd_cwatch_unref(m->watch);
    free(m);
    cs->multi = NULL;
}

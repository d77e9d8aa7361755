/*
 * rd_cluster_parts.c - a cluster request's parts: the per-slot lanes that keep
 * the ordering invariant (see the top of rd_cluster.c), sending, and the
 * MOVED / ASK / TRYAGAIN redirections.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_cluster_int.h"
#include "rd_command.h"
#include "rd_log.h"
#include "rd_resp.h"
#include "rd_stats.h"

static void rd_cpart_transmit(rd_cpart_t *p, int node);

void
rd_cpart_set_error(rd_cpart_t *p, const char *msg)
{
    rd_buf_reset(&p->reply);
    rd_resp_encode_error(&p->reply, msg);
    p->type = '-';
}

/* --- lanes: the ordering invariant (see the top) ------------------------- */

/* A part's place in the session's order: its request, then its index (a
 * split MGET has at most one part per slot, so fewer than 2^16). */
uint64_t
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

rd_clane_t *
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
void
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
void
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
void
rd_cpart_arrived(rd_cpart_t *p)
{
    if (p->early) {
        p->early = 0;
        p->cr->cs->nearly--;
    }
}

/* p left its lane's parked list. */
void
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
void
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

/* cluster.read_from: whether p may go to a replica. Read-only commands
 * (the command table's flag, as Redis decides on a READONLY connection)
 * routed by their keys: one slot, or one slot's part of a split MGET or
 * EXISTS; never a transaction, a keyless or fan-out command, SCAN (its
 * cursor is a master's). */
static int
rd_cpart_reads(const rd_cpart_t *p)
{
    const rd_creq_t *cr = p->cr;
    const rd_request_t *r = cr->r;

    return cr->cs->topo->conf->read_from != RD_CREAD_MASTER
           && !p->master_only && p->pre == 0 && p->slot >= 0
           && (cr->kind == RD_CK_DIRECT || cr->kind == RD_CK_MGET
               || cr->kind == RD_CK_SPLIT_SUM)
           && r->cmd != NULL && (r->cmd->flags & RD_CMD_READONLY);
}

/*
 * The node for p, the part at the head of slot's lane l: the slot's
 * master, or for a read (rd_cpart_reads) a replica of it. When parts of
 * the session for the slot are in flight, a read that may go where they
 * went goes there (one connection answers in order): to their replica,
 * and with "prefer-replica" to the master too (a read behind the
 * session's write to the slot reads that write). Otherwise it goes to
 * the session's replica of the master (the session's id picks one of
 * them, so that sessions spread over them and one session keeps to one),
 * skipping those whose connection just failed; to the master when it has
 * none. With "replica" a read behind parts in flight to the master waits
 * for them (the caller's rule) and then goes to a replica. *replica: the
 * node returned is a replica.
 */
static int
rd_cpart_node(rd_csess_t *cs, rd_cpart_t *p, const rd_clane_t *l,
              int *replica)
{
    rd_ctopo_t *t = cs->topo;
    int master = t->slot[p->slot];

    *replica = 0;
    if (p->ask_node >= 0) {
        return p->ask_node;
    }
    if (master < 0 || !rd_cpart_reads(p)) {
        return master;
    }
    const rd_cnode_t *m = t->nodes[master];
    unsigned n = m->nreplicas;
    if (l->inflight > 0) {
        if (l->node == master
            && t->conf->read_from == RD_CREAD_PREFER_REPLICA)
        {
            return master;
        }
        for (unsigned j = 0; j < n; j++) {
            if (m->replicas[j] == l->node) {
                *replica = 1;
                return l->node;
            }
        }
    }
    for (unsigned k = 0; k < n; k++) {
        int node = m->replicas[(cs->session->id + k) % n];
        if (t->nodes[node]->down_until <= t->worker->loop.now) {
            *replica = 1;
            return node;
        }
    }
    return master;
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
    while (!cs->session->conn->closed) {
        rd_clane_t *l = rd_clane_find(cs, slot);
        if (l == NULL || l->head == NULL) {
            return;
        }
        rd_cpart_t *p = l->head;
        if (p->wait != RD_CWAIT_NONE) {
            return;
        }
        int replica;
        int node = rd_cpart_node(cs, p, l, &replica);
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
        p->on_replica = replica != 0;
        rd_cpart_transmit(p, node);
    }
}

/* Run slot's lane; what it let go may let the held requests go too. */
void
rd_clane_run(rd_csess_t *cs, int slot)
{
    rd_clane_send(cs, slot);
    if (cs->wait_head) {
        rd_csess_drain(cs);
    }
}

/* The slots of the session's lanes that hold parked parts (to run them
 * all: running changes the table). Free the array; *n its length. */
int *
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

/* --- sending and redirections -------------------------------------------- */

void
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
void
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
    if (p->pre > 0 && rd_cmulti_transmit(p, node) != 0) {
        return;                 /* a transaction that cannot run there */
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
        rd_cconn_send(cc, asking, sizeof(asking) - 1, &rd_cluster_discard,
                      0);
        p->ask_node = -1;
    }
    p->node = node;
    if (!p->on_replica) {
        cs->last_node = node;   /* (keyless commands go to masters) */
    }
    if (cr->kind == RD_CK_DIRECT) {
        cr->r->upstream = t->nodes[node]->text;
    }
    rd_buf_t *cmd = rd_buf_used(&p->cmd) > 0 ? &p->cmd : &cr->r->raw;
    if (p->pre > 0) {
        /* A whole transaction: its MULTI alone, holding the connection;
         * the commands and EXEC follow once the node accepted it
         * (rd_cmulti_pre_reply). */
        rd_cconn_send(cc, rd_buf_rpos(cmd), rd_cmulti_multi_len, p, 1);
    } else {
        rd_cconn_send(cc, rd_buf_rpos(cmd), rd_buf_used(cmd), p, 0);
        if (cr->sets_state) {
            rd_cmulti_watch_sent(p, node);
        }
    }
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
int
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
    }
    if (p->slot >= 0 && (cr->sets_state || !(moved || ask))) {
        /* Later parts for the slot already went out behind this one: sent
         * again (or after TRYAGAIN's delay), it would run after them. It
         * did not run. (Other parts follow their MOVED or ASK as theirs
         * come, in order.) */
        rd_clane_t *l = rd_clane_find(cr->cs, p->slot);
        if (l && l->inflight > 0) {
            return 0;
        }
    }

    p->redirects++;
    rd_buf_reset(&p->reply);
    p->type = 0;
    if (p->on_replica) {
        /* A replica that does not serve the slot (any more): the master
         * the map names now, after MOVED; after ASK the node named. */
        p->master_only = 1;
    }
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

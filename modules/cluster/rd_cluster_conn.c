/*
 * rd_cluster_conn.c - a cluster session's connections to the nodes: replies
 * and failures coming back, connecting with the session's AUTH, picking
 * a node for a keyless command.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_cluster_int.h"
#include "rd_log.h"
#include "rd_stats.h"

/* Markers for replies nobody reads (a replayed AUTH, ASKING). */
char rd_cluster_discard;

/* --- node connections ---------------------------------------------------- */

/*
 * A part that never reached its node (the connection could not be made)
 * waits, parked in its lane, for a map learned after now: after a
 * failover it names the promoted replica. Its error reply is set already
 * and stands if the map still names the same node. A keyless one goes to
 * another node at once. 1 when it waits or was sent again, 0 when it
 * cannot (an ASK, too many tries, a barrier sent after it).
 */
int
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
    if (p->on_replica) {
        /* A replica read that never reached its replica: the master's,
         * when the new map comes (it still names the master). */
        p->master_only = 1;
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
    if ((part->pre_left > 0 || part->pre_err)
        && rd_cmulti_pre_reply(part, p, &n, last))
    {
        /* A reply before a whole transaction's EXEC's. */
        if (cs->wait_head && !s->conn->closed) {
            rd_csess_drain(cs);
        }
        return s->conn->closed ? -1 : 0;
    }
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
    rd_cmulti_conn_failed(cs);  /* a WATCH it held is lost */

    size_t n = 0, k = 0, nheld = cc->nheld;
    rd_cpart_t **parts = rd_alloc((uc->count + nheld + 1) * sizeof(*parts));
    int *slots = rd_alloc((uc->count + nheld + 1) * sizeof(int));
    /* What was held back behind a transaction's MULTI never left: it
     * fails with the rest, after it. */
    cc->hold = NULL;
    cc->nheld = 0;
    rd_buf_reset(&cc->held);
    while (uc->count > 0 || k < nheld) {
        void *data = uc->count > 0 ? rd_upconn_pop(uc)
                                   : cc->held_ents[k++].data;
        if (n > 0 && data == parts[n - 1]) {
            continue;           /* a whole transaction's other replies */
        }
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
        if (part->cr->kind == RD_CK_DIRECT
            && rd_request_reply_reset(r) != 0)
        {
            /* Part of this reply is already with the client. */
            rd_session_close(s, "upstream connection lost mid-reply");
            break;
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

void
rd_cconn_send(rd_cconn_t *cc, const char *b, size_t n, void *data, int hold)
{
    if (cc->hold == NULL) {
        rd_upconn_send(&cc->uc, b, n, data);
        if (hold) {
            cc->hold = data;
        }
        return;
    }
    if (cc->nheld == cc->held_cap) {
        cc->held_cap = cc->held_cap ? cc->held_cap * 2 : 8;
        cc->held_ents = rd_realloc(cc->held_ents,
                                   cc->held_cap * sizeof(*cc->held_ents));
    }
    cc->held_ents[cc->nheld++] = (rd_cheld_t) { n, data, hold != 0 };
    rd_buf_append(&cc->held, b, n);
}

void
rd_cconn_release(rd_cconn_t *cc)
{
    size_t i = 0;

    cc->hold = NULL;
    while (i < cc->nheld && cc->hold == NULL) {
        rd_cheld_t *e = &cc->held_ents[i++];
        rd_upconn_send(&cc->uc, rd_buf_rpos(&cc->held), e->len, e->data);
        rd_buf_consume(&cc->held, e->len);
        if (e->hold) {
            cc->hold = e->data;
        }
    }
    if (i > 0) {
        memmove(cc->held_ents, cc->held_ents + i,
                (cc->nheld - i) * sizeof(*cc->held_ents));
        cc->nheld -= i;
    }
}

void
rd_cconn_free(rd_cconn_t *cc)
{
    rd_upconn_free(&cc->uc);
    rd_buf_free(&cc->held);
    free(cc->held_ents);
    free(cc);
}

static const rd_upconn_handler_t rd_cconn_handler = {
    rd_cconn_reply, rd_cconn_fail
};

/* The session's connection to node i, connected (or connecting) with the
 * session's AUTH queued first. NULL with errno when it cannot connect. */
rd_cconn_t *
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
        if (t->conf->read_from != RD_CREAD_MASTER) {
            /* Replica reads: a replica serves the reads of its master's
             * slots only on a READONLY connection (else MOVED). Sent on
             * every connection of the session, masters too (harmless
             * there), since a failover swaps the roles under an open
             * connection. Its reply is not read, like the AUTH's. */
            static const char readonly[] = "*1\r\n$8\r\nREADONLY\r\n";
            rd_upconn_send(&cc->uc, readonly, sizeof(readonly) - 1,
                           &rd_cluster_discard);
        }
        rd_clocal_replay(cs, cc);
    }
    return cc;
}

/* A node for a keyless command: the one used last, one the session is
 * connected to, a master, any other known node (seeds); nodes whose
 * connection just failed only when nothing else is left. */
int
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
        /* (Not a replica's, kept for replica reads: a keyless command
         * may write.) */
        if (cs->conns[i] && cs->conns[i]->uc.conn
            && t->nodes[i]->down_until <= now && !t->nodes[i]->replica)
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

/*
 * rd_cluster_topo.c - the cluster module's per-worker topology: the map from
 * hash slots to masters, the known nodes, and its refresh with CLUSTER
 * SLOTS (see the top of rd_cluster.c).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_cluster_int.h"
#include "rd_log.h"
#include "rd_resp.h"
#include "rd_stats.h"

/* Markers for the refresh's replies (its AUTH, CLUSTER SLOTS). */
static char rd_cluster_auth_marker;
static char rd_cluster_slots_marker;

static void rd_ctopo_refresh_done(rd_ctopo_t *t, int ok);

/* --- per-worker topology ------------------------------------------------- */

rd_ctopo_t *
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
int
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

/* --- topology refresh ------------------------------------------------------ */

/* cluster.read_from: remember the replicas of range r's master (a master
 * with several ranges lists the same replicas in each). The nodes are
 * added to the known ones, which are never removed. */
static void
rd_ctopo_replicas(rd_ctopo_t *t, int master, const rd_cluster_range_t *r)
{
    rd_cnode_t *m = t->nodes[master];

    for (size_t k = 0; k < r->nreplicas; k++) {
        const rd_cluster_addr_t *a = &r->replicas[k];
        int node = rd_ctopo_node(t, a->host, strlen(a->host), a->port);
        if (node < 0 || node == master) {
            continue;
        }
        unsigned j = 0;
        while (j < m->nreplicas && m->replicas[j] != node) {
            j++;
        }
        if (j == m->nreplicas && m->nreplicas < RD_CLUSTER_REPLICAS_MAX) {
            m->replicas[m->nreplicas++] = node;
        }
        t->nodes[node]->replica = 1;
    }
}

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
        t->nodes[i]->replica = 0;
        t->nodes[i]->nreplicas = 0;
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
        if (t->conf->read_from != RD_CREAD_MASTER) {
            rd_ctopo_replicas(t, node, &ranges[i]);
        }
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        if (t->nodes[i]->master) {
            t->nodes[i]->replica = 0;   /* a master first, whatever else */
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

const rd_upconn_handler_t rd_ctopo_handler = {
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
    rd_stats_mod_db_set(&rd_cluster_module, t->db, RD_CLUSTER_STAT_MAP,
                        t->ready ? 1 : -1);
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
void
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

void
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

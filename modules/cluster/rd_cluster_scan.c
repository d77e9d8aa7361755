/*
 * rd_cluster_scan.c - SCAN over every master of a cluster database.
 *
 * The client sees one Redis: SCAN cursor [MATCH p] [COUNT n] [TYPE t]
 * with an opaque cursor, 0 to begin and 0 at the end. Each call scans
 * one master, with that node's own cursor; the options go with it
 * unchanged. The cursor redoubt answers is a decimal unsigned 64-bit
 * integer, as Redis's, made of
 *
 *   bits  0-13   a slot the master being scanned serves (the lowest it
 *                served when its turn came): it names the master
 *   bits 14-23   a check of that master's address, 1 to 1023
 *   bits 24-63   the master's own cursor (below 2^40; a Redis cursor is
 *                below its hash table's size)
 *
 * The masters are taken in the order of the lowest slot each serves:
 * when a master's cursor comes back 0, the next one is the master whose
 * lowest slot is the smallest above the cursor's slot, and none means
 * the end. The slot in the cursor only ever grows, so an iteration ends
 * whatever the topology does. A cursor redoubt cannot have made (not a
 * decimal number, above 2^64 - 1, a check of 0 in a cursor other than
 * 0) gets Redis's "ERR invalid cursor".
 *
 * While the topology is stable this keeps Redis's contract: a key
 * present for the whole iteration is returned at least once (each
 * master's SCAN returns it), a key may be returned more than once, and
 * COUNT is a hint (a call may return nothing and a cursor that is not
 * 0). When the master serving the cursor's slot is no longer the one the
 * check names (a failover, the slot migrated), that master is scanned
 * again from its beginning: its keys present throughout are still
 * returned, some twice. Keys that resharding moves during the iteration
 * may be missed (moved from a master not yet scanned to one scanned
 * already, or to a new master whose lowest slot is below the cursor's)
 * or returned twice: as with Redis Cluster clients, an iteration across
 * a resharding returns what each master held when it was scanned. A
 * cursor from before a topology change is never refused, and the
 * iteration still ends (a cursor whose slot no master serves gets
 * CLUSTERDOWN, as a command for that slot would).
 *
 * A MATCH pattern that pins one slot (a literal prefix without '{', then
 * a non-empty literal {tag}: "user:{42}:*"; no glob character or
 * backslash before the closing '}') can only match keys of that slot:
 * only its master is scanned, and its cursor 0 ends the iteration.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_cluster_int.h"
#include "rd_resp.h"
#include "rd_session.h"

#define RD_CSCAN_SLOT_BITS   14
#define RD_CSCAN_CHECK_BITS  10
#define RD_CSCAN_NODE_SHIFT  (RD_CSCAN_SLOT_BITS + RD_CSCAN_CHECK_BITS)
#define RD_CSCAN_NODE_MAX    (UINT64_C(1) << (64 - RD_CSCAN_NODE_SHIFT))

typedef struct {
    int       slot;         /* names the master scanned */
    unsigned  check;        /* 0: the cursor was 0 */
    uint64_t  cursor;       /* that master's cursor */
    int       pinned;       /* MATCH pins slot: its master only */
    int       node;         /* the node the part went to */
} rd_cscan_t;

/* The address check of a node: FNV-1a of host:port, 1 to 1023. */
static unsigned
rd_cscan_check(const rd_cnode_t *n)
{
    uint32_t h = 2166136261u;
    for (const char *p = n->text; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    return h % ((1u << RD_CSCAN_CHECK_BITS) - 1) + 1;
}

static uint64_t
rd_cscan_encode(int slot, unsigned check, uint64_t cursor)
{
    return cursor << RD_CSCAN_NODE_SHIFT
           | (uint64_t)check << RD_CSCAN_SLOT_BITS | (uint64_t)slot;
}

int
rd_cscan_pattern_slot(const char *p, size_t n)
{
    size_t i = 0, open;

    for (; i < n && p[i] != '{'; i++) {
        if (p[i] == '*' || p[i] == '?' || p[i] == '[' || p[i] == '\\') {
            return -1;
        }
    }
    if (i == n) {
        return -1;
    }
    open = i;
    for (i++; i < n && p[i] != '}'; i++) {
        if (p[i] == '*' || p[i] == '?' || p[i] == '[' || p[i] == '\\') {
            return -1;
        }
    }
    if (i == n || i == open + 1) {
        return -1;              /* no tag: the whole key is hashed */
    }
    /* The keys it matches begin with p up to the '}': their first '{'
     * and the next '}' are those, their tag the same. */
    return (int)rd_cluster_key_slot(p, n);
}

/* A decimal unsigned 64-bit integer, digits only. */
static int
rd_cscan_parse_u64(const rd_str_t *s, uint64_t *v)
{
    uint64_t x = 0;

    if (s->len == 0 || s->len > 20) {
        return -1;
    }
    for (size_t i = 0; i < s->len; i++) {
        unsigned d = (unsigned char)s->data[i] - '0';
        if (d > 9 || x > (UINT64_MAX - d) / 10) {
            return -1;
        }
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* The lowest slot each master serves; the smallest of those above
 * slot, or -1. */
static int
rd_cscan_next(const rd_ctopo_t *t, int slot)
{
    int *low = rd_alloc((t->nnodes + 1) * sizeof(int));
    int next = -1;

    for (size_t i = 0; i < t->nnodes; i++) {
        low[i] = RD_CLUSTER_SLOTS;
    }
    for (int s = RD_CLUSTER_SLOTS - 1; s >= 0; s--) {
        if (t->slot[s] >= 0 && (size_t)t->slot[s] < t->nnodes) {
            low[t->slot[s]] = s;
        }
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        if (low[i] < RD_CLUSTER_SLOTS && low[i] > slot
            && (next < 0 || low[i] < next))
        {
            next = low[i];
        }
    }
    free(low);
    return next;
}

/* Pick the master from the cursor, with the map at hand; its part gets
 * the request with that master's own cursor. */
static int
rd_cscan_setup(rd_creq_t *cr)
{
    rd_cscan_t *sc = cr->data;
    rd_ctopo_t *t = cr->cs->topo;
    rd_request_t *r = cr->r;
    uint64_t cursor = sc->cursor;
    char num[24];

    if (sc->check == 0 && !sc->pinned) {
        sc->slot = rd_cscan_next(t, -1);
        if (sc->slot < 0) {
            return -1;
        }
    }
    int node = t->slot[sc->slot];
    if (node < 0) {
        return -1;
    }
    if (sc->check != 0 && sc->check != rd_cscan_check(t->nodes[node])) {
        cursor = 0;             /* another master now: from its start */
    }
    sc->node = node;
    rd_creq_parts(cr, 1);
    cr->parts[0].node = node;
    r->upstream = t->nodes[node]->text;

    rd_str_t *argv = rd_alloc(r->argc * sizeof(rd_str_t));
    memcpy(argv, r->argv, r->argc * sizeof(rd_str_t));
    argv[1].len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, cursor);
    argv[1].data = num;
    rd_resp_encode_command(&cr->parts[0].cmd, r->argc, argv);
    free(argv);
    return 0;
}

/* The master's reply, *2 [cursor, [keys...]], with redoubt's cursor. */
static int
rd_cscan_merge(rd_creq_t *cr, rd_buf_t *out)
{
    rd_cscan_t *sc = cr->data;
    rd_ctopo_t *t = cr->cs->topo;
    rd_cpart_t *p = &cr->parts[0];
    rd_resp_reader_t rd;
    rd_resp_value_t v;
    uint64_t cursor, next = 0;
    char num[24];

    rd_resp_reader_init(&rd, rd_buf_rpos(&p->reply), rd_buf_used(&p->reply));
    if (rd_resp_read(&rd, &v) != 0 || v.type != '*' || v.n != 2
        || rd_resp_read(&rd, &v) != 0 || v.type != '$' || v.n < 0)
    {
        return -1;
    }
    rd_str_t c = { (char *)v.str, v.len };
    if (rd_cscan_parse_u64(&c, &cursor) != 0) {
        return -1;
    }
    const char *keys = rd.p;
    if (rd_resp_skip(&rd) != 0 || rd.p != rd.end) {
        return -1;
    }
    if (cursor >= RD_CSCAN_NODE_MAX) {
        rd_resp_encode_error(out, "ERR redoubt: a cluster node's SCAN cursor "
                             "is too large to be carried in the cursor");
        return 0;
    }
    if (cursor != 0) {
        next = rd_cscan_encode(sc->slot, rd_cscan_check(t->nodes[sc->node]),
                               cursor);
    } else if (!sc->pinned) {
        int s = rd_cscan_next(t, sc->slot);
        if (s >= 0 && t->slot[s] >= 0) {
            next = rd_cscan_encode(s, rd_cscan_check(t->nodes[t->slot[s]]),
                                   0);
        }
    }
    rd_resp_encode_array(out, 2);
    rd_resp_encode_bulk(out, num, (size_t)snprintf(num, sizeof(num),
                                                   "%" PRIu64, next));
    rd_buf_append(out, keys, (size_t)(rd.end - keys));
    return 0;
}

/*
 * SCAN: check the cursor (Redis's error for one that cannot be ours) and
 * find the MATCH pattern the way Redis's parser does (options in pairs,
 * the last MATCH wins; what it would refuse goes to the node, which
 * refuses it).
 */
int
rd_cscan_prepare(rd_creq_t *cr)
{
    rd_request_t *r = cr->r;
    uint64_t v;
    int pin = -1;

    if (r->argc < 2) {
        rd_request_error(r, "ERR wrong number of arguments for 'scan' "
                         "command");
        return -1;
    }
    if (rd_cscan_parse_u64(&r->argv[1], &v) != 0) {
        rd_request_error(r, "ERR invalid cursor");
        return -1;
    }
    for (size_t i = 2; i + 1 < r->argc; i += 2) {
        if (rd_str_eq_ci(r->argv[i], "match")) {
            pin = rd_cscan_pattern_slot(r->argv[i + 1].data,
                                        r->argv[i + 1].len);
        } else if (!rd_str_eq_ci(r->argv[i], "count")
                   && !rd_str_eq_ci(r->argv[i], "type"))
        {
            break;
        }
    }

    rd_cscan_t *sc = rd_calloc(1, sizeof(*sc));
    sc->slot = (int)(v & (RD_CLUSTER_SLOTS - 1));
    sc->check = (unsigned)(v >> RD_CSCAN_SLOT_BITS)
                & ((1u << RD_CSCAN_CHECK_BITS) - 1);
    sc->cursor = v >> RD_CSCAN_NODE_SHIFT;
    sc->node = -1;
    if (v != 0 && sc->check == 0) {
        free(sc);
        rd_request_error(r, "ERR invalid cursor");
        return -1;
    }
    if (pin >= 0 && (v == 0 || sc->slot == pin)) {
        sc->pinned = 1;
        sc->slot = pin;
    }
    cr->data = sc;
    cr->free_data = free;
    cr->setup = rd_cscan_setup;
    cr->merge = rd_cscan_merge;
    return 0;
}

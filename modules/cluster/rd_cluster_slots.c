/*
 * rd_cluster_slots.c - Redis Cluster hash slots and the CLUSTER SLOTS
 * reply; see rd_cluster_slots.h for the contract.
 *
 * The slot of a key is computed exactly as redis-server's keyHashSlot()
 * (cluster.c) with the CRC16 of its crc16.c: the XMODEM variant (poly
 * 0x1021, initial value 0, no reflection, no final xor), whose check value
 * for "123456789" is 0x31C3. Only the low 14 bits are used.
 *
 * CLUSTER SLOTS is read with the RESP reader over the complete reply. The
 * shape Redis 7 sends is an array of ranges, each
 *   [start, end, master, replica...]
 * where every node is [host, port, id, metadata...] and the metadata is a
 * flat array of hostname pairs ("*0" when there are none). Only what the
 * router needs is checked strictly: the slot numbers, the master's host
 * and port. Node ids and metadata are skipped whatever their type, so
 * that a newer server adding fields does not break routing; a replica
 * entry is kept when it starts with a host bulk and a port in range, and
 * skipped otherwise (replica reads are an option, never a reason to
 * refuse a map). A
 * host containing a NUL byte is refused: it would be cut short as a C
 * string and name another machine.
 *
 * The "unknown endpoint" takes three forms: an empty host (a node whose
 * address is not known yet), "?" (cluster-preferred-endpoint-type
 * hostname on a node without a hostname) and, with
 * cluster-preferred-endpoint-type unknown-endpoint, a null bulk "$-1"
 * (seen from redis-server 7.0.15). All three mean "the host you asked"
 * and get default_host.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "rd_resp.h"
#include "rd_cluster_slots.h"

/* crc16.c of redis-server: the table for polynomial 0x1021. */
static const uint16_t rd_cluster_crc16_tab[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
    0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
    0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
    0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
    0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
    0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
    0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
    0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
    0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
    0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
    0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
    0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
    0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
    0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
    0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
    0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
    0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
    0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
    0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
    0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
    0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

static uint16_t
rd_cluster_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)((crc << 8)
              ^ rd_cluster_crc16_tab[((crc >> 8) ^ (uint8_t)buf[i]) & 0xff]);
    }
    return crc;
}

/* keyHashSlot(): the first '{', then the first '}' after it; an empty or
 * unclosed tag means the whole key is hashed. */
unsigned
rd_cluster_key_slot(const char *key, size_t len)
{
    const char *lb, *rb;

    if (len == 0) {
        return 0;                       /* the CRC of nothing */
    }
    lb = memchr(key, '{', len);
    if (lb != NULL) {
        size_t rest = len - (size_t)(lb - key) - 1;

        rb = rest > 0 ? memchr(lb + 1, '}', rest) : NULL;
        if (rb != NULL && rb != lb + 1) {
            return rd_cluster_crc16(lb + 1, (size_t)(rb - lb - 1))
                   & (RD_CLUSTER_SLOTS - 1);
        }
    }
    return rd_cluster_crc16(key, len) & (RD_CLUSTER_SLOTS - 1);
}

/* ------------------------------------------------------------------------
 * CLUSTER SLOTS
 * --------------------------------------------------------------------- */

static const char *const rd_cluster_emalformed = "malformed reply";

/* Reads a value that must be of `type`; *err says why not. */
static int
rd_cluster_expect(rd_resp_reader_t *rd, rd_resp_value_t *v, char type,
    const char *what, const char **err)
{
    if (rd_resp_read(rd, v) != 0) {
        *err = rd_cluster_emalformed;
        return -1;
    }
    if (v->type != type) {
        *err = what;
        return -1;
    }
    return 0;
}

static int
rd_cluster_skip(rd_resp_reader_t *rd, int64_t n, const char **err)
{
    for (int64_t i = 0; i < n; i++) {
        if (rd_resp_skip(rd) != 0) {
            *err = rd_cluster_emalformed;
            return -1;
        }
    }
    return 0;
}

static int
rd_cluster_set_host(char *dst, const char *s, size_t n,
    const char *default_host, const char **err)
{
    if (n == 0 || (n == 1 && s[0] == '?')) {
        if (default_host == NULL) {
            *err = "unknown host and no default host";
            return -1;
        }
        s = default_host;
        n = strlen(default_host);
    }
    if (n > RD_CLUSTER_HOST_MAX - 1) {
        *err = "host too long";
        return -1;
    }
    if (memchr(s, '\0', n) != NULL) {
        *err = "NUL byte in host";
        return -1;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* The replicas read so far, all ranges. */
typedef struct {
    rd_cluster_addr_t *a;
    size_t             n;
    size_t             cap;
} rd_cluster_reps_t;

/* One replica entry, [host, port, ...], read whole; kept in reps when
 * well formed. -1 only when the bytes are malformed. */
static int
rd_cluster_parse_replica(rd_resp_reader_t *rd, const char *default_host,
    rd_cluster_reps_t *reps, const char **err)
{
    rd_resp_reader_t peek = *rd;
    rd_resp_value_t  node, host, port;
    const char      *ignored;

    if (rd_resp_skip(rd) != 0) {
        *err = rd_cluster_emalformed;
        return -1;
    }
    if (rd_resp_read(&peek, &node) != 0 || node.type != '*' || node.n < 2
        || rd_resp_read(&peek, &host) != 0 || host.type != '$'
        || rd_resp_read(&peek, &port) != 0 || port.type != ':'
        || port.n < 1 || port.n > 65535)
    {
        return 0;
    }
    if (reps->n == reps->cap) {
        reps->cap = reps->cap ? reps->cap * 2 : 8;
        reps->a = rd_realloc(reps->a, reps->cap * sizeof(*reps->a));
    }
    rd_cluster_addr_t *a = &reps->a[reps->n];
    if (rd_cluster_set_host(a->host, host.str, host.len, default_host,
                            &ignored) != 0)
    {
        return 0;
    }
    a->port = (uint16_t)port.n;
    reps->n++;
    return 0;
}

/* One range: [start, end, [host, port, ...], ...]. A null host bulk
 * arrives here as (NULL, 0), an unknown endpoint like the empty host. */
static int
rd_cluster_parse_range(rd_resp_reader_t *rd, const char *default_host,
    rd_cluster_range_t *r, rd_cluster_reps_t *reps, const char **err)
{
    rd_resp_value_t entry, start, end, node, host, port;

    if (rd_cluster_expect(rd, &entry, '*', "range is not an array", err)
        != 0)
    {
        return -1;
    }
    if (entry.n < 3) {
        *err = "range has fewer than 3 elements";
        return -1;
    }
    if (rd_cluster_expect(rd, &start, ':', "slot is not an integer", err)
        != 0
        || rd_cluster_expect(rd, &end, ':', "slot is not an integer", err)
           != 0)
    {
        return -1;
    }
    if (start.n < 0 || start.n >= RD_CLUSTER_SLOTS
        || end.n < 0 || end.n >= RD_CLUSTER_SLOTS)
    {
        *err = "slot out of range";
        return -1;
    }
    if (start.n > end.n) {
        *err = "range start after its end";
        return -1;
    }

    if (rd_cluster_expect(rd, &node, '*', "master is not an array", err)
        != 0)
    {
        return -1;
    }
    if (node.n < 2) {
        *err = "master has fewer than 2 elements";
        return -1;
    }
    if (rd_cluster_expect(rd, &host, '$', "host is not a bulk string", err)
        != 0)
    {
        return -1;
    }
    if (rd_cluster_expect(rd, &port, ':', "port is not an integer", err)
        != 0)
    {
        return -1;
    }
    if (port.n < 1 || port.n > 65535) {
        *err = "port out of range";
        return -1;
    }
    if (rd_cluster_set_host(r->host, host.str, host.len, default_host, err) != 0) {
        return -1;
    }
    r->start = (uint16_t)start.n;
    r->end = (uint16_t)end.n;
    r->port = (uint16_t)port.n;

    /* The master's id and metadata, then the replicas. */
    if (rd_cluster_skip(rd, node.n - 2, err) != 0) {
        return -1;
    }
    r->nreplicas = reps->n;             /* the first one's index, for now */
    r->replicas = NULL;
    for (int64_t i = 0; i < entry.n - 3; i++) {
        int rc = reps->n - r->nreplicas < RD_CLUSTER_REPLICAS_MAX
                 ? rd_cluster_parse_replica(rd, default_host, reps, err)
                 : rd_cluster_skip(rd, 1, err);
        if (rc != 0) {
            return -1;
        }
    }
    r->nreplicas = reps->n - r->nreplicas;
    return 0;
}

int
rd_cluster_parse_slots(const char *reply, size_t len,
    const char *default_host, rd_cluster_range_t **ranges, const char **err)
{
    rd_resp_reader_t    rd;
    rd_resp_value_t     top;
    rd_cluster_range_t *out = NULL;
    rd_cluster_reps_t   reps = { NULL, 0, 0 };

    *ranges = NULL;
    rd_resp_reader_init(&rd, reply, len);
    if (rd_resp_read(&rd, &top) != 0) {
        *err = rd_cluster_emalformed;
        return -1;
    }
    if (top.type == '-') {
        *err = "error reply";
        return -1;
    }
    if (top.type != '*' || top.n < 0) {
        *err = "reply is not an array";
        return -1;
    }
    /* The reader bounds the count by the reply's length, so this only
     * matters for replies of gigabytes. */
    if (top.n > INT_MAX) {
        *err = "too many ranges";
        return -1;
    }

    if (top.n > 0) {
        out = rd_alloc((size_t)top.n * sizeof(*out));
    }
    for (int64_t i = 0; i < top.n; i++) {
        if (rd_cluster_parse_range(&rd, default_host, &out[i], &reps, err)
            != 0)
        {
            free(reps.a);
            free(out);
            return -1;
        }
    }
    if (rd.p != rd.end) {
        free(reps.a);
        free(out);
        *err = "trailing bytes after the reply";
        return -1;
    }
    if (reps.n > 0) {
        /* One allocation, so that the caller frees it all with the
         * ranges: the replicas after them (sizeof the range is a multiple
         * of its pointer's alignment, which covers theirs). */
        size_t head = (size_t)top.n * sizeof(*out);
        out = rd_realloc(out, head + reps.n * sizeof(*reps.a));
        rd_cluster_addr_t *a = (rd_cluster_addr_t *)((char *)out + head);
        memcpy(a, reps.a, reps.n * sizeof(*reps.a));
        for (int64_t i = 0; i < top.n; i++) {
            out[i].replicas = out[i].nreplicas ? a : NULL;
            a += out[i].nreplicas;
        }
    }
    free(reps.a);

    *ranges = out;
    return (int)top.n;
}

/*
 * rd_cluster_slots.h - Redis Cluster hash slots and the CLUSTER SLOTS reply.
 *
 * Pure functions (no I/O, no global state), shared by the cluster module,
 * its unit tests and its fuzz target.
 */
#ifndef RD_CLUSTER_SLOTS_H
#define RD_CLUSTER_SLOTS_H

#include "rd_core.h"

#define RD_CLUSTER_SLOTS     16384
#define RD_CLUSTER_HOST_MAX  256      /* with the NUL */

/* The hash slot of a key: CRC16 (XMODEM) of the key, or of the part
 * between the first '{' and the next '}' when that part is not empty,
 * modulo 16384 -- exactly as Redis's keyHashSlot(). */
unsigned rd_cluster_key_slot(const char *key, size_t len);

#define RD_CLUSTER_REPLICAS_MAX 16     /* replicas kept per range */

typedef struct {
    char     host[RD_CLUSTER_HOST_MAX];
    uint16_t port;
} rd_cluster_addr_t;

typedef struct {
    uint16_t start;                   /* first slot of the range */
    uint16_t end;                     /* last slot, inclusive */
    char     host[RD_CLUSTER_HOST_MAX]; /* the range's master */
    uint16_t port;
    size_t             nreplicas;
    rd_cluster_addr_t *replicas;      /* in the ranges' allocation */
} rd_cluster_range_t;

/*
 * Parse a complete CLUSTER SLOTS reply (RESP2). Each range's master (the
 * first node entry) is checked strictly; its replicas (the entries after
 * it) are kept when they are well formed, at most RD_CLUSTER_REPLICAS_MAX
 * of them, and skipped otherwise. A node whose host is empty, null or "?"
 * (Redis's "unknown endpoint") gets default_host, the host the request was
 * sent to. On success returns the number of ranges and sets *ranges to a
 * malloc'd array (the caller frees it, replicas included: one
 * allocation; NULL when there are none). On a reply that is not a
 * well-formed CLUSTER SLOTS answer (an error reply, wrong types, start >
 * end, a slot >= 16384, a port outside 1..65535, a host longer than
 * RD_CLUSTER_HOST_MAX - 1, trailing bytes) returns -1 and
 * sets *err to a static phrase; for an error reply ("-NOAUTH ...") *err is
 * "error reply" and the caller reads the reply text itself.
 */
int rd_cluster_parse_slots(const char *reply, size_t len,
                           const char *default_host,
                           rd_cluster_range_t **ranges, const char **err);

#endif

/*
 * rd_audit.h - the audit module's counters, for the status module.
 *
 * The audit log itself (JSON Lines, one event per line) is described in
 * rd_audit.c and redoubt.conf(5), AUDIT GROUP. Each worker writes its own
 * events; the counters below are this worker process's.
 */
#ifndef RD_AUDIT_H
#define RD_AUDIT_H

#include "rd_core.h"

typedef struct {
    bool     enabled;       /* audit.path is set */
    bool     failing;       /* the last write (or open) failed */
    uint64_t written;       /* events written to the file */
    uint64_t dropped;       /* events lost: on_failure = continue, the
                               bound of a blocked buffer, worker exit */
    uint64_t write_errors;  /* failed write(2) or open(2) attempts */
    uint64_t pending;       /* events buffered, not yet written */
} rd_audit_stats_t;

/* This worker's counts (all zero in the master and when auditing is off). */
void rd_audit_stats(rd_audit_stats_t *st);

#endif

/*
 * rd_audit.h - the audit module's counters.
 *
 * The audit log itself (JSON Lines, one event per line) is described in
 * rd_audit.c and redoubt.conf(5), AUDIT GROUP. Each worker writes its own
 * events and counts them as they happen in two places: in its slot of the
 * shared counters (the module's rows below, rd_stats.h, which the status
 * module renders and which keep growing across worker restarts), and in
 * this process's own counts that rd_audit_stats() returns (interim: for
 * rbac's REDOUBT DATABASES, and the writer's unit test).
 */
#ifndef RD_AUDIT_H
#define RD_AUDIT_H

#include "rd_core.h"
#include "rd_stats.h"

/* The module's rows of the shared counters (rd_audit_stats_rows). */
enum {
    RD_AUDIT_STAT_WRITTEN = 0,  /* events written to the file */
    RD_AUDIT_STAT_DROPPED,      /* events lost (see below) */
    RD_AUDIT_STAT_FAILING       /* 1: this worker's last write failed */
};

extern const rd_stats_def_t rd_audit_stats_rows[];

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

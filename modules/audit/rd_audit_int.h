/*
 * rd_audit_int.h - the audit module's private header: its configuration,
 * the worker's writer state (rd_audit_write.c), the redaction plan
 * (rd_audit_redact.c), the hot-path append helpers and the functions
 * shared between rd_audit.c, rd_audit_write.c and rd_audit_redact.c.
 */
#ifndef RD_AUDIT_INT_H
#define RD_AUDIT_INT_H

#include <string.h>
#include <time.h>

#include "rd_core.h"
#include "rd_audit.h"
#include "rd_command.h"
#include "rd_session.h"
#include "rd_worker.h"

extern rd_module_t rd_audit_module;

enum {
    RD_AUDIT_ARGS_FULL = 0,
    RD_AUDIT_ARGS_NAMES,
    RD_AUDIT_ARGS_NONE
};

enum {
    RD_AUDIT_BLOCK = 0,
    RD_AUDIT_CONTINUE
};

#define RD_AUDIT_MAX_LIST   1024    /* arguments or keys listed per event */
#define RD_AUDIT_NAME_MAX   64      /* bytes of an unknown command's name */
#define RD_AUDIT_REDACTED   "(redacted)"

typedef struct {
    char    *path;
    int64_t  args;
    int64_t  max_arg_bytes;
    int64_t  flush_interval;
    int64_t  buffer;
    int64_t  on_failure;
} rd_audit_conf_t;

/* The worker's writer (one worker per process: plain statics). */
typedef struct {
    rd_audit_conf_t *conf;
    rd_worker_t     *worker;
    int              fd;
    rd_buf_t         buf;            /* whole lines waiting to be written */
    uint64_t         nevents;        /* lines in buf */
    uint64_t         seq;            /* lines formatted by this worker */
    rd_timer_t       timer;
    unsigned         failing:1;
    unsigned         need_newline:1; /* a fragment may end the file */
    int              err;            /* errno of the last failure, 0: a
                                        short write */
    rd_msec_t        last_log;
    uint64_t         unlogged;       /* dropped since the last log line */
    rd_audit_stats_t st;
    int64_t          now;            /* monotonic us of the event */
    int64_t          offset;         /* CLOCK_REALTIME - CLOCK_MONOTONIC */
    int64_t          offset_at;      /* when offset was read (monotonic) */
    time_t           tsec;           /* the second tbuf shows */
    char             tbuf[32];
    size_t           tlen;
    const rd_command_t *acl_setuser; /* commands with secrets */
    const rd_command_t *config_set;
    const rd_command_t *migrate;
    const rd_command_t *subscribe[6]; /* session.subscribe commands */
} rd_audit_worker_t;

extern rd_audit_worker_t rd_aw;

/* Appends on the hot path: no strlen, no call when there is room (each
 * event reserves room for its fixed parts first). */
static inline void
rd_audit_put(rd_buf_t *b, const void *p, size_t n)
{
    if (rd_buf_room(b) < n) {
        rd_buf_reserve(b, n);
    }
    memcpy(rd_buf_wpos(b), p, n);
    rd_buf_produce(b, n);
}

#define RD_AUDIT_LIT(b, lit)  rd_audit_put((b), (lit), sizeof(lit) - 1)
/* A member after another: ,"key": */
#define RD_AUDIT_KEY(b, key)  RD_AUDIT_LIT((b), ",\"" key "\":")

#define RD_AUDIT_SECRET_AT  16      /* secret positions listed one by one */

/* Which arguments of a request are secrets (see the top of
 * rd_audit_redact.c):
 * every argument from "from" on, those listed in "at", and, for CONFIG
 * SET, the values of the secret parameters. */
typedef struct {
    size_t    from;                     /* 0: none */
    size_t    nat;
    size_t    at[RD_AUDIT_SECRET_AT];
    unsigned  config_set:1;
} rd_audit_redact_t;

/* rd_audit.c */
rd_audit_conf_t *rd_audit_conf(rd_cycle_t *cycle);

/* rd_audit_write.c */
int rd_audit_flush(void);
int rd_audit_blocked(void);
void rd_audit_commit(rd_buf_t *b);
int rd_audit_init_worker(rd_worker_t *w);
void rd_audit_exit_worker(rd_worker_t *w);
void rd_audit_reopen(rd_worker_t *w);

/* rd_audit_redact.c */
void rd_audit_plan(rd_audit_redact_t *rp, const rd_request_t *r);
bool rd_audit_secret(const rd_audit_redact_t *rp, const rd_request_t *r,
                     size_t i);
void rd_audit_error_text(rd_buf_t *b, const char *msg, size_t len, bool cut,
                         const rd_audit_redact_t *rp, const rd_request_t *r);

#endif

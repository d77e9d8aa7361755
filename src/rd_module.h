/*
 * rd_module.h - modules and phases.
 *
 * A module is a static table: a name, its directives, hooks that create and
 * initialise its configuration at each level, hooks run in the master and
 * in each worker, and a postconfiguration hook that pushes its phase
 * handlers. The registry (rd_modules.c) lists every module once; the order
 * there is the order in which handlers of one phase run.
 *
 * Session phases run once per connection, command phases once per request.
 * A handler returns:
 *   RD_OK       go on with the next handler;
 *   RD_DECLINED this handler has nothing to do here (same as RD_OK);
 *   RD_DONE     a reply was produced: skip to the reply phase
 *               (in a session phase: the session is ready, skip the rest);
 *   RD_AGAIN    waiting for I/O; the module resumes the phases later with
 *               rd_session_run_phases() or rd_request_done();
 *   RD_ERROR    give up: a session phase closes the session (after any
 *               reply already queued), a command phase answers with an
 *               internal error.
 * Per-session and per-request state of a module lives in s->ctx[m->index]
 * and r->ctx[m->index]; the core structs never grow a field for one module.
 */
#ifndef RD_MODULE_H
#define RD_MODULE_H

#include "rd_core.h"
#include "rd_conf.h"

typedef enum {
    /* session phases */
    RD_PHASE_ACCEPT = 0,
    RD_PHASE_HANDSHAKE,
    RD_PHASE_IDENTIFY,
    RD_PHASE_AUTHORIZE,
    /* command phases */
    RD_PHASE_DECODE,
    RD_PHASE_FILTER,
    RD_PHASE_INTERCEPT,
    RD_PHASE_ROUTE,
    RD_PHASE_REPLY,
    RD_PHASE_AUDIT,
    RD_PHASE_MAX
} rd_phase_t;

#define RD_SESSION_PHASES  (RD_PHASE_AUTHORIZE + 1)

/* r is NULL in session phases. */
typedef int (*rd_phase_handler_pt)(rd_session_t *s, rd_request_t *r);

struct rd_module_s {
    const char           *name;
    unsigned              index;          /* set by rd_modules_init() */
    const rd_directive_t *directives;

    /* Create a level's conf (fields unset) and then, after the file was
     * read, set defaults and check it; return NULL or an error phrase. */
    void       *(*create_conf[RD_CONF_LEVELS])(rd_conf_t *cf);
    const char *(*init_conf[RD_CONF_LEVELS])(rd_conf_t *cf, void *conf);

    /* After the whole configuration was read: register phase handlers. */
    int  (*postconfiguration)(rd_cycle_t *cycle);
    /* In the master, for every new cycle (load certificates, ...). */
    int  (*init_master)(rd_cycle_t *cycle);
    /* In each worker after fork, and when it exits. */
    int  (*init_worker)(rd_worker_t *w);
    void (*exit_worker)(rd_worker_t *w);

    /* Free what the module keeps in r->ctx[index] (called only when that
     * slot is not NULL, whatever phase the request reached). */
    void (*free_request_ctx)(void *ctx);

    /* A session ends (closed for any reason, also when it was refused
     * before it started: then s->refusal says why). Called in registry
     * order while the session is still whole; nothing may be sent. */
    void (*session_end)(rd_session_t *s);

    /* SIGUSR1 in a worker (logrotate): reopen the files the module
     * writes, after the error log was reopened. */
    void (*reopen)(rd_worker_t *w);
};

extern rd_module_t *rd_modules[];
extern unsigned     rd_nmodules;

void rd_modules_init(void);

int rd_phase_add(rd_cycle_t *cycle, rd_phase_t phase, rd_phase_handler_pt h);

#endif

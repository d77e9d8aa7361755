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
 * In the same way a module's counters are rows of its own table (stats,
 * rd_stats.h), and a process it needs beside the workers is a hook
 * (process): the core's stats and the master know no module by name.
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

/* A row of a module's counters (rd_stats.h). */
typedef struct rd_stats_def_s rd_stats_def_t;

/* A helper process: the master calls open for each cycle it puts to use
 * (after init_master: bind its sockets, or take them over from old; 0,
 * or -1 and *err, malloc'd, which fails the start or the reload); a cycle
 * for which wanted says 1 gets one such process, in a slot after the last
 * worker (in registry order when several modules have one), which runs
 * main (it must not return: exit(2) is the fallback). */
typedef struct {
    int  (*open)(rd_cycle_t *cycle, rd_cycle_t *old, char **err);
    int  (*wanted)(rd_cycle_t *cycle);
    void (*main)(rd_cycle_t *cycle);
} rd_module_process_t;

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

    /* The session phases have all passed: the session is in (s->started
     * is set, s->database and s->db_user are known) and its commands are
     * read next. Called in registry order, after every module's session
     * phase handlers, so a hook may record that the session was let in;
     * nothing may be sent, and the session must not be closed here. */
    void (*session_start)(rd_session_t *s);

    /* A session ends (closed for any reason, also when it was refused
     * before it started: then s->refusal says why). Called in registry
     * order while the session is still whole; nothing may be sent. */
    void (*session_end)(rd_session_t *s);

    /* SIGUSR1 in a worker (logrotate): reopen the files the module
     * writes, after the error log was reopened. */
    void (*reopen)(rd_worker_t *w);

    /* --- counters and a helper process ------------------------------
     * stats: the module's counters and gauges (rd_stats.h), a table
     * ended by rd_null_stat, or NULL. rd_modules_init() places them in
     * the shared counters: row i of a per-slot row lives at
     * mod[stats_slot + i] of a slot, of a per-database row at
     * mod[stats_db + i] of a database series. */
    const rd_stats_def_t *stats;
    int                   stats_slot;     /* set by rd_modules_init() */
    int                   stats_db;
    /* A process of the module's own (the status server), which the
     * master runs, restarts and retires like a worker. */
    rd_module_process_t   process;
};

extern rd_module_t *rd_modules[];
extern unsigned     rd_nmodules;

/* Number the modules and place their counters (rd_stats.h): RD_OK, or
 * RD_ERROR (logged) when the counters do not fit. */
int rd_modules_init(void);

/* The modules' helper processes (rd_module_process_t) of cycle: open them
 * all (0, or -1 and *err); how many there are; run the k-th (does not
 * return). */
int  rd_modules_process_open(rd_cycle_t *cycle, rd_cycle_t *old, char **err);
int  rd_modules_processes(rd_cycle_t *cycle);
void rd_modules_process_main(rd_cycle_t *cycle, int k)
    __attribute__((noreturn));

int rd_phase_add(rd_cycle_t *cycle, rd_phase_t phase, rd_phase_handler_pt h);

#endif

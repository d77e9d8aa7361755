/*
 * rd_worker.h - a worker process: one event loop, many sessions.
 */
#ifndef RD_WORKER_H
#define RD_WORKER_H

#include "rd_core.h"
#include "rd_event.h"

struct rd_worker_s {
    rd_cycle_t     *cycle;
    rd_loop_t       loop;
    int             slot;            /* 0 .. worker_processes - 1 */
    pid_t           pid;
    rd_conn_t      *sigconn;         /* signalfd */
    struct rd_worker_listener_s *listeners;  /* one per cycle listener */

    rd_session_t   *sessions;        /* open sessions */
    size_t          nsessions;
    rd_session_t   *dead;            /* closed, freed after the iteration */
    uint64_t        next_sid;
    rd_request_t   *free_requests;   /* recycled request objects */
    size_t          nfree_requests;

    unsigned        stopping:1;      /* graceful: no new sessions */
    unsigned        exiting:1;
    rd_timer_t      shutdown_timer;
    /* Out of descriptors or memory at accept: the listeners are out of
     * the epoll set until accept_timer fires or a session closes. */
    unsigned        accept_paused:1;
    rd_timer_t      accept_timer;
    size_t          accept_paused_sessions;  /* nsessions at the pause */
    rd_msec_t       accept_logged;           /* last such error logged */
    uint64_t        accept_unlogged;         /* failures since then */
    /* Sessions closed since the heap was last trimmed (rd_worker.c). */
    size_t          trim_closed;
    rd_timer_t      trim_timer;
    void          **ctx;             /* per-module worker state */
};

/* Run a worker; does not return. */
void rd_worker_main(rd_cycle_t *cycle, int slot) __attribute__((noreturn));

#endif

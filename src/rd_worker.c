/*
 * rd_worker.c - the worker process.
 *
 * A worker inherits the cycle and the listening sockets from the master,
 * runs the modules' worker hooks, and then loops: accept, serve sessions,
 * expire timers. Signals arrive through a signalfd in the same loop, so
 * there are no signal handlers and no races with the code they interrupt:
 *
 *   QUIT  stop accepting, finish open sessions, exit when none are left or
 *         worker_shutdown_timeout has passed; then idle sessions are
 *         closed, and the others stop reading and are closed once the
 *         commands they read are answered, or after worker_shutdown_grace
 *         (rd_session_drain);
 *   TERM, INT  exit now;
 *   USR1  reopen the error log (and let modules reopen theirs).
 *
 * Out of descriptors (EMFILE, ENFILE) or memory (ENOBUFS, ENOMEM), accept(2)
 * leaves the connection in the listen queue and level-triggered epoll
 * reports it again at once: the worker would spin and log each failure.
 * Instead it takes its listeners out of the epoll set for
 * RD_ACCEPT_PAUSE_MS, or until one of its sessions closes, counts every
 * failure (redoubt_accept_errors_total) and logs at most one line a
 * second, as nginx disables its accept events.
 *
 * Memory: glibc's malloc returns freed heap to the kernel only from the
 * top of the heap, and one live allocation above a closed session's
 * buffers keeps all of them resident: 10,000 idle TLS sessions closed
 * left a worker at 750 MB (issue 11; fixed mmap and trim thresholds did
 * not change that). So RD_TRIM_DELAY_MS after sessions closed, once
 * RD_TRIM_SESSIONS have closed since the last time or none is left, the
 * worker calls malloc_trim(0), which gives back every free page inside
 * the heap too (madvise), a few milliseconds for a large heap.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_process.h"
#include "rd_proctitle.h"
#include "rd_session.h"
#include "rd_stats.h"
#include "rd_worker.h"

#define RD_ACCEPT_BATCH     64
#define RD_ACCEPT_PAUSE_MS  100     /* no accepting after EMFILE & co */
#define RD_ACCEPT_LOG_MS    1000    /* at most one such line this often */
#define RD_TRIM_DELAY_MS    1000    /* trim this long after a close ... */
#define RD_TRIM_SESSIONS    32      /* ... once this many have closed, or
                                       the last one */

typedef struct rd_worker_listener_s {
    rd_worker_t   *worker;
    rd_listener_t *listener;
    rd_conn_t     *conn;        /* NULL once the worker stopped accepting */
} rd_worker_listener_t;

static void
rd_worker_stop_accepting(rd_worker_t *w)
{
    rd_timer_del(&w->loop.timers, &w->accept_timer);
    w->accept_paused = 0;
    for (size_t i = 0; i < w->cycle->nlisteners; i++) {
        if (w->listeners[i].conn) {
            rd_conn_close(w->listeners[i].conn);
            w->listeners[i].conn = NULL;
            w->cycle->listeners[i].fds[w->slot] = -1;
        }
    }
}

/* worker_shutdown_grace has passed too: what is still open is closed. */
static void
rd_worker_grace_expired(rd_timer_t *t)
{
    rd_worker_t *w = t->data;
    if (w->nsessions > 0) {
        rd_log_notice("worker_shutdown_grace: closing %zu sessions still "
                      "waiting for replies", w->nsessions);
    }
    while (w->sessions) {
        rd_session_close(w->sessions, "worker stopping");
    }
}

/*
 * worker_shutdown_timeout has passed: sessions with nothing to answer are
 * closed; those with commands read and not answered yet stop reading and
 * get worker_shutdown_grace for the replies (rd_session_drain).
 */
static void
rd_worker_shutdown_expired(rd_timer_t *t)
{
    rd_worker_t *w = t->data;
    rd_core_conf_t *ccf = rd_core_conf(w->cycle);
    size_t open = w->nsessions, draining = 0;

    if (ccf->worker_shutdown_grace > 0) {
        rd_session_t *s = w->sessions, *next;
        for (; s; s = next) {
            next = s->next_active;
            draining += (size_t)rd_session_drain(s, "worker stopping");
        }
    }
    if (open > 0) {
        rd_log_notice("worker shutdown timeout: %zu sessions open, %zu "
                      "closed, %zu answering the commands they read "
                      "(up to %lld ms)", open, open - draining, draining,
                      (long long)ccf->worker_shutdown_grace);
    }
    if (w->nsessions == 0) {
        return;
    }
    if (ccf->worker_shutdown_grace <= 0) {
        rd_worker_grace_expired(t);
        return;
    }
    t->handler = rd_worker_grace_expired;
    rd_timer_add(&w->loop.timers, t, w->loop.now,
                 ccf->worker_shutdown_grace);
}

static void
rd_worker_graceful(rd_worker_t *w)
{
    if (w->stopping) {
        return;
    }
    rd_core_conf_t *ccf = rd_core_conf(w->cycle);
    rd_log_notice("gracefully shutting down, %zu sessions open",
                  w->nsessions);
    w->stopping = 1;
    rd_proctitle_set("worker process is shutting down");
    rd_worker_stop_accepting(w);
    w->shutdown_timer.handler = rd_worker_shutdown_expired;
    w->shutdown_timer.data = w;
    rd_timer_add(&w->loop.timers, &w->shutdown_timer, w->loop.now,
                 ccf->worker_shutdown_timeout);
}

static void
rd_worker_signal_handler(rd_conn_t *c)
{
    rd_worker_t *w = c->data;
    struct signalfd_siginfo si;

    while (read(c->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGQUIT:
            rd_worker_graceful(w);
            break;
        case SIGTERM:
        case SIGINT:
            w->exiting = 1;
            break;
        case SIGUSR1:
            rd_log_reopen();
            for (unsigned i = 0; i < rd_nmodules; i++) {
                if (rd_modules[i]->reopen) {
                    rd_modules[i]->reopen(w);
                }
            }
            break;
        default:
            break;
        }
    }
}

static void
rd_worker_listen(rd_worker_t *w, int on)
{
    for (size_t i = 0; i < w->cycle->nlisteners; i++) {
        if (w->listeners[i].conn) {
            rd_conn_listen(w->listeners[i].conn, on);
        }
    }
}

static void
rd_worker_resume_accepting(rd_worker_t *w)
{
    rd_timer_del(&w->loop.timers, &w->accept_timer);
    if (w->accept_paused) {
        w->accept_paused = 0;
        rd_worker_listen(w, 1);
    }
}

static void
rd_worker_accept_timer(rd_timer_t *t)
{
    rd_worker_resume_accepting(t->data);
}

/* accept(2) failed with err on l: count it; for want of descriptors or
 * memory also stop accepting for a moment and log (once a second). */
static void
rd_worker_accept_failed(rd_worker_t *w, rd_listener_t *l, int err)
{
    rd_accept_err_t why;

    switch (err) {
    case EMFILE:  why = RD_ACCEPT_ERR_EMFILE; break;
    case ENFILE:  why = RD_ACCEPT_ERR_ENFILE; break;
    case ENOBUFS:
    case ENOMEM:  why = RD_ACCEPT_ERR_ENOBUFS; break;
    default:
        /* A connection reset before it was accepted (ECONNABORTED), a
         * firewall's EPERM, ...: about that connection only. */
        rd_stats_accept_error(RD_ACCEPT_ERR_OTHER);
        return;
    }
    rd_stats_accept_error(why);
    if (!w->accept_paused) {
        w->accept_paused = 1;
        w->accept_paused_sessions = w->nsessions;
        rd_worker_listen(w, 0);
        w->accept_timer.handler = rd_worker_accept_timer;
        w->accept_timer.data = w;
        rd_timer_add(&w->loop.timers, &w->accept_timer, w->loop.now,
                     RD_ACCEPT_PAUSE_MS);
    }
    if (w->accept_logged != 0
        && w->loop.now - w->accept_logged < RD_ACCEPT_LOG_MS)
    {
        w->accept_unlogged++;
        return;
    }
    struct rlimit rl;
    char limit[64] = "";
    if (why == RD_ACCEPT_ERR_EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        snprintf(limit, sizeof(limit), ", open files limit %llu",
                 (unsigned long long)rl.rlim_cur);
    }
    char more[96] = "";
    if (w->accept_unlogged > 0) {
        snprintf(more, sizeof(more), "; %llu more such failures in the "
                 "last %lld ms", (unsigned long long)w->accept_unlogged,
                 (long long)(w->loop.now - w->accept_logged));
    }
    rd_log_error("accept on %s: %s (%zu sessions open%s): not accepting "
                 "for %d ms%s", l->addr.text, strerror(err), w->nsessions,
                 limit, RD_ACCEPT_PAUSE_MS, more);
    w->accept_logged = w->loop.now;
    w->accept_unlogged = 0;
}

static void
rd_worker_accept_handler(rd_conn_t *c)
{
    rd_worker_listener_t *wl = c->data;
    rd_worker_t *w = wl->worker;
    rd_listener_t *l = wl->listener;
    rd_core_conf_t *ccf = rd_core_conf(w->cycle);

    for (int i = 0; i < RD_ACCEPT_BATCH && !w->stopping && !w->accept_paused;
         i++)
    {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(c->fd, (struct sockaddr *)&peer, &plen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                rd_worker_accept_failed(w, l, errno);
            }
            return;
        }
        if (w->nsessions >= (size_t)ccf->max_sessions) {
            static const char msg[] = "-ERR max number of clients reached\r\n";
            ssize_t n = write(fd, msg, sizeof(msg) - 1);
            (void)n;
            close(fd);
            rd_stats_refusal(RD_REFUSAL_MAX_SESSIONS);
            rd_log_warn("limits.max_sessions (%lld) reached, connection "
                        "refused", (long long)ccf->max_sessions);
            continue;
        }
        rd_session_create(w, l, fd, (struct sockaddr *)&peer);
    }
}

static void
rd_worker_trim(rd_timer_t *t)
{
    rd_worker_t *w = t->data;

    if (w->trim_closed < RD_TRIM_SESSIONS && w->nsessions > 0) {
        return;             /* a few closes: the next one comes back */
    }
    w->trim_closed = 0;
#ifdef HAVE_MALLOC_TRIM
    int64_t t0 = rd_usec_now();
    int freed = malloc_trim(0);
    rd_log_debug("malloc_trim: %s memory returned to the system in "
                 "%lld us, %zu sessions open", freed ? "some" : "no",
                 (long long)(rd_usec_now() - t0), w->nsessions);
#endif
}

static void
rd_worker_reap(rd_worker_t *w)
{
    size_t n = 0;

    while (w->dead) {
        rd_session_t *s = w->dead;
        w->dead = s->next_active;
        rd_session_free(s);
        n++;
    }
    if (n > 0) {
        w->trim_closed += n;
        if (!rd_timer_armed(&w->trim_timer)) {
            w->trim_timer.handler = rd_worker_trim;
            w->trim_timer.data = w;
            rd_timer_add(&w->loop.timers, &w->trim_timer, w->loop.now,
                         RD_TRIM_DELAY_MS);
        }
    }
}

/* Drop root after the master has read every key and bound every socket. */
static int
rd_worker_drop_privileges(rd_cycle_t *cycle)
{
    rd_core_conf_t *ccf = rd_core_conf(cycle);

    if (ccf->user == NULL) {
        return 0;
    }
    if (geteuid() != 0) {
        rd_log_warn("\"user\" is ignored: the master does not run as root");
        return 0;
    }
    if (setgid(ccf->gid) != 0 || initgroups(ccf->user, ccf->gid) != 0
        || setuid(ccf->uid) != 0)
    {
        rd_log_error("cannot switch to user \"%s\": %s", ccf->user,
                     strerror(errno));
        return -1;
    }
    return 0;
}

static int
rd_worker_init(rd_worker_t *w, rd_cycle_t *cycle, int slot)
{
    w->cycle = cycle;
    w->slot = slot;
    w->pid = getpid();
    w->ctx = rd_calloc(rd_nmodules, sizeof(void *));

    if (rd_loop_init(&w->loop) != 0) {
        rd_log_error("epoll_create1: %s", strerror(errno));
        return -1;
    }

    int sfd = rd_process_signalfd();
    if (sfd < 0) {
        rd_log_error("signalfd: %s", strerror(errno));
        return -1;
    }
    w->sigconn = rd_conn_new(&w->loop, sfd, w);
    w->sigconn->read = rd_worker_signal_handler;
    rd_conn_watch(w->sigconn, EPOLLIN);

    /* This worker accepts on its own slot's sockets; the others' copies
     * inherited from the master are closed so that each socket lives only
     * as long as its worker and the master need it. */
    for (size_t i = 0; i < cycle->nlisteners; i++) {
        rd_listener_t *l = &cycle->listeners[i];
        for (unsigned k = 0; k < l->nfds; k++) {
            if (k != (unsigned)slot && l->fds[k] >= 0) {
                close(l->fds[k]);
                l->fds[k] = -1;
            }
        }
    }
    w->listeners = rd_calloc(cycle->nlisteners ? cycle->nlisteners : 1,
                             sizeof(rd_worker_listener_t));
    for (size_t i = 0; i < cycle->nlisteners; i++) {
        rd_worker_listener_t *wl = &w->listeners[i];
        wl->worker = w;
        wl->listener = &cycle->listeners[i];
        wl->conn = rd_conn_new_listener(&w->loop, wl->listener->fds[slot],
                                        wl);
        if (wl->conn == NULL) {
            rd_log_error("cannot watch listener %s: %s",
                         wl->listener->addr.text, strerror(errno));
            return -1;
        }
        wl->conn->read = rd_worker_accept_handler;
    }

    /* Before dropping root: raising the hard limit needs it. */
    rd_core_conf_t *ccf = rd_core_conf(cycle);
    char err[512];
    if (ccf->worker_rlimit_nofile > 0
        && rd_core_set_nofile(ccf->worker_rlimit_nofile, err,
                              sizeof(err)) != 0)
    {
        rd_log_error("%s", err);
        return -1;
    }

    if (rd_worker_drop_privileges(cycle) != 0) {
        return -1;
    }

    /* This worker's counter slot, before any module may count. */
    rd_stats_worker_init(w);
    for (unsigned i = 0; i < rd_nmodules; i++) {
        if (rd_modules[i]->init_worker
            && rd_modules[i]->init_worker(w) != RD_OK)
        {
            rd_log_error("module %s: worker initialisation failed",
                         rd_modules[i]->name);
            return -1;
        }
    }
    return 0;
}

void
rd_worker_main(rd_cycle_t *cycle, int slot)
{
    rd_worker_t w;
    memset(&w, 0, sizeof(w));

    rd_proctitle_set("worker process");
    if (rd_worker_init(&w, cycle, slot) != 0) {
        exit(2);
    }
    rd_log_info("worker %d started", slot);

    while (!w.exiting) {
        rd_loop_once(&w.loop);
        rd_worker_reap(&w);
        if (w.accept_paused && w.nsessions < w.accept_paused_sessions) {
            /* Descriptors were freed: try again now. */
            rd_worker_resume_accepting(&w);
        }
        if (w.stopping && w.nsessions == 0) {
            break;
        }
    }

    while (w.sessions) {
        rd_session_close(w.sessions, "worker stopping");
    }
    rd_worker_reap(&w);
    rd_worker_free_requests(&w);
    rd_worker_stop_accepting(&w);

    for (unsigned i = rd_nmodules; i-- > 0;) {
        if (rd_modules[i]->exit_worker) {
            rd_modules[i]->exit_worker(&w);
        }
    }
    rd_conn_close(w.sigconn);
    rd_loop_free(&w.loop);
    free(w.listeners);
    free(w.ctx);
    rd_log_info("worker %d exiting", slot);
    rd_cycle_destroy(cycle);
    exit(0);
}

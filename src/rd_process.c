/*
 * rd_process.c - the master process: start workers (and the modules'
 * helper processes, such as the status server, in the slots after the
 * workers: rd_module_process_t), watch them, act on signals.
 *
 * The master blocks every signal it cares about and takes them one at a
 * time with sigtimedwait(2) in a single loop, so there is no handler code
 * at all (nginx sets flags in handlers and acts on them in the loop; this
 * is the same story without the flags). The timeout is the next moment
 * something is due: a crashed worker's delayed restart, or the deadline
 * after which workers that did not stop are killed.
 *
 *   HUP   reload: build a complete new cycle (configuration, certificates,
 *         listeners); on any error log why and change nothing; on success
 *         start new workers and tell the old ones to stop gracefully.
 *   QUIT  graceful stop: workers finish their sessions, then exit.
 *   TERM, INT  fast stop.
 *   USR1  reopen logs, here and in every worker.
 *   CHLD  reap; a worker of the current cycle that died is restarted, at
 *         once the first time, then with a growing delay if it keeps dying.
 *
 * Under systemd (Type=notify) the master reports READY=1 once its workers
 * are started, RELOADING=1 ... READY=1 around a reload (also a failed one:
 * the old configuration keeps serving) and STOPPING=1 (rd_notify.c).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_module.h"
#include "rd_notify.h"
#include "rd_process.h"
#include "rd_stats.h"
#include "rd_timer.h"
#include "rd_worker.h"

#define RD_MAX_CHILDREN      1024
#define RD_RESPAWN_QUICK_MS  2000     /* died sooner: counts as a failure */
#define RD_RESPAWN_MAX_MS    30000
#define RD_KILL_GRACE_MS     5000

typedef struct {
    pid_t       pid;
    int         slot;
    int         old;          /* belongs to a retired cycle */
    rd_msec_t   started;
    rd_msec_t   kill_at;      /* SIGKILL if still alive then (0: none) */
} rd_child_t;

typedef struct {
    rd_cycle_t *cycle;
    rd_child_t  children[RD_MAX_CHILDREN];
    size_t      nchildren;
    int        *failures;     /* per slot, consecutive quick deaths */
    rd_msec_t  *respawn_at;   /* per slot, 0 = nothing scheduled */
    int64_t     nslots;
    int         quitting;
    int         terminating;
    rd_msec_t   terminate_kill_at;
} rd_master_t;

pid_t
rd_pid_file_read(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
        pid = -1;
    }
    fclose(f);
    return (pid_t)pid;
}

void
rd_process_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGQUIT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGCHLD);
}

void
rd_process_block_signals(void)
{
    sigset_t set;
    rd_process_signal_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

int
rd_process_signalfd(void)
{
    sigset_t set;
    rd_process_signal_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static int64_t
rd_worker_count(rd_cycle_t *cycle)
{
    return cycle->nworkers;
}

static void
rd_master_spawn(rd_master_t *m, int slot)
{
    if (m->nchildren >= RD_MAX_CHILDREN) {
        rd_log_error("too many worker processes");
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        rd_log_error("fork: %s", strerror(errno));
        m->respawn_at[slot] = rd_msec_now() + 1000;
        return;
    }
    if (pid == 0) {
        int workers = (int)rd_worker_count(m->cycle);
        if (slot >= workers) {
            /* A module's helper process (the status server). */
            rd_modules_process_main(m->cycle, slot - workers);
        }
        rd_worker_main(m->cycle, slot);
    }
    rd_child_t *c = &m->children[m->nchildren++];
    c->pid = pid;
    c->slot = slot;
    c->old = 0;
    c->started = rd_msec_now();
    c->kill_at = 0;
    m->respawn_at[slot] = 0;
    rd_log_notice("started worker process %d (slot %d)", (int)pid, slot);
}

static void
rd_master_start_workers(rd_master_t *m)
{
    m->nslots = rd_worker_count(m->cycle) + rd_modules_processes(m->cycle);
    free(m->failures);
    free(m->respawn_at);
    m->failures = rd_calloc((size_t)m->nslots, sizeof(int));
    m->respawn_at = rd_calloc((size_t)m->nslots, sizeof(rd_msec_t));
    for (int i = 0; i < m->nslots; i++) {
        rd_master_spawn(m, i);
    }
}

static void
rd_master_signal_all(rd_master_t *m, int sig, int only_old)
{
    for (size_t i = 0; i < m->nchildren; i++) {
        if (!only_old || m->children[i].old) {
            kill(m->children[i].pid, sig);
        }
    }
}

static void
rd_master_reap(rd_master_t *m)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        rd_stats_worker_gone(pid);
        size_t i;
        for (i = 0; i < m->nchildren; i++) {
            if (m->children[i].pid == pid) {
                break;
            }
        }
        if (i == m->nchildren) {
            continue;
        }
        rd_child_t c = m->children[i];
        m->children[i] = m->children[--m->nchildren];

        int crashed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (WIFSIGNALED(status)) {
            rd_log(crashed && !c.old && !m->quitting && !m->terminating
                   ? RD_LOG_ERROR : RD_LOG_NOTICE,
                   "worker process %d exited on signal %d", (int)pid,
                   WTERMSIG(status));
        } else {
            rd_log(crashed ? RD_LOG_ERROR : RD_LOG_NOTICE,
                   "worker process %d exited with code %d", (int)pid,
                   WEXITSTATUS(status));
        }

        if (c.old || m->quitting || m->terminating || c.slot >= m->nslots) {
            continue;
        }

        /* A worker of the current cycle died: start another. A worker
         * that keeps dying soon after start waits longer each time, so a
         * crash loop does not spin the machine. */
        rd_msec_t now = rd_msec_now();
        if (now - c.started < RD_RESPAWN_QUICK_MS) {
            m->failures[c.slot]++;
        } else {
            m->failures[c.slot] = 0;
        }
        rd_msec_t delay = 0;
        if (m->failures[c.slot] > 1) {
            delay = 100LL << (m->failures[c.slot] < 10
                              ? m->failures[c.slot] - 1 : 9);
            if (delay > RD_RESPAWN_MAX_MS) {
                delay = RD_RESPAWN_MAX_MS;
            }
            rd_log_warn("worker slot %d keeps dying, restarting in %lld ms",
                        c.slot, (long long)delay);
        }
        m->respawn_at[c.slot] = now + delay;
    }
}

static void
rd_master_reload(rd_master_t *m)
{
    char *err = NULL;

    rd_log_notice("reconfiguring from %s", m->cycle->conf_file);

    rd_cycle_t *nc = rd_cycle_load(m->cycle->conf_file, &err);
    if (nc == NULL) {
        rd_log_error("reload failed, still running the old configuration: "
                     "%s", err);
        free(err);
        rd_stats_reload(0);
        return;
    }
    int rc = rd_cycle_init_master(nc, &err);
    if (rc == 0) {
        /* Its databases get their series before anything can fail the
         * reload on the way (a database keeps its index for good). */
        rd_stats_register_databases(nc);
    }
    if (rc != 0
        || rd_modules_process_open(nc, m->cycle, &err) != 0
        || rd_cycle_open_listeners(nc, m->cycle, &err) != 0)
    {
        rd_log_error("reload failed, still running the old configuration: "
                     "%s", err);
        free(err);
        rd_cycle_destroy(nc);
        rd_stats_reload(0);
        return;
    }
    rd_core_conf_t *ccf = rd_core_conf(nc);
    if (rd_log_open(ccf->error_log, (int)ccf->error_log_level) != 0) {
        rd_log_error("reload failed, still running the old configuration: "
                     "cannot open error log \"%s\": %s", ccf->error_log,
                     strerror(errno));
        rd_cycle_give_back_listeners(nc, m->cycle);
        rd_cycle_destroy(nc);
        rd_stats_reload(0);
        return;
    }

    /* The new cycle is complete: retire the old workers. */
    rd_msec_t deadline = rd_msec_now()
        + rd_core_conf(m->cycle)->worker_shutdown_timeout
        + rd_core_conf(m->cycle)->worker_shutdown_grace + RD_KILL_GRACE_MS;
    for (size_t i = 0; i < m->nchildren; i++) {
        m->children[i].old = 1;
        m->children[i].kill_at = deadline;
    }
    rd_master_signal_all(m, SIGQUIT, 1);
    rd_stats_reload(1);         /* new generation: before the new workers */

    /* The old cycle goes first, closing the sockets the new one did not
     * take over, so that new workers do not inherit them. */
    rd_cycle_t *old = m->cycle;
    m->cycle = nc;
    rd_cycle_destroy(old);
    rd_master_start_workers(m);
    rd_log_notice("reload done");
}

/* Tell the status server how many workers are alive. */
static void
rd_master_publish(rd_master_t *m)
{
    int64_t current = 0, old = 0;
    for (size_t i = 0; i < m->nchildren; i++) {
        rd_child_t *c = &m->children[i];
        old += c->old;
        current += !c->old && c->slot < rd_worker_count(m->cycle);
    }
    rd_stats_workers(current, old);
}

static rd_msec_t
rd_master_next_timeout(rd_master_t *m, rd_msec_t now)
{
    rd_msec_t next = -1;

#define RD_EARLIER(t)                                                   \
    do {                                                                \
        if ((t) > 0 && (next < 0 || (t) - now < next)) {                \
            next = (t) - now > 0 ? (t) - now : 0;                       \
        }                                                               \
    } while (0)

    for (int64_t i = 0; i < m->nslots && !m->quitting && !m->terminating;
         i++)
    {
        RD_EARLIER(m->respawn_at[i]);
    }
    for (size_t i = 0; i < m->nchildren; i++) {
        RD_EARLIER(m->children[i].kill_at);
    }
    if (m->terminating) {
        RD_EARLIER(m->terminate_kill_at);
    }
#undef RD_EARLIER
    return next;
}

static void
rd_master_timers(rd_master_t *m, rd_msec_t now)
{
    if (!m->quitting && !m->terminating) {
        for (int64_t i = 0; i < m->nslots; i++) {
            if (m->respawn_at[i] > 0 && m->respawn_at[i] <= now) {
                rd_master_spawn(m, (int)i);
            }
        }
    }
    for (size_t i = 0; i < m->nchildren; i++) {
        rd_child_t *c = &m->children[i];
        if ((c->kill_at > 0 && c->kill_at <= now)
            || (m->terminating && m->terminate_kill_at <= now))
        {
            rd_log_warn("worker process %d did not stop in time, killing it",
                        (int)c->pid);
            kill(c->pid, SIGKILL);
            c->kill_at = 0;
        }
    }
}

static void
rd_master_stop(rd_master_t *m, int graceful)
{
    rd_msec_t now = rd_msec_now();
    if (graceful) {
        if (m->quitting || m->terminating) {
            return;
        }
        rd_log_notice("graceful stop requested, waiting for sessions");
        m->quitting = 1;
        rd_msec_t deadline = now
            + rd_core_conf(m->cycle)->worker_shutdown_timeout
            + rd_core_conf(m->cycle)->worker_shutdown_grace
            + RD_KILL_GRACE_MS;
        for (size_t i = 0; i < m->nchildren; i++) {
            m->children[i].kill_at = deadline;
        }
        rd_master_signal_all(m, SIGQUIT, 0);
    } else {
        if (m->terminating) {
            return;
        }
        rd_log_notice("fast stop requested");
        m->terminating = 1;
        m->terminate_kill_at = now + RD_KILL_GRACE_MS;
        rd_master_signal_all(m, SIGTERM, 0);
    }
    /* Stop accepting in the master's copy too, so that nothing is queued
     * on a socket nobody will serve. */
    rd_cycle_close_listeners(m->cycle);
}

int
rd_master_run(rd_cycle_t *cycle)
{
    rd_master_t *m = rd_calloc(1, sizeof(rd_master_t));
    m->cycle = cycle;

    sigset_t set;
    rd_process_signal_set(&set);

    rd_master_start_workers(m);
    rd_notify_ready();

    for (;;) {
        if ((m->quitting || m->terminating) && m->nchildren == 0) {
            break;
        }
        rd_master_publish(m);

        rd_msec_t now = rd_msec_now();
        rd_msec_t wait = rd_master_next_timeout(m, now);
        siginfo_t si;
        int sig;

        if (wait < 0) {
            sig = sigwaitinfo(&set, &si);
        } else {
            struct timespec ts = { wait / 1000, (wait % 1000) * 1000000 };
            sig = sigtimedwait(&set, &si, &ts);
        }

        switch (sig) {
        case SIGCHLD:
            rd_master_reap(m);
            break;
        case SIGHUP:
            if (!m->quitting && !m->terminating) {
                rd_notify_reloading();
                rd_master_reload(m);
                rd_notify_ready();
            }
            break;
        case SIGQUIT:
            rd_notify_stopping();
            rd_master_stop(m, 1);
            break;
        case SIGTERM:
        case SIGINT:
            rd_notify_stopping();
            rd_master_stop(m, 0);
            break;
        case SIGUSR1:
            rd_log_notice("reopening logs");
            rd_log_reopen();
            rd_master_signal_all(m, SIGUSR1, 0);
            break;
        default:
            break;
        }
        /* SIGCHLD is not queued per child: reap whatever has exited. */
        rd_master_reap(m);
        rd_master_timers(m, rd_msec_now());
    }

    rd_log_notice("exiting");
    const char *pid_file = rd_core_conf(m->cycle)->pid_file;
    if (rd_pid_file_read(pid_file) == getpid()) {
        unlink(pid_file);
    }
    rd_cycle_destroy(m->cycle);
    free(m->failures);
    free(m->respawn_at);
    free(m);
    return 0;
}

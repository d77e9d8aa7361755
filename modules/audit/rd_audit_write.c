/*
 * rd_audit_write.c - the audit module's writer: the worker's buffer of
 * whole lines, its flushing, what happens when the disk fails
 * (audit.on_failure), and the reopen on SIGUSR1.
 *
 * Writing. Each worker opens the file itself (O_APPEND, 0640) and formats
 * events into its own buffer. The buffer is written with one write(2) of
 * whole lines when it passes audit.buffer bytes, every flush_interval (a
 * timer armed while something waits), at every session end and at worker
 * exit. Writes to a file opened with O_APPEND are atomic with respect to
 * each other, so lines of several workers never interleave. SIGUSR1
 * flushes and reopens the file (logrotate); a reload starts new workers,
 * which open it anew.
 *
 * Disk trouble. When a write fails (ENOSPC, EFBIG, EIO, EACCES, ...):
 *   block     the lines stay buffered (at most 4 x audit.buffer bytes: the
 *             oldest lines beyond that are dropped and counted) and every
 *             new command is refused with "-ERR redoubt: audit unavailable"
 *             (QUIT still works) until a later write succeeds; the write
 *             is retried every flush_interval;
 *   continue  the lines are dropped and counted, commands go on, and the
 *             error log says so at most once per flush_interval.
 * A write cut short by a full disk or RLIMIT_FSIZE would leave half a line
 * at the end of the file: the module truncates that fragment away again
 * when the file still ends where its write ended (no other worker could
 * append meanwhile, the disk being full for it too), and otherwise starts
 * its next write with a line break, so that later lines stay whole.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rd_audit.h"
#include "rd_audit_int.h"
#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_stats.h"
#include "rd_worker.h"

rd_audit_worker_t rd_aw = { .fd = -1 };

/* The module's rows of the shared counters (rd_audit.h). */
const rd_stats_def_t rd_audit_stats_rows[] = {
    [RD_AUDIT_STAT_WRITTEN] = {
        .name = "redoubt_audit_events_total", .labels = "result=\"written\"",
        .help = "Audit events, by result: written to audit.path, or "
                "dropped (audit.on_failure = continue, or lost).",
        .type = RD_STATS_COUNTER },
    [RD_AUDIT_STAT_DROPPED] = {
        .name = "redoubt_audit_events_total", .labels = "result=\"dropped\"",
        .type = RD_STATS_COUNTER },
    [RD_AUDIT_STAT_FAILING] = {
        .name = "redoubt_audit_failing_workers",
        .help = "Worker processes whose last audit write failed.",
        .type = RD_STATS_GAUGE, .flags = RD_STATS_PROCESS },
    rd_null_stat
};

void
rd_audit_stats(rd_audit_stats_t *st)
{
    *st = rd_aw.st;
    st->pending = rd_aw.nevents;
    st->failing = rd_aw.failing;
}

/* --- counting ---------------------------------------------------------------- */

/* Each count goes to this worker's own (rd_audit_stats()) and to its
 * slot's shared counters at once. */
static void
rd_audit_count(unsigned row, uint64_t n)
{
    if (row == RD_AUDIT_STAT_WRITTEN) {
        rd_aw.st.written += n;
    } else {
        rd_aw.st.dropped += n;
    }
    rd_stats_mod_add(&rd_audit_module, row, n);
}

static void
rd_audit_set_failing(int failing)
{
    rd_aw.failing = failing ? 1 : 0;
    rd_stats_mod_set(&rd_audit_module, RD_AUDIT_STAT_FAILING, rd_aw.failing);
}

/* --- the writer ------------------------------------------------------------- */

static size_t
rd_audit_count_lines(const char *p, size_t n)
{
    size_t k = 0;
    const char *end = p + n;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

static int
rd_audit_open_file(void)
{
    return open(rd_aw.conf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                0640);
}

static const char *
rd_audit_strerror(int err)
{
    return err ? strerror(err) : "short write (disk full or file size limit)";
}

static void
rd_audit_arm(void)
{
    if (!rd_timer_armed(&rd_aw.timer)) {
        rd_worker_t *w = rd_aw.worker;
        rd_timer_add(&w->loop.timers, &rd_aw.timer, w->loop.now,
                     rd_aw.conf->flush_interval);
    }
}

/* Drop the oldest lines until at most limit bytes wait, but keep the
 * newest line: a blocked worker retries by writing what it holds. */
static void
rd_audit_bound(size_t limit)
{
    rd_buf_t *b = &rd_aw.buf;
    uint64_t n = 0;

    while (rd_buf_used(b) > limit) {
        char *p = rd_buf_rpos(b);
        char *nl = memchr(p, '\n', rd_buf_used(b));
        if (nl == NULL || (size_t)(nl - p) + 1 >= rd_buf_used(b)) {
            break;
        }
        rd_buf_consume(b, (size_t)(nl - p) + 1);
        n++;
    }
    if (n > rd_aw.nevents) {
        n = rd_aw.nevents;
    }
    rd_aw.nevents -= n;
    rd_audit_count(RD_AUDIT_STAT_DROPPED, n);
    rd_aw.unlogged += n;
}

static void
rd_audit_failed(int err)
{
    rd_audit_conf_t *c = rd_aw.conf;
    rd_msec_t now = rd_aw.worker->loop.now;
    int was = rd_aw.failing;

    rd_aw.st.write_errors++;
    rd_audit_set_failing(1);
    rd_aw.err = err;

    if (c->on_failure == RD_AUDIT_BLOCK) {
        rd_audit_bound(4 * (size_t)c->buffer);
        if (!was) {
            rd_log_error("audit: cannot write \"%s\": %s; refusing commands "
                         "until it works again (audit.on_failure = block)",
                         c->path, rd_audit_strerror(err));
            rd_aw.last_log = now;
        }
    } else {
        rd_audit_count(RD_AUDIT_STAT_DROPPED, rd_aw.nevents);
        rd_aw.unlogged += rd_aw.nevents;
        rd_aw.nevents = 0;
        rd_buf_reset(&rd_aw.buf);
        if (!was || now - rd_aw.last_log >= c->flush_interval) {
            rd_log_error("audit: cannot write \"%s\": %s; %llu events "
                         "dropped (audit.on_failure = continue)", c->path,
                         rd_audit_strerror(err),
                         (unsigned long long)rd_aw.unlogged);
            rd_aw.unlogged = 0;
            rd_aw.last_log = now;
        }
    }
    rd_audit_arm();
}

static void
rd_audit_recovered(void)
{
    if (!rd_aw.failing) {
        return;
    }
    rd_audit_set_failing(0);
    rd_log_notice("audit: writing \"%s\" works again (%llu events dropped "
                  "in all so far)", rd_aw.conf->path,
                  (unsigned long long)rd_aw.st.dropped);
    rd_aw.unlogged = 0;
}

/* A write ended n bytes into a line: take those bytes back if the file
 * still ends where the write ended. */
static void
rd_audit_unwrite(size_t frag)
{
    off_t end = lseek(rd_aw.fd, 0, SEEK_CUR);
    struct stat st;

    if (end >= (off_t)frag && fstat(rd_aw.fd, &st) == 0
        && st.st_size == end && ftruncate(rd_aw.fd, end - (off_t)frag) == 0)
    {
        return;
    }
    rd_log_warn("audit: a partly written line is left in \"%s\"",
                rd_aw.conf->path);
    rd_aw.need_newline = 1;
}

/* Write what waits. Returns 0 when the buffer is empty afterwards. */
int
rd_audit_flush(void)
{
    rd_buf_t *b = &rd_aw.buf;

    int opened = 0;
    if (rd_aw.fd < 0) {
        rd_aw.fd = rd_audit_open_file();
        if (rd_aw.fd < 0) {
            rd_audit_failed(errno);
            return -1;
        }
        opened = 1;
    }
    if (rd_buf_used(b) == 0) {
        /* Nothing to try a write with: only an open that failed before
         * and works now says the file is usable again. */
        if (opened) {
            rd_audit_recovered();
        }
        return 0;
    }
    if (rd_aw.need_newline) {
        if (write(rd_aw.fd, "\n", 1) != 1) {
            rd_audit_failed(errno);
            return -1;
        }
        rd_aw.need_newline = 0;
    }

    while (rd_buf_used(b) > 0) {
        size_t used = rd_buf_used(b);
        ssize_t n = write(rd_aw.fd, rd_buf_rpos(b), used);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rd_audit_failed(errno);
            return -1;
        }
        if ((size_t)n == used) {
            rd_audit_count(RD_AUDIT_STAT_WRITTEN, rd_aw.nevents);
            rd_aw.nevents = 0;
            rd_buf_reset(b);
            if (b->cap > 4 * (size_t)rd_aw.conf->buffer) {
                rd_buf_free(b);
            }
            rd_audit_recovered();
            return 0;
        }
        /* Cut short: keep the whole lines written, take back a fragment. */
        const char *p = rd_buf_rpos(b);
        size_t whole = (size_t)n;
        while (whole > 0 && p[whole - 1] != '\n') {
            whole--;
        }
        if ((size_t)n > whole) {
            rd_audit_unwrite((size_t)n - whole);
        }
        uint64_t lines = rd_audit_count_lines(p, whole);
        rd_audit_count(RD_AUDIT_STAT_WRITTEN, lines);
        rd_aw.nevents -= lines;
        rd_buf_consume(b, whole);
        if (whole == 0) {
            rd_audit_failed(0);
            return -1;
        }
        /* Try the rest: it fails with the reason, or goes through. */
    }
    rd_audit_recovered();
    return 0;
}

static void
rd_audit_timer(rd_timer_t *t)
{
    rd_audit_flush();
    /* A blocked worker retries until a write works (it always holds a
     * line to try with, or has no file open yet). */
    if (rd_buf_used(&rd_aw.buf) > 0
        || (rd_aw.failing && (rd_aw.fd < 0
                              || rd_aw.conf->on_failure == RD_AUDIT_BLOCK)))
    {
        rd_audit_arm();
    }
}

int
rd_audit_blocked(void)
{
    return rd_aw.failing && rd_aw.conf->on_failure == RD_AUDIT_BLOCK;
}

/* End the line; write when the buffer is full. */
void
rd_audit_commit(rd_buf_t *b)
{
    RD_AUDIT_LIT(b, "}\n");
    rd_aw.nevents++;

    if (rd_audit_blocked()) {
        rd_audit_bound(4 * (size_t)rd_aw.conf->buffer);
    } else if (rd_buf_used(b) >= (size_t)rd_aw.conf->buffer) {
        rd_audit_flush();
    }
    if (rd_buf_used(b) > 0 || rd_aw.failing) {
        rd_audit_arm();
    }
}

/* --- worker hooks ------------------------------------------------------------ */

int
rd_audit_init_worker(rd_worker_t *w)
{
    rd_audit_conf_t *c = rd_audit_conf(w->cycle);
    if (c->path == NULL) {
        return RD_OK;
    }
    /* RLIMIT_FSIZE must give EFBIG (disk trouble), not kill the worker. */
    signal(SIGXFSZ, SIG_IGN);

    rd_aw.conf = c;
    rd_aw.worker = w;
    rd_aw.st.enabled = true;
    rd_aw.seq = 0;
    rd_aw.timer.handler = rd_audit_timer;
    rd_aw.acl_setuser = rd_command_find(RD_STR("acl|setuser"));
    rd_aw.config_set = rd_command_find(RD_STR("config|set"));
    rd_aw.migrate = rd_command_find(RD_STR("migrate"));
    static const char *const sub[] = {
        "subscribe", "psubscribe", "ssubscribe",
        "unsubscribe", "punsubscribe", "sunsubscribe"
    };
    _Static_assert(rd_countof(sub) == rd_countof(rd_aw.subscribe),
                   "one row per subscribe-family command");
    for (size_t i = 0; i < rd_countof(sub); i++) {
        rd_aw.subscribe[i] = rd_command_find((rd_str_t) { sub[i],
                                                           strlen(sub[i]) });
    }
    rd_aw.timer.data = NULL;
    rd_aw.fd = rd_audit_open_file();
    if (rd_aw.fd < 0) {
        rd_audit_failed(errno);
    }
    return RD_OK;
}

void
rd_audit_exit_worker(rd_worker_t *w)
{
    if (rd_aw.conf == NULL) {
        return;
    }
    rd_audit_flush();
    if (rd_aw.nevents > 0) {
        rd_log_error("audit: %llu events lost at worker exit: \"%s\" cannot "
                     "be written: %s", (unsigned long long)rd_aw.nevents,
                     rd_aw.conf->path, rd_audit_strerror(rd_aw.err));
        rd_audit_count(RD_AUDIT_STAT_DROPPED, rd_aw.nevents);
        rd_aw.nevents = 0;
    }
    rd_timer_del(&w->loop.timers, &rd_aw.timer);
    rd_buf_free(&rd_aw.buf);
    if (rd_aw.fd >= 0) {
        close(rd_aw.fd);
        rd_aw.fd = -1;
    }
    rd_aw.conf = NULL;
}

void
rd_audit_reopen(rd_worker_t *w)
{
    if (rd_aw.conf == NULL) {
        return;
    }
    /* What was logged before the signal goes to the old file. */
    if (rd_aw.fd >= 0) {
        rd_audit_flush();
    }
    int fd = rd_audit_open_file();
    if (fd < 0) {
        int err = errno;
        rd_log_error("audit: cannot reopen \"%s\": %s", rd_aw.conf->path,
                     strerror(err));
        return;
    }
    if (rd_aw.fd >= 0) {
        close(rd_aw.fd);
    }
    rd_aw.fd = fd;
    rd_aw.need_newline = 0;
    rd_log_info("audit: reopened \"%s\"", rd_aw.conf->path);
    if (rd_aw.failing || rd_buf_used(&rd_aw.buf) > 0) {
        rd_audit_flush();
    }
}

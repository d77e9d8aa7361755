/*
 * rd_audit.c - the audit module: who ran what, where, as whom, and with
 * what outcome, as JSON Lines.
 *
 *   audit = {
 *       path = "/var/log/redoubt/audit.log";  # no path: auditing is off
 *       args = "names";           # "names" | "full" | "none"
 *       max_arg_bytes = "1kb";    # each argument cut there, with a marker
 *       flush_interval = "1s";    # buffered at most this long
 *       buffer = "64kb";          # or until this many bytes are waiting
 *       on_failure = "block";     # "block" | "continue"
 *   };
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
 *
 * Events, one JSON object per line. Common fields, in this order:
 *   time      RFC 3339 UTC with microseconds, "2026-11-24T17:30:00.123456Z"
 *   event     session.start, session.auth, session.query, session.end
 *   sid       128 random bits in hex, the same for all events of a session
 *   user      the certificate's user (null on a plaintext listener or when
 *             the TLS handshake failed)
 *   roles     the certificate's roles (an array, maybe empty)
 *   db        the database (null when none was chosen)
 *   db_user   the database user at the time of the event (null for a
 *             session refused before it had an identity); for
 *             session.auth the user in effect after the reply (the rbac
 *             module's reply handler runs before the audit phase)
 *   client    the client's "ip:port"
 *   worker    the worker's pid
 *   seq       the line's number in this worker process: 1 for its first
 *             line, then one more for every line formatted, whether it is
 *             written or dropped later, so a gap in a worker's numbers
 *             shows lost lines
 *   redoubt   redoubt's version
 * and per event:
 *   session.start  result ("allowed" | "refused"), listener, and for a
 *                  refused session reason (the refusal sent to the
 *                  client, less "ERR redoubt: ", or why the connection
 *                  ended before the session started, e.g. "TLS handshake
 *                  failed")
 *   session.auth   AUTH and HELLO with an AUTH option (r->conncmd):
 *                  command ("auth" | "hello"), auth_user (the user the
 *                  command asks for, as Redis reads it: "default" for AUTH
 *                  with only a password on a listener without a route
 *                  user, the last AUTH option of a HELLO, null for an AUTH
 *                  Redis refuses as a syntax error), outcome (from the
 *                  reply: "ok", the error's class, "unanswered"), node,
 *                  error (as for session.query), latency_us. No argument
 *                  is ever written.
 *   session.query  command (lower case), subcommand (container commands
 *                  only), nkeys (null when the keys cannot be known),
 *                  node (the Redis "ip:port" it went to, null when
 *                  redoubt answered), outcome ("ok", an error's class such
 *                  as "NOPERM", "ERR", "WRONGTYPE", or "unanswered" when
 *                  the session ended before the reply), error (the error's
 *                  first line, up to 63 bytes; not with args = "none"),
 *                  latency_us, and by audit.args: "keys" (names, the
 *                  default: the keys only, never values), "args" (full:
 *                  every argument after the command and subcommand), or
 *                  nothing (none). At most 1024 arguments or keys are
 *                  listed, then one string "…(+N arguments)"; each is cut
 *                  at max_arg_bytes with "…(+N bytes)" (see rd_json.h).
 *                  With args = "full", scripts (EVAL's body, FUNCTION
 *                  LOAD's code) are logged as any other argument.
 *   session.end    duration_us, bytes_in, bytes_out, commands, errors (error
 *                  replies), reason
 *
 * Secrets (rd_audit_plan) are replaced with "(redacted)", in "args", in
 * "keys" and inside "error" texts that quote them: at least every argument
 * redis-server 7.0 redacts from SLOWLOG and MONITOR, found the way Redis
 * finds them, and more where Redis gives up early:
 *   AUTH           every argument (session.auth: none is written);
 *   HELLO          the user and password of every AUTH option, walking the
 *                  options as Redis does (rd_hello_next); from an option
 *                  Redis refuses (or a version that is no integer) on,
 *                  every argument;
 *   ACL SETUSER    every argument after SETUSER, the user name too (Redis
 *                  redacts them all: rules carry passwords, >pw <pw #hash
 *                  !hash);
 *   CONFIG SET     the value of every pair whose parameter (any case) is
 *                  one Redis marks SENSITIVE_CONFIG (requirepass,
 *                  masterauth, masteruser), a TLS key passphrase
 *                  (tls-key-file-pass, tls-client-key-file-pass), any
 *                  name containing "pass", "auth" or "secret", or a
 *                  module's parameter (a name with a '.', which may be
 *                  sensitive: redoubt cannot know);
 *   MIGRATE        the password after AUTH, the user and password after
 *                  AUTH2, walking the options from argv[6] as Redis does
 *                  (KEYS ends them); after an option Redis refuses, every
 *                  argument;
 *   a command the table does not know as Redis would run it (no row: a
 *                  mistyped or a module's command; a container with an
 *                  unknown subcommand; the wrong number of arguments,
 *                  which Redis refuses unread): every argument, so that
 *                  only the name and the count are written.
 *
 * session.start "allowed" comes from an authorize handler: the module is
 * last in the registry, so when it runs every other module has let the
 * session in. A session that never started (refused by a module, or
 * closed during the TLS handshake) gets session.start "refused" and
 * session.end from the session_end hook.
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
#include "rd_command.h"
#include "rd_conncmd.h"
#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_json.h"
#include "rd_log.h"
#include "rd_stats.h"
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

static const rd_conf_enum_t rd_audit_args_enum[] = {
    { "full", RD_AUDIT_ARGS_FULL }, { "names", RD_AUDIT_ARGS_NAMES },
    { "none", RD_AUDIT_ARGS_NONE }, { NULL, 0 }
};

static const rd_conf_enum_t rd_audit_failure_enum[] = {
    { "block", RD_AUDIT_BLOCK }, { "continue", RD_AUDIT_CONTINUE },
    { NULL, 0 }
};

static const rd_conf_range_t rd_audit_arg_range = { 1, 64LL << 20 };
static const rd_conf_range_t rd_audit_interval_range = { 1, 3600000 };
static const rd_conf_range_t rd_audit_buffer_range = { 1, 256LL << 20 };

#define C(field) offsetof(rd_audit_conf_t, field)

static const rd_directive_t rd_audit_directives[] = {
    { "audit.path", RD_CONF_MAIN, rd_conf_set_path, C(path), NULL },
    { "audit.args", RD_CONF_MAIN, rd_conf_set_enum, C(args),
      rd_audit_args_enum },
    { "audit.max_arg_bytes", RD_CONF_MAIN, rd_conf_set_size,
      C(max_arg_bytes), &rd_audit_arg_range },
    { "audit.flush_interval", RD_CONF_MAIN, rd_conf_set_msec,
      C(flush_interval), &rd_audit_interval_range },
    { "audit.buffer", RD_CONF_MAIN, rd_conf_set_size, C(buffer),
      &rd_audit_buffer_range },
    { "audit.on_failure", RD_CONF_MAIN, rd_conf_set_enum, C(on_failure),
      rd_audit_failure_enum },
    rd_null_directive
};

#undef C

/* Per session: its id and the pre-rendered common fields. */
typedef struct {
    unsigned  start_written:1;
    unsigned  refused:1;     /* the session never started */
    uint64_t  errors;
    rd_buf_t  head;        /* "sid":..,"user":..,"roles":[..],"db":.., */
    rd_buf_t  tail;        /* ,"client":..,"worker":.. (then seq) */
} rd_audit_session_t;

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
    const rd_command_t *last_cmd;    /* the last lookup, for pipelines */
    size_t           last_len;
    char             last_name[24];
    time_t           tsec;           /* the second tbuf shows */
    char             tbuf[32];
    size_t           tlen;
    const rd_command_t *acl_setuser; /* commands with secrets */
    const rd_command_t *config_set;
    const rd_command_t *migrate;
} rd_audit_worker_t;

static rd_audit_worker_t rd_aw = { .fd = -1 };

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

void
rd_audit_stats(rd_audit_stats_t *st)
{
    *st = rd_aw.st;
    st->pending = rd_aw.nevents;
    st->failing = rd_aw.failing;
}

/* --- configuration -------------------------------------------------------- */

static void *
rd_audit_create_main(rd_conf_t *cf)
{
    rd_audit_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->args = RD_CONF_UNSET;
    c->max_arg_bytes = RD_CONF_UNSET;
    c->flush_interval = RD_CONF_UNSET;
    c->buffer = RD_CONF_UNSET;
    c->on_failure = RD_CONF_UNSET;
    return c;
}

static const char *
rd_audit_init_main(rd_conf_t *cf, void *conf)
{
    rd_audit_conf_t *c = conf;

    if (c->args == RD_CONF_UNSET) {
        c->args = RD_AUDIT_ARGS_NAMES;  /* keys, never values */
    }
    if (c->max_arg_bytes == RD_CONF_UNSET) {
        c->max_arg_bytes = 1024;
    }
    if (c->flush_interval == RD_CONF_UNSET) {
        c->flush_interval = 1000;
    }
    if (c->buffer == RD_CONF_UNSET) {
        c->buffer = 64 * 1024;
    }
    if (c->on_failure == RD_CONF_UNSET) {
        c->on_failure = RD_AUDIT_BLOCK;
    }
    if (c->path == NULL) {
        return NULL;
    }
    if (strcmp(c->path, "stderr") == 0) {
        rd_conf_error_at(cf, cf->ctx, "audit.path", "must be a file");
        return NULL;
    }
    /* The file is created by the workers; its directory must exist. */
    char *dir = rd_pstrdup(cf->pool, c->path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *(slash == dir ? slash + 1 : slash) = '\0';
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rd_conf_error_at(cf, cf->ctx, "audit.path", "the directory "
                             "\"%s\" does not exist", dir);
            return NULL;
        }
    }
    return NULL;
}

static rd_audit_conf_t *
rd_audit_conf(rd_cycle_t *cycle)
{
    return rd_main_conf(cycle, rd_audit_module);
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
    rd_aw.st.dropped += n;
    rd_aw.unlogged += n;
}

static void
rd_audit_failed(int err)
{
    rd_audit_conf_t *c = rd_aw.conf;
    rd_msec_t now = rd_aw.worker->loop.now;
    int was = rd_aw.failing;

    rd_aw.st.write_errors++;
    rd_aw.failing = 1;
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
        rd_aw.st.dropped += rd_aw.nevents;
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
    rd_aw.failing = 0;
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
static int
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
            rd_aw.st.written += rd_aw.nevents;
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
        rd_aw.st.written += lines;
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

static int
rd_audit_blocked(void)
{
    return rd_aw.failing && rd_aw.conf->on_failure == RD_AUDIT_BLOCK;
}

/* --- formatting ------------------------------------------------------------- */

static void
rd_audit_session_cleanup(rd_session_t *s, void *data)
{
    rd_audit_session_t *as = data;
    rd_buf_free(&as->head);
    rd_buf_free(&as->tail);
    free(as);
}

static rd_audit_session_t *
rd_audit_session(rd_session_t *s)
{
    rd_audit_session_t *as = rd_session_ctx(s, rd_audit_module);
    if (as == NULL) {
        as = rd_calloc(1, sizeof(*as));
        rd_session_ctx(s, rd_audit_module) = as;
        rd_session_cleanup_add(s, rd_audit_session_cleanup, as);
    }
    return as;
}

/* The common fields that do not change once the session runs. */
static void
rd_audit_render_common(rd_session_t *s, rd_audit_session_t *as)
{
    const rd_identity_t *id = s->identity;
    rd_buf_t *h = &as->head;

    rd_buf_reset(h);
    rd_buf_append_str(h, "\"sid\":\"");
    rd_buf_append(h, s->sid, 32);
    rd_buf_append_str(h, "\",\"user\":");
    rd_json_cstr(h, id ? id->user : NULL);
    rd_buf_append_str(h, ",\"roles\":[");
    for (size_t i = 0; id && i < id->nroles; i++) {
        rd_json_sep(h);
        rd_json_cstr(h, id->roles[i]);
    }
    rd_buf_append_str(h, "],\"db\":");
    rd_json_cstr(h, s->database ? s->database->name : NULL);
    rd_buf_append_str(h, ",\"db_user\":");

    rd_buf_t *t = &as->tail;
    rd_buf_reset(t);
    rd_buf_append_str(t, ",\"client\":");
    rd_json_cstr(t, s->addr_text);
    rd_buf_append_str(t, ",\"worker\":");
    rd_json_int(t, (int64_t)rd_aw.worker->pid);
}

/* One clock read per event: the monotonic time (for latencies) in
 * rd_aw.now; the wall-clock time derived from it, the offset between the
 * two read again every second (so a clock step shows within a second). */
static void
rd_audit_time(rd_buf_t *b)
{
    int64_t mono = rd_usec_now();
    if (rd_aw.offset_at == 0 || mono - rd_aw.offset_at >= 1000000
        || mono < rd_aw.offset_at)
    {
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        rd_aw.offset = (int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000 - mono;
        rd_aw.offset_at = mono;
    }
    rd_aw.now = mono;
    int64_t real = mono + rd_aw.offset;
    struct timespec ts = { .tv_sec = (time_t)(real / 1000000),
                           .tv_nsec = (long)(real % 1000000) * 1000 };
    if (ts.tv_sec != rd_aw.tsec || rd_aw.tbuf[0] == '\0') {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        rd_aw.tlen = strftime(rd_aw.tbuf, sizeof(rd_aw.tbuf),
                              "%Y-%m-%dT%H:%M:%S", &tm);
        rd_aw.tsec = ts.tv_sec;
    }
    char frac[8];
    long us = ts.tv_nsec / 1000;
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + us % 10);
        us /= 10;
    }
    frac[0] = '.';
    frac[7] = 'Z';
    RD_AUDIT_LIT(b, "{\"time\":\"");
    rd_audit_put(b, rd_aw.tbuf, rd_aw.tlen);
    rd_audit_put(b, frac, 8);
    RD_AUDIT_LIT(b, "\"");
}

/* Start an event line: {"time":..,"event":..,<common fields> */
static rd_buf_t *
rd_audit_begin_event(rd_session_t *s, rd_audit_session_t *as,
                     const char *event, size_t elen)
{
    rd_buf_t *b = &rd_aw.buf;

    if (rd_buf_used(&as->head) == 0) {
        rd_audit_render_common(s, as);
    }
    rd_buf_reserve(b, rd_buf_used(&as->head) + rd_buf_used(&as->tail)
                      + elen + 512);
    rd_audit_time(b);
    RD_AUDIT_LIT(b, ",\"event\":\"");
    rd_audit_put(b, event, elen);
    RD_AUDIT_LIT(b, "\",");
    rd_audit_put(b, rd_buf_rpos(&as->head), rd_buf_used(&as->head));
    if (as->refused && s->identity == NULL) {
        RD_AUDIT_LIT(b, "null");   /* refused before anyone was identified */
    } else {
        rd_json_cstr(b, s->db_user);
    }
    rd_audit_put(b, rd_buf_rpos(&as->tail), rd_buf_used(&as->tail));
    /* Numbered when formatted: a line dropped later leaves a gap. */
    RD_AUDIT_KEY(b, "seq");
    rd_json_uint(b, ++rd_aw.seq);
    RD_AUDIT_LIT(b, ",\"redoubt\":\"" PACKAGE_VERSION "\"");
    return b;
}

#define rd_audit_begin(s, as, ev) \
    rd_audit_begin_event((s), (as), (ev), sizeof(ev) - 1)

/* End the line; write when the buffer is full. */
static void
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

static void
rd_audit_start_event(rd_session_t *s, rd_audit_session_t *as,
                     const char *refused)
{
    rd_buf_t *b = rd_audit_begin(s, as, "session.start");
    RD_AUDIT_KEY(b, "result");
    rd_json_cstr(b, refused ? "refused" : "allowed");
    if (refused) {
        RD_AUDIT_KEY(b, "reason");
        rd_json_cstr(b, refused);
    }
    RD_AUDIT_KEY(b, "listener");
    rd_json_cstr(b, s->listener ? s->listener->addr.text : NULL);
    rd_audit_commit(b);
    as->start_written = 1;
}

static void
rd_audit_ensure_started(rd_session_t *s, rd_audit_session_t *as)
{
    if (!as->start_written) {
        rd_audit_start_event(s, as, NULL);
    }
}

/* --- secrets ---------------------------------------------------------------- */

#define RD_AUDIT_SECRET_AT  16      /* secret positions listed one by one */

/* Which arguments of a request are secrets (see the top of the file):
 * every argument from "from" on, those listed in "at", and, for CONFIG
 * SET, the values of the secret parameters. */
typedef struct {
    size_t    from;                     /* 0: none */
    size_t    nat;
    size_t    at[RD_AUDIT_SECRET_AT];
    unsigned  config_set:1;
} rd_audit_redact_t;

static void
rd_audit_redact_from(rd_audit_redact_t *rp, size_t i)
{
    if (rp->from == 0 || i < rp->from) {
        rp->from = i;
    }
}

static void
rd_audit_redact_at(rd_audit_redact_t *rp, size_t i)
{
    if (rp->from != 0 && i >= rp->from) {
        return;
    }
    if (rp->nat < RD_AUDIT_SECRET_AT) {
        rp->at[rp->nat++] = i;
        return;
    }
    rd_audit_redact_from(rp, i);    /* too many to list: all from here */
}

/* Does the value of this CONFIG SET parameter hide a secret? Redis 7.0's
 * SENSITIVE_CONFIG parameters, the TLS key passphrases (not marked in
 * 7.0), names that say so, and every module parameter ("module.name"),
 * which its module may have registered as sensitive. */
static bool
rd_audit_config_secret(rd_str_t name)
{
    static const char *const known[] = {
        "requirepass", "masterauth", "masteruser",
        "tls-key-file-pass", "tls-client-key-file-pass", NULL
    };
    for (const char *const *k = known; *k; k++) {
        if (rd_str_eq_ci(name, *k)) {
            return true;
        }
    }
    if (memchr(name.data, '.', name.len)) {
        return true;
    }
    static const char *const words[] = { "pass", "auth", "secret", NULL };
    for (const char *const *w = words; *w; w++) {
        size_t wl = strlen(*w);
        for (size_t k = 0; k + wl <= name.len; k++) {
            rd_str_t sub = { name.data + k, wl };
            if (rd_str_eq_ci(sub, *w)) {
                return true;
            }
        }
    }
    return false;
}

/* HELLO [protover [AUTH user pass] [SETNAME name] ...]: Redis's option
 * walk (rd_hello_next), every AUTH option. Redis 7.0 redacts only the
 * options it walked before a failed AUTH or a bad option; here every
 * AUTH is found, and from a bad option on everything is hidden (the
 * error text quotes it, and what follows may be misplaced credentials). */
static void
rd_audit_plan_hello(rd_audit_redact_t *rp, const rd_request_t *r)
{
    if (r->conncmd.error == RD_CONN_ERR_PROTOVER) {
        rd_audit_redact_from(rp, 1);    /* Redis reads nothing after it */
        return;
    }
    size_t pos = 2;
    for (;;) {
        size_t at = pos;
        switch (rd_hello_next(r->argc, r->argv, &pos)) {
        case RD_HELLO_END:
            return;
        case RD_HELLO_AUTH:
            rd_audit_redact_at(rp, at + 1);
            rd_audit_redact_at(rp, at + 2);
            break;
        case RD_HELLO_SETNAME:
            break;
        case RD_HELLO_BAD:
            rd_audit_redact_from(rp, at);
            return;
        }
    }
}

/* MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH password |
 * AUTH2 username password] [KEYS key ...]: the options from argv[6], as
 * Redis's migrateCommand walks them. */
static void
rd_audit_plan_migrate(rd_audit_redact_t *rp, const rd_request_t *r)
{
    for (size_t j = 6; j < r->argc; j++) {
        rd_str_t o = r->argv[j];
        size_t more = r->argc - 1 - j;
        if (rd_str_eq_ci(o, "copy") || rd_str_eq_ci(o, "replace")) {
            continue;
        }
        if (rd_str_eq_ci(o, "auth")) {
            if (more < 1) {
                return;
            }
            rd_audit_redact_at(rp, ++j);
        } else if (rd_str_eq_ci(o, "auth2")) {
            if (more < 2) {
                rd_audit_redact_from(rp, j + 1);
                return;
            }
            rd_audit_redact_at(rp, ++j);
            rd_audit_redact_at(rp, ++j);
        } else if (rd_str_eq_ci(o, "keys")) {
            return;                     /* the rest are keys */
        } else {
            rd_audit_redact_from(rp, j);    /* Redis: syntax error */
            return;
        }
    }
}

/* Is cmd (the table's row for r, or NULL) the command Redis will run?
 * Not when there is no row, when a container's subcommand is unknown, or
 * when the number of arguments is wrong: then nothing about its
 * arguments can be known. */
static bool
rd_audit_known(const rd_command_t *cmd, const rd_request_t *r)
{
    return cmd != NULL && cmd->subcommands == 0
           && rd_command_arity_ok(cmd, r->argc);
}

static void
rd_audit_plan(rd_audit_redact_t *rp, const rd_command_t *cmd, bool known,
              const rd_request_t *r)
{
    rp->from = 0;
    rp->nat = 0;
    rp->config_set = 0;

    switch (r->conncmd.kind) {
    case RD_CONN_AUTH:
        rd_audit_redact_from(rp, 1);
        return;
    case RD_CONN_HELLO:
        rd_audit_plan_hello(rp, r);
        return;
    default:
        break;
    }
    if (!known) {
        rd_audit_redact_from(rp, 1);
    } else if (cmd == rd_aw.acl_setuser) {
        rd_audit_redact_from(rp, 2);    /* as Redis: the user name too */
    } else if (cmd == rd_aw.config_set) {
        rp->config_set = 1;
    } else if (cmd == rd_aw.migrate) {
        rd_audit_plan_migrate(rp, r);
    }
}

/* Is argv[i] a secret? */
static bool
rd_audit_secret(const rd_audit_redact_t *rp, const rd_request_t *r, size_t i)
{
    if (rp->from != 0 && i >= rp->from) {
        return true;
    }
    for (size_t k = 0; k < rp->nat; k++) {
        if (rp->at[k] == i) {
            return true;
        }
    }
    /* CONFIG SET name value [name value ...]: values at 3, 5, ... */
    return rp->config_set && i >= 3 && (i - 3) % 2 == 0
           && rd_audit_config_secret(r->argv[i - 1]);
}

/* How many bytes of p (n of them) are the secret a, or (the text being
 * cut at its end) a's beginning? Redis writes CR and LF of an argument
 * it quotes in an error as spaces. */
static size_t
rd_audit_secret_at(const char *p, size_t n, rd_str_t a, bool cut)
{
    if (a.len == 0 || (a.len > n && !cut)) {
        return 0;
    }
    size_t m = a.len < n ? a.len : n;
    for (size_t k = 0; k < m; k++) {
        char x = a.data[k];
        if (x == '\r' || x == '\n') {
            x = ' ';
        }
        if (p[k] != x) {
            return 0;
        }
    }
    return m;
}

/* Write an error text with every secret argument of r it quotes replaced
 * ("unknown command 'x', with args beginning with: ...", "Error in ACL
 * SETUSER modifier '>pw'", "Syntax error in HELLO option '...'"). cut:
 * the text is the beginning of a longer line, so it may end inside one. */
static void
rd_audit_error_text(rd_buf_t *b, const char *msg, size_t len, bool cut,
                    const rd_audit_redact_t *rp, const rd_request_t *r)
{
    if (rp == NULL || (rp->from == 0 && rp->nat == 0 && !rp->config_set)) {
        rd_json_str(b, msg, len);
        return;
    }
    size_t last = r->argc < RD_AUDIT_MAX_LIST + 1 ? r->argc
                                                  : RD_AUDIT_MAX_LIST + 1;
    char out[sizeof(r->reply_head) * sizeof(RD_AUDIT_REDACTED)];
    size_t n = 0;

    for (size_t p = 0; p < len && n + sizeof(RD_AUDIT_REDACTED) < sizeof(out);) {
        size_t best = 0;
        for (size_t i = 1; i < last; i++) {
            if (rd_audit_secret(rp, r, i)) {
                size_t m = rd_audit_secret_at(msg + p, len - p, r->argv[i],
                                              cut);
                if (m > best) {
                    best = m;
                }
            }
        }
        if (best > 0) {
            memcpy(out + n, RD_AUDIT_REDACTED, sizeof(RD_AUDIT_REDACTED) - 1);
            n += sizeof(RD_AUDIT_REDACTED) - 1;
            p += best;
        } else {
            out[n++] = msg[p++];
        }
    }
    rd_json_str(b, out, n);
}

/* --- events ----------------------------------------------------------------- */

/* The error reply's first line (after "-") in *msg, *msglen, and the
 * length of its first word, the class: "-NOPERM redoubt: ..." -> NOPERM.
 * *cut: the reply head ends before the line does. */
static size_t
rd_audit_error_class(const rd_request_t *r, const char **msg, size_t *msglen,
                     bool *cut)
{
    const char *p = r->reply_head + 1;
    size_t n = r->reply_head_len > 0 ? r->reply_head_len - 1 : 0;
    size_t line = 0;
    while (line < n && p[line] != '\r' && p[line] != '\n') {
        line++;
    }
    size_t k = 0;
    while (k < line && p[k] != ' ') {
        k++;
    }
    *msg = p;
    *msglen = line;
    *cut = line == n;
    return k;
}

/* outcome, and error (with_message) with r's secrets (rp) hidden. */
static void
rd_audit_outcome(rd_buf_t *b, const rd_request_t *r, int with_message,
                 const rd_audit_redact_t *rp)
{
    RD_AUDIT_KEY(b, "outcome");
    if (r->reply_type != '-') {
        RD_AUDIT_LIT(b, "\"ok\"");
        return;
    }
    const char *msg;
    size_t msglen;
    bool cut;
    size_t k = rd_audit_error_class(r, &msg, &msglen, &cut);
    if (k == 0) {
        RD_AUDIT_LIT(b, "\"ERR\"");
    } else {
        rd_json_str(b, msg, k);
    }
    if (with_message) {
        RD_AUDIT_KEY(b, "error");
        rd_audit_error_text(b, msg, msglen, cut, rp, r);
    }
}

static void
rd_audit_latency(rd_buf_t *b, const rd_request_t *r)
{
    int64_t us = rd_aw.now - r->start_usec;
    RD_AUDIT_KEY(b, "latency_us");
    rd_json_int(b, us > 0 ? us : 0);
}

/* AUTH, and HELLO with an AUTH option, as Redis parses them: session.auth
 * events, which never list arguments. */
static bool
rd_audit_is_auth(const rd_request_t *r)
{
    const rd_conncmd_t *cc = &r->conncmd;
    return r->argc > 0
           && (cc->kind == RD_CONN_AUTH
               || (cc->kind == RD_CONN_HELLO && cc->pass_at != 0));
}

static void
rd_audit_auth_event(rd_session_t *s, rd_audit_session_t *as, rd_request_t *r,
                    int unanswered)
{
    rd_audit_conf_t *c = rd_aw.conf;
    const rd_conncmd_t *cc = &r->conncmd;
    rd_buf_t *b = rd_audit_begin(s, as, "session.auth");
    rd_audit_redact_t rp;

    rd_audit_plan(&rp, NULL, true, r);
    RD_AUDIT_KEY(b, "command");
    rd_json_cstr(b, cc->kind == RD_CONN_AUTH ? "auth" : "hello");
    RD_AUDIT_KEY(b, "auth_user");
    if (cc->pass_at != 0) {
        /* The user Redis authenticates (the last AUTH option of a HELLO;
         * "default" for AUTH password). */
        rd_str_t u = rd_conncmd_user(cc, r->argv);
        rd_json_str_cut(b, u.data, u.len, (size_t)c->max_arg_bytes);
    } else {
        rd_json_null(b);    /* an AUTH Redis refuses unread */
    }
    if (unanswered) {
        RD_AUDIT_KEY(b, "outcome");
        RD_AUDIT_LIT(b, "\"unanswered\"");
    } else {
        rd_audit_outcome(b, r, c->args != RD_AUDIT_ARGS_NONE, &rp);
    }
    RD_AUDIT_KEY(b, "node");
    rd_json_cstr(b, r->upstream);
    rd_audit_latency(b, r);
    rd_audit_commit(b);
}

static void
rd_audit_command_name(rd_buf_t *b, const rd_command_t *cmd, rd_str_t name)
{
    RD_AUDIT_KEY(b, "command");
    if (cmd) {
        const char *bar = strchr(cmd->name, '|');
        if (bar) {
            rd_json_str(b, cmd->name, (size_t)(bar - cmd->name));
            RD_AUDIT_KEY(b, "subcommand");
            rd_json_cstr(b, bar + 1);
        } else {
            rd_json_cstr(b, cmd->name);
        }
        return;
    }
    /* An unknown command: its name in lower case, cut if long. */
    char small[RD_AUDIT_NAME_MAX];
    char *low = name.len <= sizeof(small) ? small : rd_alloc(name.len);
    for (size_t i = 0; i < name.len; i++) {
        char ch = name.data[i];
        low[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    rd_json_str_cut(b, low, name.len, RD_AUDIT_NAME_MAX);
    if (low != small) {
        free(low);
    }
}

/* rd_command_lookup, remembering the last plain command by its exact
 * bytes: a pipeline of SETs looks SET up once. */
static const rd_command_t *
rd_audit_lookup(size_t argc, const rd_str_t *argv)
{
    rd_str_t name = argv[0];
    if (rd_aw.last_cmd && name.len == rd_aw.last_len
        && memcmp(name.data, rd_aw.last_name, name.len) == 0)
    {
        return rd_aw.last_cmd;
    }
    const rd_command_t *c = rd_command_lookup(argc, argv);
    if (c && c->subcommands == 0 && strchr(c->name, '|') == NULL
        && name.len <= sizeof(rd_aw.last_name))
    {
        memcpy(rd_aw.last_name, name.data, name.len);
        rd_aw.last_len = name.len;
        rd_aw.last_cmd = c;
    }
    return c;
}

static void
rd_audit_query_event(rd_session_t *s, rd_audit_session_t *as,
                     rd_request_t *r, int unanswered)
{
    rd_audit_conf_t *c = rd_aw.conf;
    rd_buf_t *b = rd_audit_begin(s, as, "session.query");
    size_t max = (size_t)c->max_arg_bytes;

    if (r->argc == 0) {
        /* A protocol error: nothing was decoded. */
        RD_AUDIT_KEY(b, "command");
        rd_json_null(b);
        RD_AUDIT_KEY(b, "nkeys");
        rd_json_null(b);
        RD_AUDIT_KEY(b, "node");
        rd_json_null(b);
        rd_audit_outcome(b, r, c->args != RD_AUDIT_ARGS_NONE, NULL);
        rd_audit_latency(b, r);
        rd_audit_commit(b);
        return;
    }

    const rd_command_t *cmd = rd_audit_lookup(r->argc, r->argv);
    rd_audit_redact_t rp;
    rd_audit_plan(&rp, cmd, rd_audit_known(cmd, r), r);
    rd_audit_command_name(b, cmd, r->argv[0]);

    size_t small[64];
    size_t *idx = small;
    int nkeys = -1;
    if (cmd) {
        nkeys = rd_command_keys(cmd, r->argc, r->argv, small,
                                rd_countof(small));
        if (nkeys > (int)rd_countof(small)
            && c->args == RD_AUDIT_ARGS_NAMES) {
            idx = rd_alloc((size_t)nkeys * sizeof(size_t));
            nkeys = rd_command_keys(cmd, r->argc, r->argv, idx,
                                    (size_t)nkeys);
        }
    }
    RD_AUDIT_KEY(b, "nkeys");
    if (nkeys >= 0) {
        rd_json_int(b, nkeys);
    } else {
        rd_json_null(b);
    }
    RD_AUDIT_KEY(b, "node");
    rd_json_cstr(b, r->upstream);
    if (unanswered) {
        RD_AUDIT_KEY(b, "outcome");
        RD_AUDIT_LIT(b, "\"unanswered\"");
    } else {
        rd_audit_outcome(b, r, c->args != RD_AUDIT_ARGS_NONE, &rp);
    }
    rd_audit_latency(b, r);

    if (c->args == RD_AUDIT_ARGS_FULL) {
        size_t first = cmd && strchr(cmd->name, '|') ? 2 : 1;
        size_t listed = 0;
        RD_AUDIT_KEY(b, "args");
        RD_AUDIT_LIT(b, "[");
        for (size_t i = first; i < r->argc; i++) {
            rd_json_sep(b);
            if (listed++ == RD_AUDIT_MAX_LIST) {
                rd_buf_appendf(b, "\"" RD_JSON_CUT_MARK "%zu arguments)\"",
                               r->argc - i);
                break;
            }
            if (rd_audit_secret(&rp, r, i)) {
                RD_AUDIT_LIT(b, "\"" RD_AUDIT_REDACTED "\"");
            } else {
                rd_json_str_cut(b, r->argv[i].data, r->argv[i].len, max);
            }
        }
        RD_AUDIT_LIT(b, "]");
    } else if (c->args == RD_AUDIT_ARGS_NAMES) {
        RD_AUDIT_KEY(b, "keys");
        RD_AUDIT_LIT(b, "[");
        int shown = nkeys < 0 ? 0 : nkeys;
        if (idx == small && shown > (int)rd_countof(small)) {
            shown = (int)rd_countof(small);
        }
        for (int k = 0; k < shown; k++) {
            rd_json_sep(b);
            if (k == RD_AUDIT_MAX_LIST) {
                rd_buf_appendf(b, "\"" RD_JSON_CUT_MARK "%d arguments)\"",
                               nkeys - k);
                break;
            }
            if (rd_audit_secret(&rp, r, idx[k])) {
                RD_AUDIT_LIT(b, "\"" RD_AUDIT_REDACTED "\"");
                continue;
            }
            rd_str_t key = r->argv[idx[k]];
            rd_json_str_cut(b, key.data, key.len, max);
        }
        RD_AUDIT_LIT(b, "]");
    }
    if (idx != small) {
        free(idx);
    }
    rd_audit_commit(b);
}

/* --- phases ----------------------------------------------------------------- */

static int
rd_audit_authorize(rd_session_t *s, rd_request_t *r)
{
    rd_audit_session_t *as = rd_audit_session(s);
    rd_audit_ensure_started(s, as);
    return RD_OK;
}

static int
rd_audit_filter(rd_session_t *s, rd_request_t *r)
{
    if (!rd_audit_blocked()) {
        return RD_DECLINED;
    }
    if (r->argc > 0 && rd_str_eq_ci(r->argv[0], "quit")) {
        return RD_DECLINED;
    }
    rd_stats_refusal(RD_REFUSAL_AUDIT_UNAVAILABLE);
    rd_request_error(r, "ERR redoubt: audit unavailable");
    return RD_DONE;
}

static int
rd_audit_request(rd_session_t *s, rd_request_t *r)
{
    rd_audit_session_t *as = rd_audit_session(s);

    rd_audit_ensure_started(s, as);
    if (r->reply_type == '-') {
        as->errors++;
    }
    if (rd_audit_is_auth(r)) {
        rd_audit_auth_event(s, as, r, 0);
    } else {
        rd_audit_query_event(s, as, r, 0);
    }
    return RD_OK;
}

static void
rd_audit_session_end(rd_session_t *s)
{
    if (rd_aw.conf == NULL) {
        return;             /* auditing is off */
    }
    rd_audit_session_t *as = rd_audit_session(s);

    if (!s->started && !as->start_written) {
        as->refused = 1;
        const char *why = s->refusal ? s->refusal
                        : s->close_reason ? s->close_reason : "closed";
        if (strncmp(why, "redoubt: ", 9) == 0) {
            why += 9;
        }
        rd_audit_start_event(s, as, why);
    }
    rd_audit_ensure_started(s, as);

    /* Commands still waiting for their replies: they may have run. */
    for (rd_request_t *r = s->head; r; r = r->next) {
        if (r->argc == 0) {
            continue;
        }
        if (rd_audit_is_auth(r)) {
            rd_audit_auth_event(s, as, r, 1);
        } else {
            rd_audit_query_event(s, as, r, 1);
        }
    }

    rd_buf_t *b = rd_audit_begin(s, as, "session.end");
    int64_t dur = rd_aw.now - s->start_usec;
    RD_AUDIT_KEY(b, "duration_us");
    rd_json_int(b, dur > 0 ? dur : 0);
    RD_AUDIT_KEY(b, "bytes_in");
    rd_json_uint(b, s->bytes_in);
    RD_AUDIT_KEY(b, "bytes_out");
    rd_json_uint(b, s->bytes_out);
    RD_AUDIT_KEY(b, "commands");
    rd_json_uint(b, s->commands);
    RD_AUDIT_KEY(b, "errors");
    rd_json_uint(b, as->errors);
    RD_AUDIT_KEY(b, "reason");
    rd_json_cstr(b, s->close_reason);
    rd_audit_commit(b);

    if (!rd_audit_blocked()) {
        rd_audit_flush();
    }
}

/* --- worker hooks ------------------------------------------------------------ */

static int
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
    rd_aw.timer.data = NULL;
    rd_aw.fd = rd_audit_open_file();
    if (rd_aw.fd < 0) {
        rd_audit_failed(errno);
    }
    return RD_OK;
}

static void
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
        rd_aw.st.dropped += rd_aw.nevents;
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

static void
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

static int
rd_audit_postconfiguration(rd_cycle_t *cycle)
{
    if (rd_audit_conf(cycle)->path == NULL) {
        return RD_OK;
    }
    rd_phase_add(cycle, RD_PHASE_AUTHORIZE, rd_audit_authorize);
    rd_phase_add(cycle, RD_PHASE_FILTER, rd_audit_filter);
    return rd_phase_add(cycle, RD_PHASE_AUDIT, rd_audit_request);
}

rd_module_t rd_audit_module = {
    .name = "audit",
    .directives = rd_audit_directives,
    .create_conf = { rd_audit_create_main, NULL, NULL },
    .init_conf = { rd_audit_init_main, NULL, NULL },
    .postconfiguration = rd_audit_postconfiguration,
    .init_worker = rd_audit_init_worker,
    .exit_worker = rd_audit_exit_worker,
    .session_end = rd_audit_session_end,
    .reopen = rd_audit_reopen,
};

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
 * Events, one JSON object per line. Common fields, in this order:
 *   time      RFC 3339 UTC with microseconds, "2026-11-24T17:30:00.123456Z"
 *   event     session.start, session.auth, session.query,
 *             session.subscribe, session.end
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
 *   session.subscribe
 *                  SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, UNSUBSCRIBE,
 *                  PUNSUBSCRIBE, SUNSUBSCRIBE in place of their
 *                  session.query (still one line per command, allowed or
 *                  refused): its fields but "keys" and "args", then
 *                  "channels", the channels or patterns as sent (an
 *                  UNSUBSCRIBE without any: []), cut and counted as args
 *                  are; not with args = "none"
 *   session.end    duration_us, bytes_in, bytes_out, commands, errors (error
 *                  replies), messages (Pub/Sub messages pushed to the
 *                  client: message, pmessage, smessage), reason
 *
 * session.start "allowed" comes from the session_start hook, which the
 * core calls once every module's session phase handlers let the session
 * in. A session that never started (refused by a module, or closed
 * during the TLS handshake) gets session.start "refused" and session.end
 * from the session_end hook.
 *
 * Filter: while this worker cannot write the log, with on_failure =
 * block every command is refused with "-ERR redoubt: audit unavailable"
 * (the core lets QUIT past the filters); with on_failure = continue only
 * REDOUBT, redoubt's own command (the introspect module's), is refused so,
 * as redoubtctl(1) says: commands go on to Redis unaudited, but redoubt
 * answers nothing of its own that it cannot record. The registry puts
 * this module ahead of every other module with a filter.
 */
#include "config.h"

#include <errno.h>
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
#include "rd_conncmd.h"
#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_json.h"
#include "rd_log.h"
#include "rd_stats.h"
#include "rd_session.h"
#include "rd_worker.h"

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

rd_audit_conf_t *
rd_audit_conf(rd_cycle_t *cycle)
{
    return rd_main_conf(cycle, rd_audit_module);
}

/* --- formatting ------------------------------------------------------------- */

/* What the session's state holds (the core frees the state itself). */
static void
rd_audit_session_cleanup(rd_session_t *s, void *data)
{
    rd_audit_session_t *as = data;
    rd_buf_free(&as->head);
    rd_buf_free(&as->tail);
}

static rd_audit_session_t *
rd_audit_session(rd_session_t *s)
{
    return rd_session_ctx_get(s, &rd_audit_module, sizeof(rd_audit_session_t),
                              NULL, rd_audit_session_cleanup);
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

    rd_audit_plan(&rp, r);
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

/* command, and subcommand, as the table names r's command. */
static void
rd_audit_command_name(rd_buf_t *b, const rd_request_t *r)
{
    const rd_command_t *cmd = r->cmd;
    rd_str_t name = r->argv[0];

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

/* The subscribe family (SUBSCRIBE ... SUNSUBSCRIBE): session.subscribe
 * events, which list the channels in place of keys or arguments. */
static bool
rd_audit_is_subscribe(const rd_request_t *r)
{
    if (r->cmd == NULL) {
        return false;
    }
    for (size_t i = 0; i < rd_countof(rd_aw.subscribe); i++) {
        if (r->cmd == rd_aw.subscribe[i]) {
            return true;
        }
    }
    return false;
}

/* "channels": the channels (or patterns) r names, as sent. */
static void
rd_audit_channels(rd_buf_t *b, const rd_request_t *r,
                  const rd_audit_redact_t *rp)
{
    size_t max = (size_t)rd_aw.conf->max_arg_bytes;

    RD_AUDIT_KEY(b, "channels");
    RD_AUDIT_LIT(b, "[");
    for (size_t i = 1; i < r->argc; i++) {
        rd_json_sep(b);
        if (i - 1 == RD_AUDIT_MAX_LIST) {
            rd_buf_appendf(b, "\"" RD_JSON_CUT_MARK "%zu arguments)\"",
                           r->argc - i);
            break;
        }
        if (rd_audit_secret(rp, r, i)) {
            RD_AUDIT_LIT(b, "\"" RD_AUDIT_REDACTED "\"");
        } else {
            rd_json_str_cut(b, r->argv[i].data, r->argv[i].len, max);
        }
    }
    RD_AUDIT_LIT(b, "]");
}

/* session.query, or session.subscribe for the subscribe family: the same
 * fields, then "channels" in place of "keys" or "args". */
static void
rd_audit_query_event(rd_session_t *s, rd_audit_session_t *as,
                     rd_request_t *r, int unanswered)
{
    rd_audit_conf_t *c = rd_aw.conf;
    bool sub = r->argc > 0 && rd_audit_is_subscribe(r);
    rd_buf_t *b = sub ? rd_audit_begin(s, as, "session.subscribe")
                      : rd_audit_begin(s, as, "session.query");
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

    /* The command's row and keys as the core classified them. */
    const rd_command_t *cmd = r->cmd;
    int nkeys = r->nkeys;
    rd_audit_redact_t rp;
    rd_audit_plan(&rp, r);
    rd_audit_command_name(b, r);

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

    if (sub) {
        if (c->args != RD_AUDIT_ARGS_NONE) {
            rd_audit_channels(b, r, &rp);
        }
    } else if (c->args == RD_AUDIT_ARGS_FULL) {
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
        for (int k = 0; k < shown; k++) {
            rd_json_sep(b);
            if (k == RD_AUDIT_MAX_LIST) {
                rd_buf_appendf(b, "\"" RD_JSON_CUT_MARK "%d arguments)\"",
                               nkeys - k);
                break;
            }
            if (rd_audit_secret(&rp, r, r->keys[k])) {
                RD_AUDIT_LIT(b, "\"" RD_AUDIT_REDACTED "\"");
                continue;
            }
            rd_str_t key = r->argv[r->keys[k]];
            rd_json_str_cut(b, key.data, key.len, max);
        }
        RD_AUDIT_LIT(b, "]");
    }
    rd_audit_commit(b);
}

/* --- phases ----------------------------------------------------------------- */

/* The session was let in (every session phase passed). */
static void
rd_audit_session_start(rd_session_t *s)
{
    if (rd_aw.conf == NULL) {
        return;             /* auditing is off */
    }
    rd_audit_start_event(s, rd_audit_session(s), NULL);
}

/* See the top of this file. Runs before every other module's filter. */
static int
rd_audit_filter(rd_session_t *s, rd_request_t *r)
{
    if (!rd_audit_blocked()
        && !(rd_aw.failing && rd_str_eq_ci(r->argv[0], "redoubt")))
    {
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
    RD_AUDIT_KEY(b, "messages");
    rd_json_uint(b, s->messages);
    RD_AUDIT_KEY(b, "reason");
    rd_json_cstr(b, s->close_reason);
    rd_audit_commit(b);

    if (!rd_audit_blocked()) {
        rd_audit_flush();
    }
}

static int
rd_audit_postconfiguration(rd_cycle_t *cycle)
{
    if (rd_audit_conf(cycle)->path == NULL) {
        return RD_OK;
    }
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
    .session_start = rd_audit_session_start,
    .session_end = rd_audit_session_end,
    .reopen = rd_audit_reopen,
    .stats = rd_audit_stats_rows,
};

/*
 * rd_standalone.c - the standalone module: route every command of a
 * session to one standalone Redis server. It is the router (rd_router_t,
 * rd_cycle.h) of the databases whose uri says mode=standalone or no mode;
 * the core's route module calls its filter and route handlers.
 *
 * Each session owns its upstream connection, opened on the first command
 * that needs it (each session authenticates to Redis as its own user, so
 * connections are not shared). Requests are written to Redis as they
 * arrive; Redis answers in order, so the oldest pending request owns the
 * next reply. Reply bytes are handed to the session as they are scanned,
 * which streams them to the client when the request is at the head of the
 * session's queue.
 *
 * When the connection fails, every pending request gets an error reply
 * ("-ERR redoubt: upstream ...") and the next command connects again. If
 * part of a reply had already reached the client, the client's stream
 * cannot be repaired and the session is closed instead.
 *
 * A new connection must be the same connection as far as the client can
 * tell, so the module remembers the connection state the client set up
 * (a successful AUTH or HELLO ... AUTH, SELECT, CLIENT SETNAME) and
 * replays it first on a new connection; the replies to the replayed
 * commands are checked and not forwarded. State that cannot be replayed
 * honestly (an open MULTI, a WATCH) makes a lost connection close the
 * session instead. The remembered password is wiped when the session ends.
 * The database number of the uri ("redis://host:port/2") is the state a
 * session starts in: SELECT 2 goes out on each new connection before the
 * first command that is not an AUTH or a HELLO (a session's own AUTH
 * comes first on a server with passwords), and the client's own SELECT
 * moves the session as it would on a direct connection.
 *
 * Pub/Sub: the session's own connection carries its subscriptions. From
 * the first (P|S)SUBSCRIBE sent until Redis has left subscribed mode, the
 * connection hands over whole frames (uc->frame, rd_upstream.h) and
 * rd_upstream_frame() sorts them: a confirmation ("subscribe", "unsubscribe"
 * ... with a channel and a count) is one of the frames of the oldest
 * request's reply (one per channel, as Redis answers; an UNSUBSCRIBE
 * without arguments: one per channel then subscribed, or one with a nil
 * channel when there was none), a message (RESP2 "message", "pmessage",
 * "smessage" while subscribed; any RESP3 push) is pushed to the client
 * (rd_session_message for the three kinds of message, which counts them
 * in the session's messages and in redoubt_pubsub_messages_total;
 * rd_session_push, uncounted, for another RESP3 push and for a
 * confirmation nobody asked for), anything else answers the oldest
 * request (PING's "pong" array, Redis's "only (P|S)SUBSCRIBE ... allowed"
 * error, +RESET).
 * The channels and patterns Redis confirmed are kept; when the connection
 * fails, redoubt reconnects by itself (no command may ever come from a
 * subscriber) and subscribes to each again: messages published in the gap
 * are lost, as with any Redis reconnect. limits.max_subscriptions bounds
 * the channels plus patterns of a session; a channel's length is bounded
 * by limits.max_bulk_length like any argument.
 *
 * Commands after which Redis does not send exactly one reply per request
 * (MONITOR, SYNC, PSYNC, CLIENT REPLY) are refused with
 * "-ERR redoubt: command not supported".
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_net.h"
#include "rd_pubsub.h"
#include "rd_resp.h"
#include "rd_session.h"
#include "rd_stats.h"
#include "rd_upstream.h"
#include "rd_worker.h"

rd_module_t rd_standalone_module;

typedef struct {
    int        kind;
    size_t     len;
    char      *data;
} rd_pubsub_sub_t;

typedef struct {
    rd_upconn_t               uc;
    rd_session_t             *session;

    /* Connection state to replay on a new connection. */
    rd_buf_t                  auth;           /* "AUTH ..." as RESP */
    int64_t                   select_db;      /* -1: never selected */
    unsigned                  select_due:1;   /* SELECT before the next
                                                 command but AUTH/HELLO */
    rd_buf_t                  setname;        /* "CLIENT SETNAME ..." */
    unsigned                  in_multi:1;
    unsigned                  watching:1;
    unsigned                  unsure:1;       /* state set inside MULTI */
    char                      internal_type;  /* reply to a replayed cmd */

    /* Pub/Sub (see the top). */
    rd_pubsub_sub_t          *subs;           /* confirmed by Redis */
    size_t                    nsubs;
    size_t                    capsubs;
    size_t                    reserved;       /* channels of subscribes
                                                 sent, not yet answered */
    unsigned                  sub_pending;    /* subscribe-family requests
                                                 queued on uc */
    unsigned                  frames_left;    /* of the oldest request's
                                                 reply; 0: not started */
    unsigned                  sub_active:1;   /* Redis's side is in
                                                 subscribed mode */
    rd_timer_t                retry;          /* reconnect a subscriber */
    rd_msec_t                 retry_ms;
} rd_upstream_t;

static int rd_upstream_open(rd_upstream_t *up);

/*
 * The connection failed: answer every pending request with an error, in
 * order. The session stays usable; its next command reconnects.
 */
static void
rd_upstream_fail(rd_upconn_t *uc, const char *why)
{
    rd_upstream_t *up = uc->owner;
    rd_session_t *s = up->session;

    rd_session_log(s, RD_LOG_WARN, "%s, upstream: %s", why, uc->addr->text);

    if (up->in_multi || up->watching || up->unsure) {
        /* A new connection would silently drop the transaction. */
        rd_session_close(s, "upstream connection lost during a transaction");
        uc->count = 0;
        return;
    }

    up->frames_left = 0;
    up->sub_pending = 0;
    up->reserved = 0;
    uc->whole_frames = up->nsubs > 0;
    if (up->nsubs > 0) {
        /* A subscriber sends nothing that would reconnect: redoubt does,
         * and subscribes again (rd_upstream_open). */
        if (up->retry_ms == 0) {
            up->retry_ms = 100;
        } else if (up->retry_ms < 5000) {
            up->retry_ms *= 2;
        }
        rd_timer_add(&s->worker->loop.timers, &up->retry, s->worker->loop.now,
                     up->retry_ms);
    }

    while (uc->count > 0) {
        rd_request_t *r = rd_upconn_pop(uc);
        if (r == NULL) {
            continue;               /* a replayed command */
        }
        if (rd_request_reply_reset(r) != 0) {
            /* Part of this reply is already with the client. */
            rd_session_close(s, "upstream connection lost mid-reply");
            uc->count = 0;
            return;
        }
        rd_request_error(r, "ERR redoubt: %s", why);
        if (s->conn->closed) {
            uc->count = 0;
            return;
        }
    }
}

static void
rd_upstream_replay_one(rd_upstream_t *up, const char *p, size_t n)
{
    rd_upconn_send(&up->uc, p, n, NULL);
}

/* Queue the connection state the client had set up, before anything
 * else goes out on a new connection. */
static void
rd_upstream_replay(rd_upstream_t *up)
{
    if (rd_buf_used(&up->auth) > 0) {
        rd_upstream_replay_one(up, rd_buf_rpos(&up->auth),
                               rd_buf_used(&up->auth));
    }
    /* The database goes out just before the first command that is not
     * an AUTH or a HELLO (rd_upstream_select): on a server with
     * passwords, a new session's own AUTH must come first. */
    up->select_due = up->select_db > 0;
    if (rd_buf_used(&up->setname) > 0) {
        rd_upstream_replay_one(up, rd_buf_rpos(&up->setname),
                               rd_buf_used(&up->setname));
    }
}

static void
rd_upstream_select(rd_upstream_t *up, const rd_request_t *r)
{
    if (!up->select_due || (r && (r->conncmd.kind == RD_CONN_AUTH
                                  || r->conncmd.kind == RD_CONN_HELLO)))
    {
        return;
    }
    char db[24];
    int n = snprintf(db, sizeof(db), "%lld", (long long)up->select_db);
    rd_str_t argv[2] = { RD_STR("SELECT"), { db, (size_t)n } };
    rd_buf_t b = { 0 };
    rd_resp_encode_command(&b, 2, argv);
    rd_upstream_replay_one(up, rd_buf_rpos(&b), rd_buf_used(&b));
    rd_buf_free(&b);
    up->select_due = 0;
}

static void
rd_upstream_remember(rd_buf_t *b, size_t argc, const rd_str_t *argv)
{
    rd_buf_wipe(b);
    rd_resp_encode_command(b, argc, argv);
}

/*
 * Learn the connection state from a command Redis accepted. Only the
 * commands that change what a new connection would need are looked at.
 */
static void
rd_upstream_track(rd_upstream_t *up, rd_request_t *r)
{
    const rd_conncmd_t *cc = &r->conncmd;
    rd_str_t *a = r->argv;
    int ok = r->reply_type == '+' || r->reply_type == '*';

    if (cc->kind == RD_CONN_EXEC || cc->kind == RD_CONN_DISCARD) {
        up->in_multi = 0;
        up->watching = 0;
        return;
    }
    if (!ok) {
        return;
    }
    if (up->in_multi) {
        /* Queued, not done: what it changes is known only after EXEC. */
        if (cc->kind == RD_CONN_AUTH || cc->kind == RD_CONN_HELLO
            || cc->kind == RD_CONN_SELECT || cc->kind == RD_CONN_SETNAME
            || cc->kind == RD_CONN_RESET)
        {
            up->unsure = 1;
        }
        return;
    }
    switch (cc->kind) {
    case RD_CONN_AUTH:
        if (cc->error == RD_CONN_OK && cc->pass_at) {
            rd_upstream_remember(&up->auth, r->argc, a);
        }
        break;
    case RD_CONN_HELLO:
        /* HELLO 2 AUTH user pass SETNAME name: the parser's positions
         * (one AUTH at most reaches Redis). */
        if (cc->pass_at) {
            rd_str_t auth[3] = { RD_STR("AUTH"), a[cc->user_at],
                                 a[cc->pass_at] };
            rd_upstream_remember(&up->auth, 3, auth);
        }
        if (cc->setname_at) {
            rd_str_t sn[3] = { RD_STR("CLIENT"), RD_STR("SETNAME"),
                               a[cc->setname_at] };
            rd_upstream_remember(&up->setname, 3, sn);
        }
        break;
    case RD_CONN_SELECT:
        if (cc->db_ok) {
            up->select_db = cc->db;
        }
        break;
    case RD_CONN_SETNAME:
        rd_upstream_remember(&up->setname, 3, a);
        break;
    case RD_CONN_MULTI:
        up->in_multi = 1;
        break;
    case RD_CONN_WATCH:
        up->watching = 1;
        break;
    case RD_CONN_UNWATCH:
        up->watching = 0;
        break;
    case RD_CONN_RESET:
        rd_buf_wipe(&up->auth);
        rd_buf_wipe(&up->setname);
        up->select_db = -1;             /* Redis is back in db 0 */
        up->select_due = 0;
        up->in_multi = 0;
        up->watching = 0;
        /* and out of subscribed mode, without a frame per channel */
        for (size_t i = 0; i < up->nsubs; i++) {
            free(up->subs[i].data);
        }
        up->nsubs = 0;
        up->sub_active = 0;
        break;
    default:
        break;
    }
}

/* The reply to a replayed command is checked, not forwarded. A replay
 * Redis refuses (the password was changed, the database index no longer
 * exists) means this session cannot go on as the client believes it
 * does. */
static int
rd_upstream_replayed_reply(rd_upstream_t *up, const char *p, size_t n,
                           int last)
{
    if (up->internal_type == 0 && n > 0) {
        up->internal_type = p[0];
    }
    if (!last) {
        return 0;
    }
    char type = up->internal_type;
    up->internal_type = 0;
    if (type == '-') {
        rd_upconn_close(&up->uc);
        rd_session_close(up->session, "upstream refused the replayed "
                         "connection state (AUTH or SELECT)");
        return -1;
    }
    return 0;
}

/* --- Pub/Sub ------------------------------------------------------------ */

static ssize_t
rd_pubsub_find(rd_upstream_t *up, int kind, const char *p, size_t n)
{
    for (size_t i = 0; i < up->nsubs; i++) {
        if (up->subs[i].kind == kind && up->subs[i].len == n
            && memcmp(up->subs[i].data, p, n) == 0)
        {
            return (ssize_t)i;
        }
    }
    return -1;
}

static size_t
rd_pubsub_count(rd_upstream_t *up, int kind)
{
    size_t k = 0;
    for (size_t i = 0; i < up->nsubs; i++) {
        k += up->subs[i].kind == kind;
    }
    return k;
}

/* What Redis confirmed: kind's channel p is (add) or is no more. */
static void
rd_pubsub_note(rd_upstream_t *up, int kind, int add, const char *p, size_t n)
{
    ssize_t at = rd_pubsub_find(up, kind, p, n);
    if (add && at < 0) {
        if (up->nsubs == up->capsubs) {
            up->capsubs = up->capsubs ? up->capsubs * 2 : 8;
            up->subs = rd_realloc(up->subs, up->capsubs * sizeof(*up->subs));
        }
        rd_pubsub_sub_t *e = &up->subs[up->nsubs++];
        e->kind = kind;
        e->len = n;
        e->data = rd_strndup(p, n);
    } else if (!add && at >= 0) {
        free(up->subs[at].data);
        up->subs[at] = up->subs[--up->nsubs];
    }
}

/* Whole frames while subscriptions exist or are on their way; the
 * session is subscribed while Redis's side is. */
static void
rd_upstream_pubsub_mode(rd_upstream_t *up)
{
    up->uc.whole_frames = up->sub_active || up->sub_pending > 0
                          || up->nsubs > 0;
    rd_session_set_subscribed(up->session, up->sub_active || up->nsubs > 0);
}

/*
 * A whole frame from a connection that has subscriptions (or one on its
 * way): 1 when it answers the oldest queued entry, 0 when it was pushed
 * to the client or taken as one frame of the oldest request's reply, -1
 * when the session is gone.
 */
static int
rd_upstream_frame(rd_upconn_t *uc, const char *p, size_t n)
{
    rd_upstream_t *up = uc->owner;
    rd_session_t *s = up->session;
    rd_pubsub_frame_t f;

    rd_pubsub_frame(p, n, &f);
    if (f.what == RD_PSF_MESSAGE && (f.type == '>' || up->sub_active)) {
        rd_session_message(s, p, n);
        return s->conn->closed ? -1 : 0;
    }
    if (f.what != RD_PSF_CONFIRM) {
        if (f.type == '>') {
            rd_session_push(s, p, n);   /* another RESP3 push */
            return s->conn->closed ? -1 : 0;
        }
        return 1;                       /* PING's "pong" array, ... */
    }
    int ci = f.cmd;
    const char *chan = f.sub.data;
    int64_t clen = chan ? (int64_t)f.sub.len : -1, count = f.count;

    /* A confirmation: Redis's state changes now. */
    if (clen >= 0) {
        rd_pubsub_note(up, rd_pubsub_cmds[ci].kind, rd_pubsub_cmds[ci].add,
                       chan, (size_t)clen);
    }
    /* (Redis counts shard channels apart from channels and patterns: a
     * count of 0 for one kind leaves the others subscribed.) */
    up->sub_active = count > 0 || up->nsubs > 0;

    rd_request_t *r = uc->count > 0 ? uc->pending[uc->head] : NULL;
    int ours = uc->count > 0
               && (r == NULL || rd_pubsub_cmd(r->argv[0]) >= 0);
    if (!ours) {
        /* Not asked for (a server's own sunsubscribe): the client's. */
        rd_session_push(s, p, n);
        rd_upstream_pubsub_mode(up);
        return s->conn->closed ? -1 : 0;
    }
    if (r == NULL) {
        return 1;                   /* a resubscription: one channel each */
    }
    if (up->frames_left == 0) {
        /* The first frame: with no channels named, one per channel
         * subscribed when Redis ran it (the set before this frame),
         * or a single one with a nil channel. */
        size_t k = r->argc - 1;
        if (k == 0) {
            k = rd_pubsub_count(up, rd_pubsub_cmds[ci].kind) + (clen >= 0);
        }
        up->frames_left = k > 0 ? (unsigned)k : 1;
    }
    if (--up->frames_left > 0) {
        rd_request_reply_append(r, p, n);
        rd_upstream_pubsub_mode(up);
        return s->conn->closed ? -1 : 0;
    }
    return 1;                       /* its last frame */
}

/* limits.max_subscriptions: the channels r would add that are not there
 * yet, with those of the subscribes still on their way. */
static int
rd_standalone_admit(rd_upstream_t *up, rd_request_t *r, int ci)
{
    size_t add = 0;

    if (!rd_pubsub_cmds[ci].add) {
        return 1;
    }
    for (size_t i = 1; i < r->argc; i++) {
        add += rd_pubsub_find(up, rd_pubsub_cmds[ci].kind, r->argv[i].data,
                              r->argv[i].len) < 0;
    }
    return rd_request_admit_subscriptions(r, up->nsubs + up->reserved, add);
}

/* Subscribe again, one channel per command (one frame each), on a new
 * connection. */
static void
rd_pubsub_resubscribe(rd_upstream_t *up)
{
    static const char *const cmd[] = { "SUBSCRIBE", "PSUBSCRIBE",
                                       "SSUBSCRIBE" };
    if (up->nsubs == 0) {
        return;
    }
    rd_upstream_select(up, NULL);
    for (size_t i = 0; i < up->nsubs; i++) {
        rd_str_t argv[2] = { { cmd[up->subs[i].kind],
                               strlen(cmd[up->subs[i].kind]) },
                             { up->subs[i].data, up->subs[i].len } };
        rd_buf_t b = { 0 };
        rd_resp_encode_command(&b, 2, argv);
        rd_upstream_replay_one(up, rd_buf_rpos(&b), rd_buf_used(&b));
        rd_buf_free(&b);
    }
    rd_session_log(up->session, RD_LOG_NOTICE, "upstream reconnected: "
                   "subscribed again to %zu channels and patterns "
                   "(messages published meanwhile are lost), upstream: %s",
                   up->nsubs, up->uc.addr->text);
}

static void
rd_upstream_retry(rd_timer_t *t)
{
    rd_upstream_t *up = t->data;
    rd_session_t *s = up->session;

    if (up->uc.conn != NULL || up->nsubs == 0 || s->conn->closed) {
        return;
    }
    if (rd_upstream_open(up) != 0) {
        rd_session_log(s, RD_LOG_WARN, "upstream unavailable: %s, "
                       "upstream: %s", strerror(errno), up->uc.addr->text);
        if (up->retry_ms < 5000) {
            up->retry_ms *= 2;
        }
        rd_timer_add(&s->worker->loop.timers, &up->retry, s->worker->loop.now,
                     up->retry_ms);
    }
}

static int
rd_upstream_reply(rd_upconn_t *uc, void *data, const char *p, size_t n,
                  int last)
{
    rd_upstream_t *up = uc->owner;
    rd_session_t *s = up->session;
    rd_request_t *r = data;

    if (r == NULL) {
        return rd_upstream_replayed_reply(up, p, n, last);
    }
    rd_request_reply_append(r, p, n);
    if (s->conn->closed) {
        return -1;
    }
    if (last) {
        if (r->reply_type == '-') {
            /* A cluster node used as a standalone server redirects. */
            if (r->reply_head_len >= 7
                && memcmp(r->reply_head, "-MOVED ", 7) == 0)
            {
                rd_stats_redirect(uc->db, 0);
            } else if (r->reply_head_len >= 5
                       && memcmp(r->reply_head, "-ASK ", 5) == 0)
            {
                rd_stats_redirect(uc->db, 1);
            }
        }
        rd_upstream_track(up, r);
        if (rd_pubsub_cmd(r->argv[0]) >= 0 && up->sub_pending > 0) {
            up->sub_pending--;
            size_t k = r->argc - 1;
            up->reserved -= k < up->reserved ? k : up->reserved;
        }
        up->frames_left = 0;
        rd_upstream_pubsub_mode(up);
        rd_stats_latency(uc->db, s->worker->loop.now_usec - r->start_usec);
        rd_request_done(r);
        if (s->conn->closed) {
            return -1;
        }
    }
    return 0;
}

static const rd_upconn_handler_t rd_upstream_handler = {
    rd_upstream_reply, rd_upstream_fail
};

static void
rd_upstream_cleanup(rd_session_t *s, void *data)
{
    rd_upstream_t *up = data;
    rd_timer_del(&s->worker->loop.timers, &up->retry);
    for (size_t i = 0; i < up->nsubs; i++) {
        free(up->subs[i].data);
    }
    free(up->subs);
    rd_upconn_free(&up->uc);
    rd_buf_wipe(&up->auth);
    rd_buf_wipe(&up->setname);
    free(up);
}

static int
rd_standalone_route(rd_session_t *s, rd_request_t *r)
{
    rd_upstream_t *up = rd_session_ctx(s, rd_standalone_module);
    if (up == NULL) {
        up = rd_calloc(1, sizeof(*up));
        up->session = s;
        /* The uri's "/N" is where a session starts; the client's own
         * SELECT moves it as on a direct connection (tracked below). */
        up->select_db = s->database->select_db > 0
                        ? s->database->select_db : -1;
        /* s->db_user may change with AUTH; the certificate follows it. */
        rd_upconn_init(&up->uc, s->worker, s->database, &s->database->addr,
                       NULL, s->db_user, &rd_upstream_handler, up);
        up->uc.frame = rd_upstream_frame;
        up->retry.handler = rd_upstream_retry;
        up->retry.data = up;
        rd_session_ctx(s, rd_standalone_module) = up;
        rd_session_cleanup_add(s, rd_upstream_cleanup, up);
    }

    int ci = rd_pubsub_cmd(r->argv[0]);
    if (ci >= 0 && !rd_standalone_admit(up, r, ci)) {
        return RD_DONE;
    }
    if (up->uc.conn == NULL) {
        if (rd_upstream_open(up) != 0) {
            rd_stats_upstream_failed(up->uc.db, 0);
            rd_request_error(r, "ERR redoubt: upstream unavailable: %s",
                             strerror(errno));
            return RD_DONE;
        }
    }
    rd_upstream_select(up, r);
    if (ci >= 0) {
        up->sub_pending++;
        up->reserved += r->argc - 1;
        up->uc.whole_frames = 1;
    }
    rd_upconn_send(&up->uc, rd_buf_rpos(&r->raw), rd_buf_used(&r->raw), r);
    r->upstream = up->uc.addr->text;
    return RD_AGAIN;
}

/* Connect, and queue the state the client had set up and its
 * subscriptions; 0, or -1 with errno. */
static int
rd_upstream_open(rd_upstream_t *up)
{
    rd_session_t *s = up->session;

    rd_timer_del(&s->worker->loop.timers, &up->retry);
    up->uc.user = s->db_user;
    if (rd_upconn_connect(&up->uc) != 0) {
        return -1;
    }
    rd_upstream_replay(up);
    rd_pubsub_resubscribe(up);
    rd_upstream_pubsub_mode(up);
    return 0;
}

/*
 * Commands after which Redis answers with more or fewer replies than
 * requests. Matching replies to requests is what keeps a pipeline in
 * order, so these are refused until they are handled properly.
 */
static int
rd_standalone_filter(rd_session_t *s, rd_request_t *r)
{
    static const char *const unsupported[] = {
        "monitor", "sync", "psync",
    };

    if (s->txn != RD_TXN_NONE && rd_pubsub_cmd(r->argv[0]) >= 0) {
        /* Its confirmations would come inside EXEC's reply. */
        rd_request_error(r, "ERR redoubt: %.*s inside MULTI is not "
                         "supported", (int)r->argv[0].len, r->argv[0].data);
        return RD_DONE;
    }

    for (size_t i = 0; i < rd_countof(unsupported); i++) {
        if (rd_str_eq_ci(r->argv[0], unsupported[i])) {
            rd_request_error(r, "ERR redoubt: command not supported");
            return RD_DONE;
        }
    }
    if (rd_str_eq_ci(r->argv[0], "client") && r->argc >= 2
        && rd_str_eq_ci(r->argv[1], "reply"))
    {
        rd_request_error(r, "ERR redoubt: command not supported");
        return RD_DONE;
    }
    return RD_DECLINED;
}

static const rd_router_t rd_standalone_router = {
    "standalone", rd_standalone_filter, rd_standalone_route
};

/* This module routes the standalone databases (rd_router_t). */
static const char *
rd_standalone_init_db(rd_conf_t *cf, void *conf)
{
    if (cf->database->mode == RD_DB_STANDALONE) {
        cf->database->router = &rd_standalone_router;
    }
    return NULL;
}

rd_module_t rd_standalone_module = {
    .name = "standalone",
    .init_conf = { NULL, NULL, rd_standalone_init_db },
};

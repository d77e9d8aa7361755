/*
 * rd_standalone.c - the standalone module: route every command of a
 * session to one standalone Redis server.
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
 *
 * Commands after which Redis does not send exactly one reply per request
 * (SUBSCRIBE and friends, MONITOR, CLIENT REPLY) are refused for now with
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
#include "rd_resp_module.h"
#include "rd_session.h"
#include "rd_stats.h"
#include "rd_upstream_tls.h"
#include "rd_worker.h"

rd_module_t rd_standalone_module;

#define RD_UPSTREAM_READ_CHUNK (16 * 1024)

typedef struct {
    rd_session_t             *session;
    rd_database_t            *db;
    rd_conn_t                *conn;           /* NULL: not connected */
    rd_upstream_tls_t        *tls;            /* rediss:// */
    unsigned                  tcp_up:1;       /* TCP connect finished */
    unsigned                  connected:1;    /* and TLS, if any: ready */
    rd_buf_t                  out;
    rd_buf_t                  in;
    rd_request_t            **pending;        /* ring, oldest at head */
    size_t                    head;
    size_t                    count;
    size_t                    cap;
    rd_resp_reply_scanner_t   scan;
    rd_timer_t                connect_timer;

    /* Connection state to replay on a new connection. */
    rd_buf_t                  auth;           /* "AUTH ..." as RESP */
    int64_t                   select_db;      /* -1: never selected */
    rd_buf_t                  setname;        /* "CLIENT SETNAME ..." */
    unsigned                  in_multi:1;
    unsigned                  watching:1;
    unsigned                  unsure:1;       /* state set inside MULTI */
    char                      internal_type;  /* reply to a replayed cmd */
} rd_upstream_t;

static void rd_upstream_read_handler(rd_conn_t *c);
static void rd_upstream_write_handler(rd_conn_t *c);

static void
rd_upstream_push(rd_upstream_t *up, rd_request_t *r)
{
    if (up->count == up->cap) {
        size_t cap = up->cap ? up->cap * 2 : 16;
        rd_request_t **a = rd_alloc(cap * sizeof(*a));
        for (size_t i = 0; i < up->count; i++) {
            a[i] = up->pending[(up->head + i) % up->cap];
        }
        free(up->pending);
        up->pending = a;
        up->head = 0;
        up->cap = cap;
    }
    up->pending[(up->head + up->count) % up->cap] = r;
    up->count++;
}

static rd_request_t *
rd_upstream_pop(rd_upstream_t *up)
{
    rd_request_t *r = up->pending[up->head];
    up->head = (up->head + 1) % up->cap;
    up->count--;
    return r;
}

static void
rd_upstream_disconnect(rd_upstream_t *up)
{
    rd_upstream_tls_close(up->tls);
    up->tls = NULL;
    if (up->conn) {
        rd_conn_close(up->conn);
        up->conn = NULL;
    }
    up->tcp_up = 0;
    up->connected = 0;
    rd_timer_del(&up->session->worker->loop.timers, &up->connect_timer);
    rd_buf_free(&up->in);
    rd_buf_free(&up->out);
    rd_resp_reply_init(&up->scan);
}

/*
 * The connection failed: answer every pending request with an error, in
 * order. The session stays usable; its next command reconnects.
 */
static void
rd_upstream_fail(rd_upstream_t *up, const char *why)
{
    rd_session_t *s = up->session;

    rd_log_warn("session %llu: database \"%s\" (%s): %s",
                (unsigned long long)s->id, up->db->name, up->db->addr.text,
                why);
    rd_stats_upstream_failed(up->db, up->connected);
    rd_upstream_disconnect(up);

    if (up->in_multi || up->watching || up->unsure) {
        /* A new connection would silently drop the transaction. */
        rd_session_close(s, "upstream connection lost during a transaction");
        up->count = 0;
        return;
    }

    while (up->count > 0) {
        rd_request_t *r = rd_upstream_pop(up);
        if (r == NULL) {
            continue;               /* a replayed command */
        }
        if (r->streaming) {
            /* Part of this reply is already with the client. */
            rd_session_close(s, "upstream connection lost mid-reply");
            up->count = 0;
            return;
        }
        if (rd_buf_used(&r->reply) > 0) {
            s->buffered -= rd_buf_used(&r->reply);
            rd_buf_reset(&r->reply);
            r->reply_type = 0;
            r->reply_head_len = 0;
        }
        rd_request_error(r, "ERR redoubt: %s", why);
        if (s->conn->closed) {
            up->count = 0;
            return;
        }
    }
}

static void
rd_upstream_connect_timeout(rd_timer_t *t)
{
    rd_upstream_t *up = t->data;
    rd_upstream_fail(up, "upstream unavailable: connection timed out");
}

static void
rd_upstream_replay_one(rd_upstream_t *up, const char *p, size_t n)
{
    rd_buf_append(&up->out, p, n);
    rd_upstream_push(up, NULL);
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
    if (up->select_db > 0) {
        char db[24];
        int n = snprintf(db, sizeof(db), "%lld", (long long)up->select_db);
        rd_str_t argv[2] = { RD_STR("SELECT"), { db, (size_t)n } };
        rd_buf_t b = { 0 };
        rd_resp_encode_command(&b, 2, argv);
        rd_upstream_replay_one(up, rd_buf_rpos(&b), rd_buf_used(&b));
        rd_buf_free(&b);
    }
    if (rd_buf_used(&up->setname) > 0) {
        rd_upstream_replay_one(up, rd_buf_rpos(&up->setname),
                               rd_buf_used(&up->setname));
    }
}

static void
rd_upstream_wipe(rd_buf_t *b)
{
    if (b->data) {
        explicit_bzero(b->data, b->cap);
    }
    rd_buf_free(b);
}

static void
rd_upstream_remember(rd_buf_t *b, size_t argc, const rd_str_t *argv)
{
    rd_upstream_wipe(b);
    rd_resp_encode_command(b, argc, argv);
}

/*
 * Learn the connection state from a command Redis accepted. Only the
 * commands that change what a new connection would need are looked at.
 */
static void
rd_upstream_track(rd_upstream_t *up, rd_request_t *r)
{
    rd_str_t *a = r->argv;
    int ok = r->reply_type == '+' || r->reply_type == '*';

    if (rd_str_eq_ci(a[0], "exec") || rd_str_eq_ci(a[0], "discard")) {
        up->in_multi = 0;
        up->watching = 0;
        return;
    }
    if (!ok) {
        return;
    }
    if (up->in_multi) {
        /* Queued, not done: what it changes is known only after EXEC. */
        if (rd_str_eq_ci(a[0], "auth") || rd_str_eq_ci(a[0], "hello")
            || rd_str_eq_ci(a[0], "select") || rd_str_eq_ci(a[0], "client")
            || rd_str_eq_ci(a[0], "reset"))
        {
            up->unsure = 1;
        }
        return;
    }
    if (rd_str_eq_ci(a[0], "auth") && (r->argc == 2 || r->argc == 3)) {
        rd_upstream_remember(&up->auth, r->argc, a);
    } else if (rd_str_eq_ci(a[0], "hello")) {
        /* HELLO 2 AUTH user pass [SETNAME name] */
        for (size_t i = 2; i < r->argc; i++) {
            if (rd_str_eq_ci(a[i], "auth") && i + 2 < r->argc) {
                rd_str_t auth[3] = { RD_STR("AUTH"), a[i + 1], a[i + 2] };
                rd_upstream_remember(&up->auth, 3, auth);
                i += 2;
            } else if (rd_str_eq_ci(a[i], "setname") && i + 1 < r->argc) {
                rd_str_t sn[3] = { RD_STR("CLIENT"), RD_STR("SETNAME"),
                                   a[i + 1] };
                rd_upstream_remember(&up->setname, 3, sn);
                i += 1;
            }
        }
    } else if (rd_str_eq_ci(a[0], "select") && r->argc == 2) {
        char db[24];
        size_t n = a[1].len < sizeof(db) - 1 ? a[1].len : sizeof(db) - 1;
        memcpy(db, a[1].data, n);
        db[n] = '\0';
        up->select_db = strtoll(db, NULL, 10);
    } else if (rd_str_eq_ci(a[0], "client") && r->argc == 3
               && rd_str_eq_ci(a[1], "setname"))
    {
        rd_upstream_remember(&up->setname, 3, a);
    } else if (rd_str_eq_ci(a[0], "multi")) {
        up->in_multi = 1;
    } else if (rd_str_eq_ci(a[0], "watch")) {
        up->watching = 1;
    } else if (rd_str_eq_ci(a[0], "unwatch")) {
        up->watching = 0;
    } else if (rd_str_eq_ci(a[0], "reset")) {
        rd_upstream_wipe(&up->auth);
        rd_upstream_wipe(&up->setname);
        up->select_db = -1;
        up->in_multi = 0;
        up->watching = 0;
    }
}

static int
rd_upstream_connect(rd_upstream_t *up)
{
    rd_session_t *s = up->session;
    rd_worker_t *w = s->worker;

    int fd = rd_net_connect((struct sockaddr *)&up->db->addr.addr,
                            up->db->addr.len);
    if (fd < 0) {
        return -1;
    }
    up->conn = rd_conn_new(&w->loop, fd, up);
    if (up->conn == NULL) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    up->conn->read = rd_upstream_read_handler;
    up->conn->write = rd_upstream_write_handler;
    up->connected = 0;
    rd_upstream_replay(up);
    rd_conn_watch(up->conn, EPOLLOUT);
    rd_timer_add(&w->loop.timers, &up->connect_timer, w->loop.now,
                 up->db->connect_timeout);
    rd_log_debug("session %llu: connecting to %s", (unsigned long long)s->id,
                 up->db->addr.text);
    return 0;
}

/* Plain or TLS I/O on the upstream connection: > 0 bytes, 0 closed (read
 * only), RD_AGAIN, RD_ERROR (errno or a TLS error). */
static ssize_t
rd_upstream_io(rd_upstream_t *up, char *rbuf, const char *wbuf, size_t n)
{
    if (up->tls) {
        return rbuf ? rd_upstream_tls_read(up->tls, rbuf, n)
                    : rd_upstream_tls_write(up->tls, wbuf, n);
    }
    ssize_t r = rbuf ? read(up->conn->fd, rbuf, n)
                     : write(up->conn->fd, wbuf, n);
    if (r < 0) {
        return (errno == EAGAIN || errno == EINTR) ? RD_AGAIN : RD_ERROR;
    }
    return r;
}

/* Finish connecting: TCP, then TLS for rediss://. Returns 1 when ready,
 * 0 while waiting, -1 when it failed (pending requests were answered). */
static int
rd_upstream_establish(rd_upstream_t *up)
{
    rd_conn_t *c = up->conn;
    char why[400], err[300];

    if (!up->tcp_up) {
        int e = rd_net_socket_error(c->fd);
        if (e != 0) {
            snprintf(why, sizeof(why), "upstream unavailable: %s",
                     strerror(e));
            rd_upstream_fail(up, why);
            return -1;
        }
        up->tcp_up = 1;
        if (up->db->tls) {
            up->tls = rd_upstream_tls_open(up->session->worker, up->db,
                                           up->session->db_user, c->fd,
                                           err, sizeof(err));
            if (up->tls == NULL) {
                snprintf(why, sizeof(why), "upstream unavailable: %s", err);
                rd_upstream_fail(up, why);
                return -1;
            }
        }
    }
    if (up->tls) {
        uint32_t events = 0;
        int rc = rd_upstream_tls_handshake(up->tls, &events, err,
                                           sizeof(err));
        if (rc == RD_AGAIN) {
            rd_conn_watch(c, events);
            return 0;
        }
        if (rc != RD_OK) {
            snprintf(why, sizeof(why), "upstream unavailable: %s", err);
            rd_upstream_fail(up, why);
            return -1;
        }
    }
    up->connected = 1;
    rd_stats_upstream_up(up->db);
    rd_timer_del(&up->session->worker->loop.timers, &up->connect_timer);
    return 1;
}

static void
rd_upstream_write_handler(rd_conn_t *c)
{
    rd_upstream_t *up = c->data;
    char why[160];

    if (!up->connected && rd_upstream_establish(up) <= 0) {
        return;
    }

    while (rd_buf_used(&up->out) > 0) {
        ssize_t n = rd_upstream_io(up, NULL, rd_buf_rpos(&up->out),
                                   rd_buf_used(&up->out));
        if (n == RD_AGAIN) {
            rd_conn_watch(c, EPOLLIN | EPOLLOUT);
            return;
        }
        if (n <= 0) {
            snprintf(why, sizeof(why), "upstream connection lost: %s",
                     up->tls ? rd_upstream_tls_error(up->tls) : strerror(errno));
            rd_upstream_fail(up, why);
            return;
        }
        rd_buf_consume(&up->out, (size_t)n);
    }
    if (up->out.cap > 64 * 1024) {
        rd_buf_free(&up->out);
    }
    rd_conn_watch(c, EPOLLIN);
}

/* Consume the reply to a replayed command. A replay Redis refuses (the
 * password was changed, the database index no longer exists) means this
 * session cannot go on as the client believes it does. */
static int
rd_upstream_replayed_reply(rd_upstream_t *up, const rd_resp_limits_t *lim)
{
    size_t used = 0;
    const char *err = NULL;
    char why[160];
    rd_resp_status_t st = rd_resp_scan_reply(&up->scan, rd_buf_rpos(&up->in),
        rd_buf_used(&up->in), lim, &used, &err);

    if (st == RD_RESP_ERROR) {
        snprintf(why, sizeof(why), "upstream protocol error: %s", err);
        rd_upstream_fail(up, why);
        return -1;
    }
    if (up->internal_type == 0 && used > 0) {
        up->internal_type = rd_buf_rpos(&up->in)[0];
    }
    rd_buf_consume(&up->in, used);
    if (st != RD_RESP_OK) {
        return 0;
    }
    rd_upstream_pop(up);
    char type = up->internal_type;
    up->internal_type = 0;
    if (type == '-') {
        rd_upstream_disconnect(up);
        rd_session_close(up->session, "upstream refused the replayed "
                         "connection state (AUTH or SELECT)");
        return -1;
    }
    return 0;
}

static void
rd_upstream_read_handler(rd_conn_t *c)
{
    rd_upstream_t *up = c->data;
    rd_session_t *s = up->session;
    char why[160];

    if (!up->connected) {
        /* A failed connect is reported as an error event before the
         * socket is writable; a TLS handshake reads too. */
        if (rd_upstream_establish(up) <= 0) {
            return;
        }
        rd_upstream_write_handler(c);
        if (c->closed) {
            return;
        }
    }

    rd_buf_reserve(&up->in, RD_UPSTREAM_READ_CHUNK);
    ssize_t n = rd_upstream_io(up, rd_buf_wpos(&up->in), NULL,
                               rd_buf_room(&up->in));
    if (n == RD_AGAIN) {
        return;
    }
    if (n < 0) {
        snprintf(why, sizeof(why), "upstream connection lost: %s",
                 up->tls ? rd_upstream_tls_error(up->tls) : strerror(errno));
        rd_upstream_fail(up, why);
        return;
    }
    if (n == 0) {
        rd_upstream_fail(up, "upstream connection lost");
        return;
    }
    rd_buf_produce(&up->in, (size_t)n);
    if (up->tls && rd_upstream_tls_pending(up->tls) > 0) {
        rd_conn_post(c);        /* decrypted bytes epoll will not report */
    }

    const rd_resp_limits_t *lim = rd_resp_reply_limits(s->cycle);

    while (rd_buf_used(&up->in) > 0) {
        if (up->count == 0) {
            rd_upstream_fail(up, "upstream protocol error: unexpected data");
            return;
        }
        rd_request_t *r = up->pending[up->head];
        if (r == NULL) {
            if (rd_upstream_replayed_reply(up, lim) != 0) {
                return;
            }
            continue;
        }
        size_t used = 0;
        const char *err = NULL;
        rd_resp_status_t st = rd_resp_scan_reply(&up->scan,
            rd_buf_rpos(&up->in), rd_buf_used(&up->in), lim, &used, &err);

        if (st == RD_RESP_ERROR) {
            snprintf(why, sizeof(why), "upstream protocol error: %s", err);
            rd_upstream_fail(up, why);
            return;
        }
        rd_request_reply_append(r, rd_buf_rpos(&up->in), used);
        rd_buf_consume(&up->in, used);
        if (s->conn->closed) {
            return;
        }
        if (st == RD_RESP_OK) {
            rd_upstream_pop(up);
            rd_upstream_track(up, r);
            rd_stats_latency(up->db, s->worker->loop.now_usec - r->start_usec);
            rd_request_done(r);
            if (s->conn->closed) {
                return;
            }
        }
    }
    if (up->in.cap > 64 * 1024) {
        rd_buf_free(&up->in);
    }
}

static void
rd_upstream_cleanup(rd_session_t *s, void *data)
{
    rd_upstream_t *up = data;
    rd_upstream_disconnect(up);
    rd_upstream_wipe(&up->auth);
    rd_upstream_wipe(&up->setname);
    free(up->pending);
    free(up);
}

static int
rd_standalone_route(rd_session_t *s, rd_request_t *r)
{
    if (s->database->mode != RD_DB_STANDALONE) {
        return RD_DECLINED;
    }

    rd_upstream_t *up = rd_session_ctx(s, rd_standalone_module);
    if (up == NULL) {
        up = rd_calloc(1, sizeof(*up));
        up->session = s;
        up->db = s->database;
        up->connect_timer.handler = rd_upstream_connect_timeout;
        up->connect_timer.data = up;
        up->select_db = -1;
        rd_resp_reply_init(&up->scan);
        rd_session_ctx(s, rd_standalone_module) = up;
        rd_session_cleanup_add(s, rd_upstream_cleanup, up);
    }

    if (up->conn == NULL && rd_upstream_connect(up) != 0) {
        rd_stats_upstream_failed(up->db, 0);
        rd_request_error(r, "ERR redoubt: upstream unavailable: %s",
                         strerror(errno));
        return RD_DONE;
    }

    rd_buf_append(&up->out, rd_buf_rpos(&r->raw), rd_buf_used(&r->raw));
    rd_upstream_push(up, r);
    r->upstream = up->db->addr.text;
    if (up->connected) {
        rd_conn_want_flush(up->conn);
    }
    return RD_AGAIN;
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
        "subscribe", "psubscribe", "ssubscribe", "unsubscribe",
        "punsubscribe", "sunsubscribe", "monitor", "sync", "psync",
    };

    if (s->database->mode != RD_DB_STANDALONE) {
        return RD_DECLINED;
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

static int
rd_standalone_postconfiguration(rd_cycle_t *cycle)
{
    rd_phase_add(cycle, RD_PHASE_FILTER, rd_standalone_filter);
    return rd_phase_add(cycle, RD_PHASE_ROUTE, rd_standalone_route);
}

rd_module_t rd_standalone_module = {
    .name = "standalone",
    .postconfiguration = rd_standalone_postconfiguration,
};

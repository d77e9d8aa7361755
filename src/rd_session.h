/*
 * rd_session.h - a client session and its requests.
 *
 * A session is one client connection inside one worker. It runs the
 * session phases once (accept, handshake, identify, authorize), then the
 * modules' session_start hooks, then for every request the command phases
 * (decode, filter, intercept, route, reply, audit). QUIT skips the filter
 * phase: nothing refuses it (as in redis-server, it works before AUTH,
 * whatever the roles, and while the audit log cannot be written); the
 * core's intercept answers it.
 *
 * Requests are kept in a queue in the order they arrived. A request whose
 * reply is ready waits in the queue until every earlier one has been
 * answered, so replies leave in request order however the upstreams
 * answer. Reply bytes of the request at the head of the queue are streamed
 * to the client as they arrive (a 512 MB value never sits whole in
 * memory); replies of later requests are buffered. Everything buffered for
 * the client counts against limits.client_output_limit.
 *
 * Pushes (rd_session_push, rd_session_message): bytes that answer no
 * request (a subscribed session's messages). A push is a whole frame; it
 * goes out between complete replies, never inside one, and after every
 * reply complete when it came (a reply waiting behind an earlier request
 * carries it: s->last_done): while the head's reply streams, pushes wait
 * in s->push and follow that reply's last byte. A subscribed session (rd_session_set_subscribed) counts
 * everything held for it against limits.pubsub_output_limit instead
 * (hard, and soft for soft_seconds, as Redis's client-output-buffer-limit
 * pubsub), is closed past it, and is never closed as idle (Redis's
 * timeout spares subscribers too).
 *
 * Transport: s->io reads and writes the client's bytes. The core installs
 * plain socket I/O; a TLS module replaces it during the handshake phase.
 */
#ifndef RD_SESSION_H
#define RD_SESSION_H

#include <sys/socket.h>

#include "rd_core.h"
#include "rd_buf.h"
#include "rd_command.h"
#include "rd_conncmd.h"
#include "rd_event.h"
#include "rd_module.h"

/* I/O over the client connection. Both return bytes moved, 0 on orderly
 * close (recv only), RD_AGAIN when the socket would block, RD_ERROR. */
typedef struct {
    ssize_t (*recv)(rd_session_t *s, char *buf, size_t n);
    ssize_t (*send)(rd_session_t *s, const char *buf, size_t n);
    /* Bytes already received and buffered by the transport (TLS). */
    size_t  (*pending)(rd_session_t *s);
    /* Say goodbye before the socket is closed (TLS close_notify); may be
     * NULL. Best effort: never blocks. */
    void    (*shutdown)(rd_session_t *s);
    /* Nothing is waiting to be read or written: give back what the
     * transport holds for the connection (OpenSSL's record buffers, about
     * 17 kB each way); may be NULL. */
    void    (*release)(rd_session_t *s);
} rd_session_io_t;

/*
 * The session's transaction as Redis sees it, advanced by the core for
 * each request at the moment it leaves the filter and intercept phases
 * (in arrival order, the order Redis runs them):
 *   NONE     no MULTI open
 *   OPEN     a MULTI went to Redis: Redis queues what follows
 *   DIRTY    open, and redoubt refused a command Redis would have queued:
 *            the EXEC goes to Redis as DISCARD and is answered -EXECABORT,
 *            as Redis answers a transaction with a rejected command
 *   REFUSED  redoubt refused the MULTI itself: nothing reaches Redis until
 *            EXEC (-EXECABORT) or DISCARD (+OK), so the commands the
 *            client meant as a transaction never run one by one; that
 *            EXEC or DISCARD goes to Redis as UNWATCH (Redis's EXEC and
 *            DISCARD drop the connection's WATCHes too), whatever it
 *            answers
 * AUTH and HELLO are refused while a transaction is open: Redis would run
 * them only at EXEC, and the session's database user must be known when
 * the commands after them are checked.
 */
/* What the EXEC or DISCARD of a refused MULTI answers (r->txn_answer). */
enum {
    RD_TXN_ANSWER_NONE = 0,
    RD_TXN_ANSWER_EXECABORT,
    RD_TXN_ANSWER_OK
};

typedef enum {
    RD_TXN_NONE = 0,
    RD_TXN_OPEN,
    RD_TXN_DIRTY,
    RD_TXN_REFUSED
} rd_txn_state_t;

typedef enum {
    RD_SESSION_SETUP = 0,     /* running session phases */
    RD_SESSION_ACTIVE,        /* serving commands */
    RD_SESSION_CLOSING        /* writing the last replies, then close */
} rd_session_state_t;

struct rd_request_s {
    rd_session_t   *session;
    rd_request_t   *next;          /* session queue, in arrival order */
    uint64_t        seq;           /* its place in the queue (s->commands
                                      when it was queued) */
    size_t          argc;
    rd_str_t       *argv;          /* point into raw */
    rd_str_t        argv_small[6];
    rd_buf_t        raw;           /* the command as a RESP multibulk */
    /* What the request is, computed once by the core when its command is
     * set (after the decode phase, and again when a module rewrites it:
     * rd_request_set_command); every module reads these, none looks the
     * command up or finds its keys again (rd_classify.c). */
    rd_conncmd_t    conncmd;       /* AUTH, HELLO, MULTI, ... as Redis
                                      parses them (rd_conncmd.h) */
    const rd_command_t *cmd;       /* the command table's row
                                      (rd_command_lookup: a subcommand's
                                      own row), NULL: unknown command */
    size_t         *keys;          /* argv positions of the keys COMMAND
                                      GETKEYS names, in its order */
    int             nkeys;         /* -1: the arguments break the
                                      command's key rules (Redis refuses
                                      it), or no row */
    size_t          keys_small[8];
    size_t         *touched;       /* rd_request_touched() */
    int             ntouched;      /* -2: not yet asked for */
    size_t          touched_small[8];
    rd_buf_t        reply;         /* buffered reply (when not streamed) */
    unsigned        phase;
    unsigned        handler;
    char            reply_type;    /* first byte of the reply */
    unsigned        done:1;        /* the whole reply is known */
    unsigned        streaming:1;   /* part of the reply was sent already */
    unsigned        close_after:1; /* close the session after this reply */
    unsigned        buffer_reply:1;/* a module needs the whole reply */
    unsigned        txn_seen:1;    /* the transaction step has run */
    unsigned        txn_opens:1;   /* this MULTI opened s->txn_id */
    unsigned        exec_abort:1;  /* an EXEC sent as DISCARD: answer
                                      -EXECABORT */
    unsigned        txn_answer:2;  /* the EXEC or DISCARD of a refused
                                      MULTI, sent as UNWATCH: its reply
                                      becomes RD_TXN_ANSWER_* */
    unsigned        txn_id;
    char            reply_head[512];/* the reply's first bytes (for audit:
                                      "-NOPERM ...", "+OK"): 64 of them,
                                      511 after the "-" of an error */
    unsigned        reply_head_len;
    const char     *upstream;      /* where it was sent ("ip:port"), or
                                      NULL when answered by redoubt */
    int64_t         start_usec;
    void          **ctx;           /* per-module request state */
};

struct rd_session_s {
    rd_worker_t        *worker;
    rd_cycle_t         *cycle;
    rd_listener_t      *listener;
    rd_database_t      *database;     /* chosen in the session phases */
    struct rd_identity_s *identity;   /* from the client certificate, or
                                         NULL on a plaintext listener */
    const char         *db_user;      /* the database user; "default"
                                         until a module says otherwise */
    rd_conn_t          *conn;
    const rd_session_io_t *io;
    rd_session_state_t  state;
    uint64_t            id;
    char                addr_text[64];
    char                sid[33];      /* 128 random bits in hex: the id in
                                         the error log and the audit log */
    const char         *user;         /* the certificate's user, or NULL */

    unsigned            phase;        /* session phase being run */
    unsigned            handler;

    rd_buf_t            in;
    rd_buf_t            out;
    size_t              buffered;     /* reply bytes held for the client */
    rd_buf_t            push;         /* pushes waiting for a streaming
                                         reply to end (rd_session_push) */
    rd_msec_t           soft_since;   /* over the soft pubsub limit since
                                         (loop.now), 0: not over it */

    rd_request_t       *head;         /* oldest request without reply sent */
    rd_request_t       *tail;
    rd_request_t       *decoding;     /* request being decoded */
    rd_request_t       *last_done;    /* the latest request in queue order
                                         whose reply is complete, not yet
                                         sent (rd_session_push) */
    size_t              inflight;
    unsigned            read_paused:1;
    unsigned            started:1;    /* the session phases all passed */
    unsigned            eof:1;        /* the client closed its side */
    unsigned            in_handler:1;
    unsigned            draining:1;   /* the worker is stopping: answer
                                         what was read, then close
                                         (rd_session_drain) */
    unsigned            lingering:1;  /* answered and shut down for
                                         writing: the client's last
                                         bytes are read and dropped */
    unsigned            subscribed:1; /* rd_session_set_subscribed */
    rd_txn_state_t      txn;          /* see rd_txn_state_t */
    unsigned            txn_id;       /* counts the MULTIs that opened */

    rd_timer_t          idle_timer;
    int64_t             idle_timeout; /* ms, 0 = none; modules may lower it */
    rd_timer_t          end_timer;    /* the core's: rd_session_end_at() */
    const char         *end_reason;   /* why the session ends then */
    rd_timer_t          request_timer;/* limits.request_timeout: armed while
                                         a request is partly read */
    uint64_t            request_mark; /* s->commands when it was armed */
    rd_timer_t          linger_timer; /* bounds the lingering close */

    int64_t             start_usec;
    uint64_t            bytes_in;
    uint64_t            bytes_out;
    uint64_t            commands;
    uint64_t            messages;     /* Pub/Sub messages handed to the
                                         client (rd_session_message) */
    const char         *close_reason;
    char               *refusal;      /* why the session was refused */

    struct rd_session_cleanup_s *cleanups;
    void              **ctx;          /* per-module session state */
    rd_session_t       *prev_active;  /* worker's list of sessions */
    rd_session_t       *next_active;
};

/* Create a session for an accepted descriptor and start its phases. */
rd_session_t *rd_session_create(rd_worker_t *w, rd_listener_t *l, int fd,
                                const struct sockaddr *peer);
/* Release the worker's cache of request objects (at worker exit). */
void rd_worker_free_requests(rd_worker_t *w);
/* Free a closed session (the worker does this after the loop iteration). */
void rd_session_free(rd_session_t *s);
/* Continue the session phases after a handler returned RD_AGAIN:
 * rd_session_phase_done() when that handler has finished its work (the
 * phases go on with the next handler), rd_session_run_phases() to call the
 * same handler again. Either puts the core's I/O handlers back on the
 * connection first. */
void rd_session_run_phases(rd_session_t *s);
void rd_session_phase_done(rd_session_t *s);
/* A line in the error log about s, with its context appended as nginx
 * does: "<message>, client: ADDR, session: SID[, database: DB][, user: U]
 * [, db user: DU]". */
void rd_session_log(rd_session_t *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Queue an error reply and close once it is written. */
void rd_session_refuse(rd_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Close now (buffered output is dropped); reason goes to the log. */
void rd_session_close(rd_session_t *s, const char *reason);
/* Stop reading and close when everything queued has been written. */
void rd_session_finish(rd_session_t *s, const char *reason);
/*
 * The worker is stopping (worker_shutdown_timeout has passed): a session
 * with nothing to answer is closed now. One with commands read and not
 * yet answered (sent to Redis, or waiting to be) stops reading, gets the
 * replies written as they come, and then closes with a lingering close:
 * close_notify and a TCP half-close, and the client's further bytes read
 * and dropped until it closes (at most RD_SESSION_LINGER_MS), so that
 * unread input never turns the close into a reset that could destroy
 * replies on their way. The worker closes what is still open after
 * worker_shutdown_grace. Returns 1 when the session stays open.
 */
int  rd_session_drain(rd_session_t *s, const char *reason);
#define RD_SESSION_LINGER_MS  2000

typedef void (*rd_session_cleanup_pt)(rd_session_t *s, void *data);
/* Called when the session is freed, last added first. */
void rd_session_cleanup_add(rd_session_t *s, rd_session_cleanup_pt fn,
                            void *data);

/*
 * Module m's state for s, s->ctx[m->index], made on the first call:
 * size zeroed bytes, then init (may be NULL) fills in what is not zero.
 * When the session is freed, cleanup (may be NULL) releases what the
 * state holds (in the order of rd_session_cleanup_add, with the state as
 * data) and the core then frees the state itself. Later calls return the
 * same state (size, init and cleanup are not looked at again).
 */
typedef void (*rd_session_ctx_init_pt)(rd_session_t *s, void *ctx);
void *rd_session_ctx_make(rd_session_t *s, const rd_module_t *m, size_t size,
                          rd_session_ctx_init_pt init,
                          rd_session_cleanup_pt cleanup);

static inline void *
rd_session_ctx_get(rd_session_t *s, const rd_module_t *m, size_t size,
                   rd_session_ctx_init_pt init, rd_session_cleanup_pt cleanup)
{
    void *ctx = s->ctx[m->index];
    return ctx ? ctx : rd_session_ctx_make(s, m, size, init, cleanup);
}

/*
 * The session ends at when (the worker loop's clock, loop.now
 * milliseconds) with reason, unless an earlier end is set already (the
 * earliest is kept; at an equal time, the first). At that time the core
 * logs "<reason>, closing" and closes the session with reason (the audit
 * log's session.end reason). reason must live as long as the session (a
 * string literal).
 */
void rd_session_end_at(rd_session_t *s, rd_msec_t when, const char *reason);

/* Replace the command of r (argv are copied; r->argv then points into
 * r->raw, which holds the RESP encoding sent upstream). */
void rd_request_set_command(rd_request_t *r, size_t argc,
                            const rd_str_t *argv);
/* Compute r's facts above from its argv (rd_request_set_command does;
 * exposed for the unit tests). */
void rd_request_classify(rd_request_t *r);
/* Free what rd_request_classify() allocated (r is being freed). */
void rd_request_unclassify(rd_request_t *r);
/* A request that is nothing but a command, classified as the server
 * classifies a decoded one, for code that has no session (redoubtctl's
 * "access check", the unit tests): r is cleared and points at argv,
 * which is not copied and must outlive r. Only the facts above are
 * set; rd_request_unclassify() frees what they hold. */
void rd_request_from_argv(rd_request_t *r, size_t argc,
                          const rd_str_t *argv);
/* Every key argument r's command may touch (RD_KEYS_TOUCHED in
 * rd_command.h: a superset of r->keys, for the roles' key rules), worked
 * out on the first call and kept: the count, or -1 as r->nkeys; *pos
 * gets the positions. */
int rd_request_touched(rd_request_t *r, const size_t **pos);
/* Go on with r's command phases after the handler that returned RD_AGAIN
 * for it (a module that held r back, not one that answers it). */
void rd_request_continue(rd_request_t *r);
/* Append bytes of r's reply (streamed if r is at the head). */
void rd_request_reply_append(rd_request_t *r, const char *p, size_t n);
/* Deliver a whole frame that answers no request after every reply
 * already complete: right after the last request of the queue that is
 * done (its reply waits behind an earlier one), else at once when no
 * reply is streaming, else right after the streaming reply's last byte. The
 * session may be closed on return (an output limit). rd_session_push
 * counts nothing (a confirmation Redis sent unasked, such as a server's
 * own sunsubscribe; a RESP3 push that is no Pub/Sub message, such as a
 * tracking invalidation). rd_session_message is for a Pub/Sub message
 * (message, pmessage, smessage, one frame a call): it counts it in
 * s->messages and in the database's redoubt_pubsub_messages_total, then
 * pushes it. */
void rd_session_push(rd_session_t *s, const char *p, size_t n);
void rd_session_message(rd_session_t *s, const char *p, size_t n);
/* limits.max_subscriptions: r's session, with have channels and patterns,
 * would add adding more: 1 when it may, else 0 (r was answered with
 * redoubt's error). */
int rd_request_admit_subscriptions(rd_request_t *r, size_t have,
                                   size_t adding);
/* The session is (on) or is no longer (off) in subscribed mode: the
 * pubsub output limit applies, the idle timeout does not. */
void rd_session_set_subscribed(rd_session_t *s, int on);
/* Take back what was appended of r's reply so far (an upstream failed
 * mid-reply and r is to be answered anew, with an error): the bytes held
 * for the client go, and with them their share of the output limit, and
 * r is as if nothing had been appended. Returns 0, or -1 when part of
 * the reply was streamed to the client already: that cannot be taken
 * back, r is left as it is, and the caller closes the session. */
int  rd_request_reply_reset(rd_request_t *r);
/* The reply of r is complete: run the phases that follow. */
void rd_request_done(rd_request_t *r);
/* Produce a whole error reply "-<msg>\r\n" for r and complete it. */
void rd_request_error(rd_request_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define rd_session_ctx(s, m)  ((s)->ctx[(m).index])
#define rd_request_ctx(r, m)  ((r)->ctx[(m).index])

#endif

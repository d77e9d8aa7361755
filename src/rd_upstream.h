/*
 * rd_upstream.h - one connection to a Redis server (a standalone server or a
 * cluster node), plain or TLS: the core's service for the routing modules.
 *
 * The owner queues commands with rd_upconn_send(uc, cmd, n, data): they are
 * written in order as the socket allows, and Redis answers them in order,
 * so the oldest queued entry owns the next reply. Reply bytes are handed to
 * the owner's reply callback as the scanner finds them (a big reply streams
 * through), with last = 1 on the reply's final chunk; the entry has been
 * taken off the queue by then. When the connection fails, the socket is
 * closed first and then the owner's fail callback runs: the entries still
 * queued are the owner's to answer, oldest first, with rd_upconn_pop().
 *
 * Connecting: rd_upconn_connect() starts a non-blocking TCP connect (and
 * the TLS handshake for rediss://, presenting a certificate for uc->user
 * and checking the server's against uc->host); commands sent before it is
 * up wait in the output buffer. The database's connect_timeout bounds the
 * whole of it.
 *
 * Subscribed connections: with uc->whole_frames set by the owner, frames
 * are scanned whole and the owner's frame callback (uc->frame) says which answer the
 * oldest queued entry and which are its own (messages); without it, a
 * frame with nothing queued is a protocol error. Reading is bounded per
 * event (RD_UPCONN_READ_CHUNK), so a busy subscription (PSUBSCRIBE * on a
 * busy server) takes its turn with the other connections of the worker.
 *
 * Transport: plain socket I/O by default. TLS sits behind an I/O table
 * (rd_upstream_io_t), which the upstream_tls module installs in the cycle
 * (cycle->upstream_tls) the way a TLS module replaces rd_session_io_t on
 * the client side; the core knows nothing of OpenSSL. Replies are scanned
 * with cycle->reply_limits (set by the resp module).
 */
#ifndef RD_UPSTREAM_H
#define RD_UPSTREAM_H

#include "rd_core.h"
#include "rd_buf.h"
#include "rd_cycle.h"
#include "rd_event.h"
#include "rd_resp.h"
#include "rd_timer.h"

typedef struct rd_upconn_s rd_upconn_t;

/* TLS (or any other transport) on an upstream connection. t is what open
 * returned. read and write return bytes moved, 0 on orderly close (read
 * only), RD_AGAIN or RD_ERROR. */
typedef struct rd_upstream_io_s {
    /* Start on a connected socket fd to db, presenting a certificate for
     * database user db_user and checking the server's against host; NULL
     * and err on failure. */
    void       *(*open)(rd_worker_t *w, rd_database_t *db,
                        const char *db_user, const char *host, int fd,
                        char *err, size_t errlen);
    /* RD_OK: done; RD_AGAIN: wait for *events; RD_ERROR: err says why. */
    int         (*handshake)(void *t, uint32_t *events, char *err,
                             size_t errlen);
    ssize_t     (*read)(void *t, char *buf, size_t n);
    ssize_t     (*write)(void *t, const char *buf, size_t n);
    /* Bytes decrypted and buffered, which epoll will not report. */
    size_t      (*pending)(void *t);
    /* Nothing waits to be read or written: give buffers back. */
    void        (*release)(void *t);
    /* Why the last read or write returned RD_ERROR. */
    const char *(*error)(void *t);
    void        (*close)(void *t);
} rd_upstream_io_t;

typedef struct {
    /* Bytes of the reply owned by data. Return 0 to go on, -1 when the
     * callback closed this connection or its session (stop reading). */
    int  (*reply)(rd_upconn_t *uc, void *data, const char *p, size_t n,
                  int last);
    /* The connection failed and was closed; why is for the client. */
    void (*fail)(rd_upconn_t *uc, const char *why);
} rd_upconn_handler_t;

struct rd_upconn_s {
    rd_worker_t               *worker;
    rd_database_t             *db;
    const rd_sockaddr_t       *addr;
    const char                *host;      /* checked in the certificate;
                                             NULL: the database's host */
    const char                *user;      /* the minted certificate's CN */
    const rd_upconn_handler_t *handler;
    void                      *owner;

    rd_conn_t                 *conn;      /* NULL: not connected */
    const rd_upstream_io_t    *io;        /* NULL: plain socket I/O */
    void                      *tls;       /* io's state */
    unsigned                   tcp_up:1;
    unsigned                   connected:1; /* TCP and TLS done: ready */
    unsigned                   never_up:1;  /* the last failure came before
                                               the connection was ready:
                                               nothing queued was sent */
    /* Optional, set by the owner after rd_upconn_init (kept out of
     * rd_upconn_handler_t so that its positional initialisers stay
     * complete under -Wextra): while uc->whole_frames is set (a
     * subscribed connection, where Redis also sends frames that answer
     * no command), every frame is scanned whole and handed here first.
     * Return 1: it is the reply of the oldest queued entry (it goes on to
     * handler->reply, whole, with last = 1); 0: the owner took it (a
     * message); -1: the callback closed this connection or its session
     * (stop reading). */
    int                      (*frame)(rd_upconn_t *uc, const char *p,
                                      size_t n);
    unsigned                   whole_frames:1; /* see frame */
    unsigned                   mid_reply:1;  /* part of a reply was
                                                handed to reply already */
    rd_buf_t                   framebuf;  /* the frame being scanned */
    rd_buf_t                   out;
    rd_buf_t                   in;
    void                     **pending;   /* ring, oldest at head */
    size_t                     head;
    size_t                     count;
    size_t                     cap;
    rd_resp_reply_scanner_t    scan;
    rd_timer_t                 connect_timer;
};

void  rd_upconn_init(rd_upconn_t *uc, rd_worker_t *w, rd_database_t *db,
                     const rd_sockaddr_t *addr, const char *host,
                     const char *user, const rd_upconn_handler_t *h,
                     void *owner);
/* Start connecting; 0, or -1 with errno (nothing was queued then). */
int   rd_upconn_connect(rd_upconn_t *uc);
/* Queue a command (RESP bytes) whose reply belongs to data. */
void  rd_upconn_send(rd_upconn_t *uc, const char *cmd, size_t n, void *data);
/* Take the oldest queued entry (after a failure). */
void *rd_upconn_pop(rd_upconn_t *uc);
/* Close the socket; queued entries stay for the owner to pop. */
void  rd_upconn_close(rd_upconn_t *uc);
/* Close and release everything (queued entries are dropped silently). */
void  rd_upconn_free(rd_upconn_t *uc);

#endif

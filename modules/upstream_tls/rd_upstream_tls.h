/*
 * rd_upstream_tls.h - TLS on connections to Redis, for the routing
 * modules (standalone now, cluster later).
 *
 * A routing module connects the TCP socket itself; once connected it calls
 * rd_upstream_tls_open() and drives rd_upstream_tls_handshake() from its
 * socket events until it returns RD_OK, then reads and writes through
 * rd_upstream_tls_read()/rd_upstream_tls_write(). Bytes OpenSSL has
 * already decrypted are not reported by epoll: after a read, a module
 * checks rd_upstream_tls_pending() and comes back for them.
 */
#ifndef RD_UPSTREAM_TLS_H
#define RD_UPSTREAM_TLS_H

#include "rd_core.h"

typedef struct rd_upstream_tls_s rd_upstream_tls_t;

/* Start a client-side TLS connection on fd to database db, presenting a
 * certificate for database user db_user. The server's certificate must
 * name the database's tls.server_name when one is configured, else host
 * (a cluster node's address), else the uri's host. NULL and err on
 * failure. */
rd_upstream_tls_t *rd_upstream_tls_open(rd_worker_t *w, rd_database_t *db,
    const char *db_user, const char *host, int fd, char *err, size_t errlen);
/* RD_OK: done. RD_AGAIN: wait for *events (EPOLLIN or EPOLLOUT).
 * RD_ERROR: failed, err says why (certificate refused, ...). */
int rd_upstream_tls_handshake(rd_upstream_tls_t *t, uint32_t *events,
    char *err, size_t errlen);
/* > 0 bytes, 0 closed by peer, RD_AGAIN, RD_ERROR. */
ssize_t rd_upstream_tls_read(rd_upstream_tls_t *t, char *buf, size_t n);
ssize_t rd_upstream_tls_write(rd_upstream_tls_t *t, const char *buf,
    size_t n);
size_t  rd_upstream_tls_pending(rd_upstream_tls_t *t);
/* Nothing is waiting to be read or written: give OpenSSL's record
 * buffers back (they are set up again by the next read or write). */
void    rd_upstream_tls_release(rd_upstream_tls_t *t);
/* Why the last read or write returned RD_ERROR (OpenSSL's reason). */
const char *rd_upstream_tls_error(rd_upstream_tls_t *t);
void    rd_upstream_tls_close(rd_upstream_tls_t *t);

#endif

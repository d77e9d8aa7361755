/*
 * rd_ssl.c - OpenSSL glue shared by the tls and upstream_tls modules.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "rd_ssl.h"

void
rd_ssl_error(char *buf, size_t n, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e != 0) {
        ERR_error_string_n(e, reason, sizeof(reason));
    }
    ERR_clear_error();
    snprintf(buf, n, "%s: %s", what, reason);
}

static ssize_t
rd_ssl_result(SSL *ssl, int read, char *why, size_t wn)
{
    int e = SSL_get_error(ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return RD_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        if (read) {
            return 0;
        }
        break;
    default:
        break;
    }
    /* Keep OpenSSL's reason: a TLS 1.3 server refuses a client
     * certificate after the handshake, in an alert. */
    if (why) {
        unsigned long code = ERR_peek_error();
        if (code != 0) {
            ERR_error_string_n(code, why, wn);
        } else if (e == SSL_ERROR_SYSCALL) {
            snprintf(why, wn, "%s", errno ? strerror(errno)
                                          : "connection closed");
        } else {
            snprintf(why, wn, "TLS error %d", e);
        }
    }
    ERR_clear_error();
    return RD_ERROR;
}

ssize_t
rd_ssl_read(SSL *ssl, char *buf, size_t n, char *why, size_t wn)
{
    size_t got = 0;
    if (SSL_read_ex(ssl, buf, n, &got) == 1) {
        return (ssize_t)got;
    }
    return rd_ssl_result(ssl, 1, why, wn);
}

ssize_t
rd_ssl_write(SSL *ssl, const char *buf, size_t n, char *why, size_t wn)
{
    size_t put = 0;
    if (SSL_write_ex(ssl, buf, n, &put) == 1) {
        return (ssize_t)put;
    }
    return rd_ssl_result(ssl, 0, why, wn);
}

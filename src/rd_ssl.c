/*
 * rd_ssl.c - OpenSSL glue shared by the tls and upstream_tls modules.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

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

void
rd_ssl_reasons(char *buf, size_t n)
{
    size_t k = 0;
    unsigned long e;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        const char *r = ERR_reason_error_string(e);
        char code[32];
        if (r == NULL) {
            snprintf(code, sizeof(code), "error %d", (int)ERR_GET_REASON(e));
            r = code;
        }
        if (strstr(buf, r) != NULL || k >= n) {
            continue;           /* said already, or no room */
        }
        int w = snprintf(buf + k, n - k, "%s%s", k ? "; " : "", r);
        k += w > 0 ? (size_t)w : 0;
    }
    if (buf[0] == '\0') {
        snprintf(buf, n, "unknown error");
    }
}

int
rd_ssl_key_mismatch(void)
{
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_X509
           && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
}

void
rd_ssl_file_error(char *buf, size_t n, const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(buf, n, "cannot open \"%s\": %s", path, strerror(errno));
        ERR_clear_error();
        return;
    }
    fclose(f);
    char reasons[256];
    rd_ssl_reasons(reasons, sizeof(reasons));
    snprintf(buf, n, "%s \"%s\": %s", what, path, reasons);
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
    case SSL_ERROR_SSL:
        /* Most clients close the socket without a close_notify alert:
         * for a read that is an orderly end of the stream (a command cut
         * short is still noticed by the RESP parser), not an error. */
        if (read && ERR_GET_REASON(ERR_peek_error())
                    == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
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
    /* SSL_get_error() reads the thread's error queue first: an error
     * another connection left there would turn this one's WANT_READ
     * into a failure (OpenSSL: the queue must be empty before the I/O
     * call). */
    ERR_clear_error();
    if (SSL_read_ex(ssl, buf, n, &got) == 1) {
        return (ssize_t)got;
    }
    return rd_ssl_result(ssl, 1, why, wn);
}

ssize_t
rd_ssl_write(SSL *ssl, const char *buf, size_t n, char *why, size_t wn)
{
    size_t put = 0;
    ERR_clear_error();              /* as in rd_ssl_read() */
    if (SSL_write_ex(ssl, buf, n, &put) == 1) {
        return (ssize_t)put;
    }
    return rd_ssl_result(ssl, 0, why, wn);
}

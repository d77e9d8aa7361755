/*
 * rd_ssl.h - OpenSSL glue shared by the tls and upstream_tls modules.
 */
#ifndef RD_SSL_H
#define RD_SSL_H

#include <openssl/ssl.h>

#include "rd_core.h"

/* "what: <OpenSSL's first queued reason>" into buf; clears the queue. */
void rd_ssl_error(char *buf, size_t n, const char *what);
/* Why a file named by a directive could not be used, for a configuration
 * error: "cannot open \"path\": <errno>" when it cannot be read, else
 * "what \"path\": <OpenSSL's reasons>", without OpenSSL's error codes.
 * Clears the queue. */
void rd_ssl_file_error(char *buf, size_t n, const char *path,
                       const char *what);
/* The queued error says a private key is not the certificate's. */
int  rd_ssl_key_mismatch(void);
/* OpenSSL's queued reasons ("no start line; ..."), or "unknown error";
 * clears the queue. */
void rd_ssl_reasons(char *buf, size_t n);

/* SSL_read_ex/SSL_write_ex in the project's convention: bytes moved,
 * 0 on an orderly close (read only), RD_AGAIN, or RD_ERROR with the
 * reason in why (may be NULL). */
ssize_t rd_ssl_read(SSL *ssl, char *buf, size_t n, char *why, size_t wn);
ssize_t rd_ssl_write(SSL *ssl, const char *buf, size_t n, char *why,
                     size_t wn);

#endif

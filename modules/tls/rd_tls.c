/*
 * rd_tls.c - the tls module: client-facing mutual TLS, and the identity
 * and target database taken from the client's certificate.
 *
 * The SSL_CTX is built in the master for every new cycle (so a broken
 * certificate fails "redoubt -t" and a reload, and never a worker) and
 * inherited by the workers. Client certificates are required and must
 * chain to tls.client_ca, the user CA; TLS 1.2 and 1.3 only.
 *
 * Phases:
 *   handshake  a non-blocking SSL_accept driven by the session's events,
 *              bounded by limits.handshake_timeout; the session's I/O is
 *              switched to SSL_read/SSL_write;
 *   identify   the verified certificate becomes s->identity; the session
 *              is closed when the certificate expires; the target
 *              database is the certificate's route, else the TLS server
 *              name (SNI "db" or "db.<anything>"), else (in the core) the
 *              listener's default.
 *
 * Sessions are never resumed: no server session cache, no TLS 1.2
 * tickets, no TLS 1.3 tickets. A client that offers a saved session gets
 * a full handshake, so its certificate is verified against the current
 * user CA (and its notAfter, and then the roles) on every connection. The
 * session ID context is set all the same: without one OpenSSL fails the
 * handshake ("session id context uninitialized", an internal-error alert)
 * whenever it finds the session a client offers, instead of ignoring it.
 *
 * A server name that names no database on a listener without a default
 * database is refused with the words the roles use for a database they do
 * not reach, so that a client cannot tell which databases exist (the
 * error log says which it was).
 *
 * A listener with "tls = false" is plaintext: no client authentication
 * and no identity. It exists for tests and says so loudly in the log.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "rd_cycle.h"
#include "rd_cert_identity.h"
#include "rd_log.h"
#include "rd_session.h"
#include "rd_ssl.h"
#include "rd_stats.h"
#include "rd_worker.h"

rd_module_t rd_tls_module;

typedef struct {
    char    *certificate;
    char    *certificate_key;
    char    *client_ca;
    char    *ciphers;
    char    *ciphersuites;
    int64_t  min_protocol;
    SSL_CTX *ctx;
} rd_tls_conf_t;

typedef struct {
    int64_t  enabled;
} rd_tls_listen_conf_t;

typedef struct {
    SSL        *ssl;
    rd_timer_t  timer;           /* handshake timeout */
} rd_tls_session_t;

static const rd_conf_enum_t rd_tls_protocols[] = {
    { "TLSv1.2", TLS1_2_VERSION }, { "TLSv1.3", TLS1_3_VERSION },
    { NULL, 0 }
};

#define C(field) offsetof(rd_tls_conf_t, field)

static const rd_directive_t rd_tls_directives[] = {
    { "tls.certificate", RD_CONF_MAIN, rd_conf_set_path, C(certificate),
      NULL },
    { "tls.certificate_key", RD_CONF_MAIN, rd_conf_set_path,
      C(certificate_key), NULL },
    { "tls.client_ca", RD_CONF_MAIN, rd_conf_set_path, C(client_ca), NULL },
    { "tls.ciphers", RD_CONF_MAIN, rd_conf_set_str, C(ciphers), NULL },
    { "tls.ciphersuites", RD_CONF_MAIN, rd_conf_set_str, C(ciphersuites),
      NULL },
    { "tls.min_protocol", RD_CONF_MAIN, rd_conf_set_enum, C(min_protocol),
      rd_tls_protocols },
    { "tls", RD_CONF_LISTEN, rd_conf_set_flag,
      offsetof(rd_tls_listen_conf_t, enabled), NULL },
    rd_null_directive
};

/* Forward secrecy and AEAD only, for TLS 1.2; TLS 1.3 suites are all
 * modern and OpenSSL's default list is kept. */
#define RD_TLS_DEFAULT_CIPHERS \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* --- configuration ------------------------------------------------------ */

static void *
rd_tls_create_main(rd_conf_t *cf)
{
    rd_tls_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->min_protocol = RD_CONF_UNSET;
    return c;
}

static const char *
rd_tls_init_main(rd_conf_t *cf, void *conf)
{
    rd_tls_conf_t *c = conf;
    if (c->min_protocol == RD_CONF_UNSET) {
        c->min_protocol = TLS1_2_VERSION;
    }
    if (c->ciphers == NULL) {
        c->ciphers = RD_TLS_DEFAULT_CIPHERS;
    }
    if ((c->certificate == NULL) != (c->certificate_key == NULL)) {
        rd_conf_error_at(cf, cf->ctx, c->certificate ? "tls.certificate"
                                                      : "tls.certificate_key",
                         "tls.certificate and tls.certificate_key go "
                         "together");
    }
    return NULL;
}

static void *
rd_tls_create_listen(rd_conf_t *cf)
{
    rd_tls_listen_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->enabled = RD_CONF_UNSET;
    return c;
}

static const char *
rd_tls_init_listen(rd_conf_t *cf, void *conf)
{
    rd_tls_listen_conf_t *c = conf;
    if (c->enabled == RD_CONF_UNSET) {
        c->enabled = 1;
    }
    return NULL;
}

static rd_tls_listen_conf_t *
rd_tls_listen_conf(rd_listener_t *l)
{
    return l->ctx[rd_tls_module.index];
}

/* --- the SSL_CTX, built in the master ---------------------------------- */

static int
rd_tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
    /* Accepting the name makes OpenSSL keep it for SSL_get_servername();
     * which database it names is decided in the identify phase. */
    return SSL_TLSEXT_ERR_OK;
}

static void
rd_tls_ctx_free(void *data)
{
    SSL_CTX_free(data);
}

static int
rd_tls_init_master(rd_cycle_t *cycle)
{
    rd_tls_conf_t *c = rd_main_conf(cycle, rd_tls_module);
    void **top = cycle->main_conf;
    rd_listener_t *first = NULL;
    char err[768], why[256];

    for (size_t i = 0; i < cycle->nlisteners; i++) {
        if (rd_tls_listen_conf(&cycle->listeners[i])->enabled) {
            first = first ? first : &cycle->listeners[i];
        } else {
            rd_log_warn("listener %s is plaintext (tls = false): clients are "
                        "not authenticated; use this only for tests",
                        cycle->listeners[i].addr.text);
        }
    }
    if (first == NULL) {
        return RD_OK;
    }
    if (c->certificate == NULL || c->client_ca == NULL) {
        return rd_cycle_error(cycle, first->ctx, NULL, "a TLS listener "
                              "needs tls.certificate, tls.certificate_key "
                              "and tls.client_ca (or tls = false on the "
                              "listener, for tests only)");
    }

    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        rd_ssl_reasons(why, sizeof(why));
        return rd_cycle_error(cycle, top, "tls", "SSL_CTX_new: %s", why);
    }
    rd_pool_cleanup_add(cycle->pool, rd_tls_ctx_free, ctx);

    SSL_CTX_set_min_proto_version(ctx, (int)c->min_protocol);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION
                             | SSL_OP_CIPHER_SERVER_PREFERENCE
                             | SSL_OP_NO_COMPRESSION
                             | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS
                          | SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* No resumption (see the top of this file): a full handshake, with
     * the client certificate verified, every time. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    static const unsigned char sid_ctx[] = "redoubt";
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1)
        != 1)
    {
        rd_ssl_reasons(why, sizeof(why));
        return rd_cycle_error(cycle, top, "tls",
                              "SSL_CTX_set_session_id_context: %s", why);
    }

    /* Each error names the directive, its file and line, and what is
     * wrong with the file it names (rd_cycle_error). */
    if (SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1) {
        rd_ssl_reasons(why, sizeof(why));
        return rd_cycle_error(cycle, top, "tls.ciphers", "OpenSSL "
                              "accepts none of \"%s\": %s", c->ciphers,
                              why);
    }
    if (c->ciphersuites && SSL_CTX_set_ciphersuites(ctx, c->ciphersuites)
                           != 1)
    {
        rd_ssl_reasons(why, sizeof(why));
        return rd_cycle_error(cycle, top, "tls.ciphersuites", "OpenSSL "
                              "accepts none of \"%s\": %s",
                              c->ciphersuites, why);
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->certificate) != 1) {
        rd_ssl_file_error(err, sizeof(err), c->certificate,
                          "cannot load the certificate chain from");
        return rd_cycle_error(cycle, top, "tls.certificate", "%s", err);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->certificate_key,
                                    SSL_FILETYPE_PEM) != 1
        && !rd_ssl_key_mismatch())
    {
        rd_ssl_file_error(err, sizeof(err), c->certificate_key,
                          "cannot load the private key from");
        return rd_cycle_error(cycle, top, "tls.certificate_key", "%s", err);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return rd_cycle_error(cycle, top, "tls.certificate_key", "\"%s\" "
                              "is not the key of tls.certificate \"%s\"",
                              c->certificate_key, c->certificate);
    }
    if (SSL_CTX_load_verify_locations(ctx, c->client_ca, NULL) != 1) {
        rd_ssl_file_error(err, sizeof(err), c->client_ca,
                          "cannot load CA certificates from");
        return rd_cycle_error(cycle, top, "tls.client_ca", "%s", err);
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->client_ca);
    if (names == NULL) {
        rd_ssl_file_error(err, sizeof(err), c->client_ca,
                          "cannot read CA names from");
        return rd_cycle_error(cycle, top, "tls.client_ca", "%s", err);
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    SSL_CTX_set_verify_depth(ctx, 4);
    SSL_CTX_set_tlsext_servername_callback(ctx, rd_tls_servername_cb);

    c->ctx = ctx;
    return RD_OK;
}

/* The listeners' certificate expiry, for /metrics: the status process
 * reads it from the context its cycle was built with (0: none). */
static int64_t
rd_tls_cert_expiry(rd_cycle_t *cycle)
{
    rd_tls_conf_t *c = rd_main_conf(cycle, rd_tls_module);
    X509 *cert = c->ctx ? SSL_CTX_get0_certificate(c->ctx) : NULL;
    const ASN1_TIME *na = cert ? X509_get0_notAfter(cert) : NULL;
    struct tm tm;

    if (na && ASN1_TIME_to_tm(na, &tm)) {
        return (int64_t)timegm(&tm);
    }
    return 0;
}

static const rd_stats_def_t rd_tls_stats[] = {
    { .name = "redoubt_listener_certificate_expiry_timestamp_seconds",
      .help = "When the listeners' certificate (tls.certificate) expires, "
              "in Unix time.",
      .type = RD_STATS_GAUGE, .scope = RD_STATS_CYCLE,
      .flags = RD_STATS_NONZERO, .value = rd_tls_cert_expiry },
    rd_null_stat
};

/* --- TLS I/O for a session ------------------------------------------------ */

static SSL *
rd_tls_ssl(rd_session_t *s)
{
    rd_tls_session_t *ts = rd_session_ctx(s, rd_tls_module);
    return ts->ssl;
}

static ssize_t
rd_tls_recv(rd_session_t *s, char *buf, size_t n)
{
    return rd_ssl_read(rd_tls_ssl(s), buf, n, NULL, 0);
}

static ssize_t
rd_tls_send(rd_session_t *s, const char *buf, size_t n)
{
    return rd_ssl_write(rd_tls_ssl(s), buf, n, NULL, 0);
}

static size_t
rd_tls_pending(rd_session_t *s)
{
    return (size_t)SSL_pending(rd_tls_ssl(s));
}

static void
rd_tls_shutdown(rd_session_t *s)
{
    SSL *ssl = rd_tls_ssl(s);
    if (SSL_is_init_finished(ssl)) {
        SSL_shutdown(ssl);      /* sends close_notify; does not wait */
    }
    ERR_clear_error();
}

/*
 * SSL_MODE_RELEASE_BUFFERS gives the record buffers back only on some
 * paths (a read that consumed a whole application record, a complete
 * application write); the write buffer set up for the handshake, and a
 * read buffer left by a read that found nothing, stay with the connection
 * for as long as it is idle (issue 11: 23 kB of a 77 kB idle session).
 * SSL_free_buffers() frees both when no record is partly read or written,
 * and leaves them otherwise.
 */
static void
rd_tls_release(rd_session_t *s)
{
    SSL *ssl = rd_tls_ssl(s);
    if (SSL_is_init_finished(ssl)) {
        SSL_free_buffers(ssl);
    }
}

static const rd_session_io_t rd_tls_io = {
    rd_tls_recv, rd_tls_send, rd_tls_pending, rd_tls_shutdown, rd_tls_release
};

/* --- handshake phase ----------------------------------------------------- */

/* What the session's state holds (the core frees the state itself). */
static void
rd_tls_session_cleanup(rd_session_t *s, void *data)
{
    rd_tls_session_t *ts = data;
    rd_timer_del(&s->worker->loop.timers, &ts->timer);
    SSL_free(ts->ssl);
    if (s->identity) {
        rd_identity_free(s->identity);
        free(s->identity);
        s->identity = NULL;
        s->user = NULL;
    }
}

static void
rd_tls_handshake_timeout(rd_timer_t *t)
{
    rd_session_t *s = t->data;
    rd_session_log(s, RD_LOG_INFO, "TLS handshake timed out");
    rd_stats_refusal(RD_REFUSAL_TLS_HANDSHAKE);
    rd_session_close(s, "TLS handshake timed out");
}

static void
rd_tls_handshake_handler(rd_conn_t *c)
{
    rd_session_t *s = c->data;
    rd_tls_session_t *ts = rd_session_ctx(s, rd_tls_module);

    ERR_clear_error();
    int rc = SSL_do_handshake(ts->ssl);
    if (rc == 1) {
        rd_timer_del(&s->worker->loop.timers, &ts->timer);
        if (SSL_session_reused(ts->ssl)) {
            /* Cannot happen with no cache and no tickets; should it ever,
             * the certificate was not verified in this handshake. */
            rd_session_log(s, RD_LOG_ERROR, "a TLS session was "
                         "resumed, which redoubt never allows; closing");
            rd_stats_refusal(RD_REFUSAL_TLS_HANDSHAKE);
            rd_session_close(s, "TLS session resumed");
            return;
        }
        rd_session_log(s, RD_LOG_DEBUG, "%s %s",
                     SSL_get_version(ts->ssl),
                     SSL_get_cipher_name(ts->ssl));
        rd_session_phase_done(s);
        return;
    }

    int e = SSL_get_error(ts->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        rd_conn_watch(c, EPOLLIN);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        rd_conn_watch(c, EPOLLOUT);
        return;
    }

    /* Why the handshake failed, for the log: a certificate problem is in
     * the verify result, anything else in OpenSSL's error queue. */
    char why[300];
    long vr = SSL_get_verify_result(ts->ssl);
    if (vr != X509_V_OK) {
        snprintf(why, sizeof(why), "client certificate refused: %s",
                 X509_verify_cert_error_string(vr));
    } else if (ERR_peek_error() != 0) {
        rd_ssl_error(why, sizeof(why), "TLS handshake failed");
    } else {
        snprintf(why, sizeof(why), "TLS handshake failed: %s",
                 e == SSL_ERROR_SYSCALL ? "connection closed by client"
                                        : "protocol error");
    }
    ERR_clear_error();
    rd_session_log(s, RD_LOG_NOTICE, "%s", why);
    rd_stats_refusal(RD_REFUSAL_TLS_HANDSHAKE);
    rd_session_close(s, "TLS handshake failed");
}

static int
rd_tls_handshake(rd_session_t *s, rd_request_t *r)
{
    if (!rd_tls_listen_conf(s->listener)->enabled) {
        return RD_DECLINED;
    }
    rd_tls_conf_t *c = rd_main_conf(s->cycle, rd_tls_module);
    SSL *ssl = SSL_new(c->ctx);

    if (ssl == NULL || SSL_set_fd(ssl, s->conn->fd) != 1) {
        char why[300];
        rd_ssl_error(why, sizeof(why), "SSL_new");
        rd_session_log(s, RD_LOG_ERROR, "%s", why);
        SSL_free(ssl);
        rd_session_close(s, "TLS setup failed");
        return RD_AGAIN;
    }
    SSL_set_accept_state(ssl);
    rd_tls_session_t *ts = rd_session_ctx_get(s, &rd_tls_module, sizeof(*ts),
                                              NULL, rd_tls_session_cleanup);
    ts->ssl = ssl;
    s->io = &rd_tls_io;

    rd_core_conf_t *ccf = rd_core_conf(s->cycle);
    if (ccf->handshake_timeout > 0) {
        ts->timer.handler = rd_tls_handshake_timeout;
        ts->timer.data = s;
        rd_timer_add(&s->worker->loop.timers, &ts->timer,
                     s->worker->loop.now, ccf->handshake_timeout);
    }

    s->conn->read = rd_tls_handshake_handler;
    s->conn->write = rd_tls_handshake_handler;
    rd_conn_watch(s->conn, EPOLLIN);
    /* The ClientHello is usually there already. */
    rd_conn_post(s->conn);
    return RD_AGAIN;
}

/* --- identify phase ------------------------------------------------------- */

/* SNI "db" or "db.<anything>" names database "db". */
static rd_database_t *
rd_tls_database_from_sni(rd_session_t *s, const char *sni)
{
    rd_database_t *db = rd_cycle_find_database(s->cycle, sni, strlen(sni));
    if (db) {
        return db;
    }
    const char *dot = strchr(sni, '.');
    if (dot && dot > sni) {
        return rd_cycle_find_database(s->cycle, sni, (size_t)(dot - sni));
    }
    return NULL;
}

/*
 * A server name that names no database, on a listener without a default
 * database. The client gets the very words the roles (rbac's authorize,
 * rd_rbac_check_db) give for a database that exists but that they do not
 * reach, for the database the name would select ("db" of "db.<anything>"):
 * whether a database exists is not for a client to find out by trying
 * names. Only the error log says that the name matched nothing.
 */
static void
rd_tls_refuse_sni(rd_session_t *s, const char *sni)
{
    const char *dot = strchr(sni, '.');
    int len = (int)(dot && dot > sni ? (size_t)(dot - sni) : strlen(sni));
    const char *db_user = s->identity->route_db_user;

    rd_session_log(s, RD_LOG_INFO, "the TLS server name \"%s\" names "
                "no database served here, and the listener has no default",
                sni);
    rd_stats_refusal(RD_REFUSAL_NO_DATABASE);
    if (db_user) {
        rd_session_refuse(s, "ERR redoubt: access to database \"%.*s\" as "
                          "user \"%s\" denied", len, sni, db_user);
    } else {
        rd_session_refuse(s, "ERR redoubt: access to database \"%.*s\" "
                          "denied", len, sni);
    }
}

static int
rd_tls_identify(rd_session_t *s, rd_request_t *r)
{
    rd_tls_session_t *ts = rd_session_ctx(s, rd_tls_module);
    if (ts == NULL) {
        return RD_DECLINED;         /* plaintext listener */
    }

    X509 *cert = SSL_get0_peer_certificate(ts->ssl);
    if (cert == NULL) {
        rd_stats_refusal(RD_REFUSAL_NO_IDENTITY);
        rd_session_refuse(s, "ERR redoubt: a client certificate is required");
        return RD_ERROR;
    }

    char err[256];
    rd_identity_t *id = rd_calloc(1, sizeof(*id));
    if (rd_identity_from_cert(cert, id, err, sizeof(err)) != 0) {
        free(id);
        rd_stats_refusal(RD_REFUSAL_NO_IDENTITY);
        rd_session_refuse(s, "ERR redoubt: the client certificate carries "
                          "no usable identity: %s", err);
        return RD_ERROR;
    }
    s->identity = id;
    s->user = id->user;
    if (id->route_db_user) {
        s->db_user = id->route_db_user;
    }

    char desc[512];
    rd_identity_format(id, desc, sizeof(desc));
    rd_session_log(s, RD_LOG_INFO, "%s", desc);

    /* The session ends with the certificate. The chain was verified at
     * the handshake, so not_after is in the future here. */
    time_t now = time(NULL);
    int64_t left = ((int64_t)id->not_after - (int64_t)now) * 1000;
    if (left < 0) {
        left = 0;
    }
    rd_session_end_at(s, s->worker->loop.now + left, "certificate expired");

    /* Target database: the certificate's route, else the server name. */
    if (id->route_db) {
        s->database = rd_cycle_find_database(s->cycle, id->route_db,
                                             strlen(id->route_db));
        if (s->database == NULL) {
            rd_stats_refusal(RD_REFUSAL_NO_DATABASE);
            rd_session_refuse(s, "ERR redoubt: the database \"%s\" named by "
                              "the certificate is not served here",
                              id->route_db);
            return RD_ERROR;
        }
        return RD_OK;
    }
    const char *sni = SSL_get_servername(ts->ssl, TLSEXT_NAMETYPE_host_name);
    if (sni && *sni) {
        s->database = rd_tls_database_from_sni(s, sni);
        if (s->database == NULL && s->listener->database == NULL) {
            rd_tls_refuse_sni(s, sni);
            return RD_ERROR;
        }
    }
    return RD_OK;
}

static int
rd_tls_postconfiguration(rd_cycle_t *cycle)
{
    rd_phase_add(cycle, RD_PHASE_HANDSHAKE, rd_tls_handshake);
    return rd_phase_add(cycle, RD_PHASE_IDENTIFY, rd_tls_identify);
}

rd_module_t rd_tls_module = {
    .name = "tls",
    .directives = rd_tls_directives,
    .create_conf = { rd_tls_create_main, rd_tls_create_listen, NULL },
    .init_conf = { rd_tls_init_main, rd_tls_init_listen, NULL },
    .postconfiguration = rd_tls_postconfiguration,
    .init_master = rd_tls_init_master,
    .stats = rd_tls_stats,
};

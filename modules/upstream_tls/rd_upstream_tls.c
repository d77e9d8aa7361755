/*
 * rd_upstream_tls.c - the upstream_tls module: mutual TLS to Redis.
 *
 * Configuration:
 *   upstream_tls = { ca_cert; ca_key; cert_ttl; server_ca; }
 *     the db-client CA that signs the certificates redoubt presents to
 *     Redis, how long a minted certificate lives, and the CA that Redis
 *     servers' certificates are checked against by default (the db CA);
 *   databases element: tls = { ca_cert_file; mode; certificate;
 *     certificate_key; server_name; }
 *     per-database trust ("verify-full" checks chain and host name or IP,
 *     "verify-ca" only the chain, "insecure" nothing: tests only), and an
 *     optional static client certificate instead of minted ones.
 *
 * Minted certificates: ECDSA P-256, CN = the database user, signed by the
 * db-client CA, valid for cert_ttl, kept in memory only (never on disk),
 * one per database user per worker, replaced once two thirds of their
 * life has passed, so a new connection never presents one about to
 * expire.
 *
 * The CA key and every SSL_CTX are loaded in the master for each new
 * cycle (errors fail "redoubt -t" and a reload) and inherited by workers.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_stats.h"
#include "rd_ssl.h"
#include "rd_upstream.h"
#include "rd_worker.h"

rd_module_t rd_upstream_tls_module;

/* The module's row of the shared counters (rd_stats.h): the latest
 * minted certificate's expiry, of all workers. */
enum { RD_UTLS_STAT_MINTED = 0 };

static const rd_stats_def_t rd_utls_stats[] = {
    [RD_UTLS_STAT_MINTED] = {
        .name = "redoubt_upstream_certificate_expiry_timestamp_seconds",
        .help = "When the most recently minted upstream client certificate "
                "expires, in Unix time.",
        .type = RD_STATS_GAUGE, .flags = RD_STATS_MAX | RD_STATS_NONZERO },
    rd_null_stat
};

enum {
    RD_UTLS_VERIFY_FULL = 0,
    RD_UTLS_VERIFY_CA,
    RD_UTLS_INSECURE
};

typedef struct {
    char      *ca_cert;
    char      *ca_key;
    char      *server_ca;
    int64_t    cert_ttl;
    X509      *ca_x509;          /* loaded in the master */
    EVP_PKEY  *ca_pkey;
} rd_utls_conf_t;

typedef struct {
    char      *ca_cert_file;
    int64_t    mode;
    char      *certificate;
    char      *certificate_key;
    char      *server_name;
    int        server_name_set;   /* configured, not the uri's host */
    SSL_CTX   *ctx;              /* per database, built in the master */
    int        is_ip;
} rd_utls_db_conf_t;

/* A minted certificate of one database user, in one worker. */
typedef struct rd_utls_minted_s {
    struct rd_utls_minted_s *next;
    char                    *user;
    X509                    *cert;
    EVP_PKEY                *key;
    time_t                   renew_at;
} rd_utls_minted_t;

typedef struct rd_upstream_tls_s rd_upstream_tls_t;

struct rd_upstream_tls_s {
    SSL  *ssl;
    char  error[200];       /* why the last read or write failed */
};

static const rd_conf_enum_t rd_utls_modes[] = {
    { "verify-full", RD_UTLS_VERIFY_FULL },
    { "verify-ca", RD_UTLS_VERIFY_CA },
    { "insecure", RD_UTLS_INSECURE },
    { NULL, 0 }
};

static const rd_conf_range_t rd_utls_ttl_range = { 1000, 31LL * 86400000 };

#define M(field) offsetof(rd_utls_conf_t, field)
#define D(field) offsetof(rd_utls_db_conf_t, field)

static const rd_directive_t rd_utls_directives[] = {
    { "upstream_tls.ca_cert", RD_CONF_MAIN, rd_conf_set_path, M(ca_cert),
      NULL },
    { "upstream_tls.ca_key", RD_CONF_MAIN, rd_conf_set_path, M(ca_key),
      NULL },
    { "upstream_tls.server_ca", RD_CONF_MAIN, rd_conf_set_path,
      M(server_ca), NULL },
    { "upstream_tls.cert_ttl", RD_CONF_MAIN, rd_conf_set_msec, M(cert_ttl),
      &rd_utls_ttl_range },
    { "tls.ca_cert_file", RD_CONF_DB, rd_conf_set_path, D(ca_cert_file),
      NULL },
    { "tls.mode", RD_CONF_DB, rd_conf_set_enum, D(mode), rd_utls_modes },
    { "tls.certificate", RD_CONF_DB, rd_conf_set_path, D(certificate),
      NULL },
    { "tls.certificate_key", RD_CONF_DB, rd_conf_set_path,
      D(certificate_key), NULL },
    { "tls.server_name", RD_CONF_DB, rd_conf_set_str, D(server_name), NULL },
    rd_null_directive
};

/* --- configuration ------------------------------------------------------ */

static void *
rd_utls_create_main(rd_conf_t *cf)
{
    rd_utls_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->cert_ttl = RD_CONF_UNSET;
    return c;
}

static const char *
rd_utls_init_main(rd_conf_t *cf, void *conf)
{
    rd_utls_conf_t *c = conf;
    if (c->cert_ttl == RD_CONF_UNSET) {
        c->cert_ttl = 3600000;
    }
    if ((c->ca_cert == NULL) != (c->ca_key == NULL)) {
        rd_conf_error_at(cf, cf->ctx, c->ca_cert ? "upstream_tls.ca_cert"
                                                 : "upstream_tls.ca_key",
                         "upstream_tls.ca_cert and upstream_tls.ca_key go "
                         "together");
    }
    return NULL;
}

static void *
rd_utls_create_db(rd_conf_t *cf)
{
    rd_utls_db_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->mode = RD_CONF_UNSET;
    return c;
}

static const char *
rd_utls_init_db(rd_conf_t *cf, void *conf)
{
    rd_utls_db_conf_t *c = conf;
    if (c->mode == RD_CONF_UNSET) {
        c->mode = RD_UTLS_VERIFY_FULL;
    }
    if ((c->certificate == NULL) != (c->certificate_key == NULL)) {
        rd_conf_error_at(cf, cf->ctx, c->certificate ? "tls.certificate"
                                                      : "tls.certificate_key",
                         "tls.certificate and tls.certificate_key go "
                         "together");
    }
    return NULL;
}

static rd_utls_db_conf_t *
rd_utls_db_conf(rd_database_t *db)
{
    return db->ctx[rd_upstream_tls_module.index];
}

/* --- master: load the CA and build each database's SSL_CTX ------------- */

static void rd_utls_ctx_free(void *p) { SSL_CTX_free(p); }
static void rd_utls_x509_free(void *p) { X509_free(p); }
static void rd_utls_pkey_free(void *p) { EVP_PKEY_free(p); }

/* Errors name the directive, its file and line (rd_cycle_error). */
static int
rd_utls_load_ca(rd_cycle_t *cycle, rd_utls_conf_t *c)
{
    void **top = cycle->main_conf;
    char err[768];

    FILE *f = fopen(c->ca_cert, "r");
    if (f == NULL) {
        return rd_cycle_error(cycle, top, "upstream_tls.ca_cert", "cannot "
                              "open \"%s\": %s", c->ca_cert,
                              strerror(errno));
    }
    c->ca_x509 = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (c->ca_x509 == NULL) {
        rd_ssl_file_error(err, sizeof(err), c->ca_cert,
                          "cannot read a PEM certificate from");
        return rd_cycle_error(cycle, top, "upstream_tls.ca_cert", "%s", err);
    }
    rd_pool_cleanup_add(cycle->pool, rd_utls_x509_free, c->ca_x509);

    f = fopen(c->ca_key, "r");
    if (f == NULL) {
        return rd_cycle_error(cycle, top, "upstream_tls.ca_key", "cannot "
                              "open \"%s\": %s", c->ca_key,
                              strerror(errno));
    }
    c->ca_pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (c->ca_pkey == NULL) {
        rd_ssl_file_error(err, sizeof(err), c->ca_key,
                          "cannot read a PEM private key from");
        return rd_cycle_error(cycle, top, "upstream_tls.ca_key", "%s", err);
    }
    rd_pool_cleanup_add(cycle->pool, rd_utls_pkey_free, c->ca_pkey);
    if (X509_check_private_key(c->ca_x509, c->ca_pkey) != 1) {
        ERR_clear_error();
        return rd_cycle_error(cycle, top, "upstream_tls.ca_key", "\"%s\" "
                              "is not the key of upstream_tls.ca_cert \"%s\"",
                              c->ca_key, c->ca_cert);
    }
    return 0;
}

static int
rd_utls_db_ctx(rd_cycle_t *cycle, rd_utls_conf_t *c, rd_database_t *db)
{
    rd_utls_db_conf_t *dc = rd_utls_db_conf(db);
    const char *trust = dc->ca_cert_file ? dc->ca_cert_file : c->server_ca;
    char err[768], why[256];

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        rd_ssl_reasons(why, sizeof(why));
        return rd_cycle_error(cycle, db->ctx, "uri", "SSL_CTX_new: %s", why);
    }
    rd_pool_cleanup_add(cycle->pool, rd_utls_ctx_free, ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS
                          | SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (dc->mode != RD_UTLS_INSECURE) {
        if (trust == NULL) {
            return rd_cycle_error(cycle, db->ctx, "uri", "rediss:// needs "
                                  "tls.ca_cert_file or upstream_tls.server_ca"
                                  " to check the server's certificate");
        }
        if (SSL_CTX_load_verify_locations(ctx, trust, NULL) != 1) {
            rd_ssl_file_error(err, sizeof(err), trust,
                              "cannot load CA certificates from");
            if (dc->ca_cert_file) {
                return rd_cycle_error(cycle, db->ctx, "tls.ca_cert_file",
                                      "%s", err);
            }
            return rd_cycle_error(cycle, cycle->main_conf,
                                  "upstream_tls.server_ca", "%s", err);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        rd_log_warn("database \"%s\": tls.mode = \"insecure\": the server's "
                    "certificate is not checked; use this only for tests",
                    db->name);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }

    if (dc->certificate) {
        if (SSL_CTX_use_certificate_chain_file(ctx, dc->certificate) != 1) {
            rd_ssl_file_error(err, sizeof(err), dc->certificate,
                              "cannot load the certificate chain from");
            return rd_cycle_error(cycle, db->ctx, "tls.certificate", "%s",
                                  err);
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, dc->certificate_key,
                                        SSL_FILETYPE_PEM) != 1
            && !rd_ssl_key_mismatch())
        {
            rd_ssl_file_error(err, sizeof(err), dc->certificate_key,
                              "cannot load the private key from");
            return rd_cycle_error(cycle, db->ctx, "tls.certificate_key",
                                  "%s", err);
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            return rd_cycle_error(cycle, db->ctx, "tls.certificate_key",
                                  "\"%s\" is not the key of tls.certificate "
                                  "\"%s\"", dc->certificate_key,
                                  dc->certificate);
        }
    } else if (c->ca_x509 == NULL) {
        return rd_cycle_error(cycle, db->ctx, "uri", "rediss:// needs a "
                              "client certificate: upstream_tls.ca_cert and "
                              "ca_key (to mint them) or tls.certificate and "
                              "tls.certificate_key");
    }

    dc->server_name_set = dc->server_name != NULL;
    if (dc->server_name == NULL) {
        dc->server_name = db->host;
    }
    unsigned char ip[16];
    dc->is_ip = inet_pton(AF_INET, dc->server_name, ip) == 1
                || inet_pton(AF_INET6, dc->server_name, ip) == 1;
    dc->ctx = ctx;
    return 0;
}

static int
rd_utls_init_master(rd_cycle_t *cycle)
{
    rd_utls_conf_t *c = rd_main_conf(cycle, rd_upstream_tls_module);

    if (c->ca_cert && rd_utls_load_ca(cycle, c) != 0) {
        return RD_ERROR;
    }
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        rd_database_t *db = &cycle->databases[i];
        if (db->tls && rd_utls_db_ctx(cycle, c, db) != 0) {
            return RD_ERROR;
        }
    }
    return RD_OK;
}

/* --- minting, in the worker ---------------------------------------------- */

static int
rd_utls_mint(rd_utls_conf_t *c, const char *user, rd_utls_minted_t *m)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int ok = 0;

    if (key == NULL || x == NULL) {
        goto done;
    }
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) != 1) {
        goto done;
    }
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    ASN1_INTEGER *sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    BN_free(bn);
    if (sn == NULL) {
        goto done;
    }
    X509_set_serialNumber(x, sn);
    ASN1_INTEGER_free(sn);

    time_t now = time(NULL);
    long ttl = (long)(c->cert_ttl / 1000);
    X509_set_version(x, 2);
    X509_time_adj_ex(X509_getm_notBefore(x), 0, -60, &now);
    X509_time_adj_ex(X509_getm_notAfter(x), 0, ttl, &now);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               (const unsigned char *)user, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(c->ca_x509));

    X509V3_CTX v3;
    X509V3_set_ctx(&v3, c->ca_x509, x, NULL, NULL, 0);
    static const struct { int nid; const char *value; } exts[] = {
        { NID_basic_constraints, "critical,CA:FALSE" },
        { NID_key_usage, "critical,digitalSignature" },
        { NID_ext_key_usage, "clientAuth" },
        { NID_authority_key_identifier, "keyid:always" },
    };
    for (size_t i = 0; i < rd_countof(exts); i++) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid,
                                                exts[i].value);
        if (e == NULL) {
            goto done;
        }
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (X509_sign(x, c->ca_pkey, EVP_sha256()) == 0) {
        goto done;
    }

    m->cert = x;
    m->key = key;
    /* Replaced after two thirds of its life. */
    m->renew_at = now + ttl * 2 / 3;
    rd_stats_mod_set(&rd_upstream_tls_module, RD_UTLS_STAT_MINTED,
                     (int64_t)now + ttl);
    ok = 1;

done:
    if (!ok) {
        X509_free(x);
        EVP_PKEY_free(key);
        ERR_clear_error();
    }
    return ok ? 0 : -1;
}

static rd_utls_minted_t *
rd_utls_minted(rd_worker_t *w, rd_utls_conf_t *c, const char *user)
{
    rd_utls_minted_t **head =
        (rd_utls_minted_t **)&w->ctx[rd_upstream_tls_module.index];
    time_t now = time(NULL);

    for (rd_utls_minted_t *m = *head; m; m = m->next) {
        if (strcmp(m->user, user) != 0) {
            continue;
        }
        if (now < m->renew_at) {
            return m;
        }
        rd_utls_minted_t fresh = { 0 };
        if (rd_utls_mint(c, user, &fresh) != 0) {
            rd_log_error("cannot renew the client certificate for \"%s\"",
                         user);
            return now < m->renew_at + (time_t)(c->cert_ttl / 3000)
                   ? m : NULL;
        }
        X509_free(m->cert);
        EVP_PKEY_free(m->key);
        m->cert = fresh.cert;
        m->key = fresh.key;
        m->renew_at = fresh.renew_at;
        rd_log_info("renewed the client certificate for database user "
                    "\"%s\"", user);
        return m;
    }

    rd_utls_minted_t *m = rd_calloc(1, sizeof(*m));
    if (rd_utls_mint(c, user, m) != 0) {
        free(m);
        rd_log_error("cannot mint a client certificate for \"%s\"", user);
        return NULL;
    }
    m->user = rd_strdup(user);
    m->next = *head;
    *head = m;
    rd_log_info("minted a client certificate for database user \"%s\"",
                user);
    return m;
}

static void
rd_utls_exit_worker(rd_worker_t *w)
{
    rd_utls_minted_t *m = w->ctx[rd_upstream_tls_module.index];
    while (m) {
        rd_utls_minted_t *next = m->next;
        X509_free(m->cert);
        EVP_PKEY_free(m->key);
        free(m->user);
        free(m);
        m = next;
    }
    w->ctx[rd_upstream_tls_module.index] = NULL;
}

/* --- connections ------------------------------------------------------------ */

static void *
rd_utls_open(rd_worker_t *w, rd_database_t *db, const char *db_user,
             const char *host, int fd, char *err, size_t errlen)
{
    rd_utls_conf_t *c = rd_main_conf(w->cycle, rd_upstream_tls_module);
    rd_utls_db_conf_t *dc = rd_utls_db_conf(db);
    SSL *ssl = SSL_new(dc->ctx);

    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        rd_ssl_error(err, errlen, "SSL_new");
        SSL_free(ssl);
        return NULL;
    }
    if (dc->certificate == NULL) {
        rd_utls_minted_t *m = rd_utls_minted(w, c, db_user);
        if (m == NULL || SSL_use_certificate(ssl, m->cert) != 1
            || SSL_use_PrivateKey(ssl, m->key) != 1)
        {
            snprintf(err, errlen, "no client certificate for \"%s\"",
                     db_user);
            ERR_clear_error();
            SSL_free(ssl);
            return NULL;
        }
    }
    /* A configured server_name holds for every node; otherwise a cluster
     * node is checked under the address the cluster gave for it. */
    const char *name = dc->server_name;
    int is_ip = dc->is_ip;
    if (!dc->server_name_set && host != NULL) {
        unsigned char ip[16];
        name = host;
        is_ip = inet_pton(AF_INET, host, ip) == 1
                || inet_pton(AF_INET6, host, ip) == 1;
    }
    if (dc->mode == RD_UTLS_VERIFY_FULL) {
        int ok = is_ip
            ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
            : SSL_set1_host(ssl, name);
        if (ok != 1) {
            rd_ssl_error(err, errlen, "cannot set the host name to check");
            SSL_free(ssl);
            return NULL;
        }
    }
    if (!is_ip) {
        SSL_set_tlsext_host_name(ssl, name);
    }
    SSL_set_connect_state(ssl);

    rd_upstream_tls_t *t = rd_calloc(1, sizeof(*t));
    t->ssl = ssl;
    return t;
}

static int
rd_utls_handshake(void *data, uint32_t *events, char *err, size_t errlen)
{
    rd_upstream_tls_t *t = data;
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        return RD_OK;
    }
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        *events = EPOLLIN;
        return RD_AGAIN;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        *events = EPOLLOUT;
        return RD_AGAIN;
    }
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK) {
        snprintf(err, errlen, "server certificate refused: %s",
                 X509_verify_cert_error_string(vr));
        ERR_clear_error();
    } else if (ERR_peek_error() != 0) {
        rd_ssl_error(err, errlen, "TLS handshake failed");
    } else {
        snprintf(err, errlen, "TLS handshake failed: connection closed");
    }
    return RD_ERROR;
}

static const char *
rd_utls_error(void *data)
{
    rd_upstream_tls_t *t = data;
    return t->error[0] ? t->error : "TLS error";
}

static ssize_t
rd_utls_read(void *data, char *buf, size_t n)
{
    rd_upstream_tls_t *t = data;
    return rd_ssl_read(t->ssl, buf, n, t->error, sizeof(t->error));
}

static ssize_t
rd_utls_write(void *data, const char *buf, size_t n)
{
    rd_upstream_tls_t *t = data;
    return rd_ssl_write(t->ssl, buf, n, t->error, sizeof(t->error));
}

static size_t
rd_utls_pending(void *data)
{
    rd_upstream_tls_t *t = data;
    return (size_t)SSL_pending(t->ssl);
}

/* As rd_tls_release() on the client side (modules/tls/rd_tls.c). */
static void
rd_utls_release(void *data)
{
    rd_upstream_tls_t *t = data;
    if (t && SSL_is_init_finished(t->ssl)) {
        SSL_free_buffers(t->ssl);
    }
}

static void
rd_utls_close(void *data)
{
    rd_upstream_tls_t *t = data;
    if (t == NULL) {
        return;
    }
    SSL_free(t->ssl);
    free(t);
}

static const rd_upstream_io_t rd_utls_io = {
    .open = rd_utls_open,
    .handshake = rd_utls_handshake,
    .read = rd_utls_read,
    .write = rd_utls_write,
    .pending = rd_utls_pending,
    .release = rd_utls_release,
    .error = rd_utls_error,
    .close = rd_utls_close,
};

/* rediss:// connections of this cycle go through this module. */
static int
rd_utls_postconfiguration(rd_cycle_t *cycle)
{
    cycle->upstream_tls = &rd_utls_io;
    return RD_OK;
}

rd_module_t rd_upstream_tls_module = {
    .name = "upstream_tls",
    .directives = rd_utls_directives,
    .create_conf = { rd_utls_create_main, NULL, rd_utls_create_db },
    .init_conf = { rd_utls_init_main, NULL, rd_utls_init_db },
    .postconfiguration = rd_utls_postconfiguration,
    .init_master = rd_utls_init_master,
    .exit_worker = rd_utls_exit_worker,
    .stats = rd_utls_stats,
};

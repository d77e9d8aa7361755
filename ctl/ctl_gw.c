/*
 * ctl_gw.c - redoubtctl's gateway client: the gateway options and the
 * user's files (certificate, key, CA), and a TLS connection to the
 * gateway that sends one command and reads its reply.
 *
 * Used by "db ls", "db connect" and "db config" (ctl_db.c). See
 * redoubtctl.c for the whole tool.
 */

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "rd_core.h"
#include "rd_buf.h"
#include "rd_cert_identity.h"
#include "rd_resp.h"

#include "ctl.h"

/* --- the gateway: where it is, and the user's files ----------------------- */

#define CTL_DEFAULT_PORT    "6380"
#define CTL_IO_TIMEOUT_MS   10000
#define CTL_REPLY_MAX       (64u << 20)

void
ctl_gw_free(ctl_gw_t *g)
{
    if (g->have_id) {
        rd_identity_free(&g->id);
        g->have_id = false;
    }
}

/* An option's value, else the environment's; "" counts as not given. */
const char *
ctl_env(const char *opt, const char *name)
{
    if (opt != NULL) {
        return *opt ? opt : NULL;
    }
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool
ctl_is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* "HOST:PORT", "[IPv6]:PORT", or "HOST" (port 6380). */
static int
ctl_parse_proxy(const char *cmd, ctl_gw_t *g)
{
    const char *p = g->proxy, *colon, *host = p;
    size_t hlen;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            return ctl_fail("%s: bad --proxy '%s': expected HOST:PORT or "
                            "[IPv6]:PORT", cmd, g->proxy);
        }
        host = p + 1;
        hlen = (size_t)(close - host);
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strrchr(p, ':');
        if (colon != NULL && strchr(p, ':') != colon) {
            return ctl_fail("%s: bad --proxy '%s': write an IPv6 address in "
                            "brackets, as [::1]:6380", cmd, g->proxy);
        }
        hlen = colon ? (size_t)(colon - p) : strlen(p);
    }
    if (hlen == 0 || hlen >= sizeof(g->host)) {
        return ctl_fail("%s: bad --proxy '%s': expected HOST:PORT", cmd,
                        g->proxy);
    }
    memcpy(g->host, host, hlen);
    g->host[hlen] = '\0';
    const char *port = colon ? colon + 1 : CTL_DEFAULT_PORT;
    char *end;
    errno = 0;
    long n = strtol(port, &end, 10);
    if (*port < '0' || *port > '9' || *end != '\0' || errno != 0 || n < 1
        || n > 65535) {
        return ctl_fail("%s: bad --proxy '%s': the port must be a number "
                        "from 1 to 65535", cmd, g->proxy);
    }
    snprintf(g->port, sizeof(g->port), "%ld", n);
    return 0;
}

static int
ctl_readable(const char *cmd, const char *what, const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return ctl_fail("%s: cannot read %s %s: %s", cmd, what, path,
                        strerror(errno));
    }
    fclose(f);
    return 0;
}

/*
 * Settle the options: environment defaults, the gateway's address, the
 * key next to the certificate (PREFIX.crt, PREFIX.key as "cert user"
 * writes them), every file readable, the identity in the certificate.
 */
int
ctl_gw_load(const char *cmd, ctl_gw_t *g)
{
    g->proxy = ctl_env(g->proxy, "REDOUBT_PROXY");
    g->cert = ctl_env(g->cert, "REDOUBT_CERT");
    g->key = ctl_env(g->key, "REDOUBT_KEY");
    g->ca = ctl_env(g->ca, "REDOUBT_CA");
    g->domain = g->domain ? g->domain : ctl_default_domain();
    if (g->proxy == NULL) {
        return ctl_fail("%s: --proxy HOST:PORT (or $REDOUBT_PROXY) is "
                        "required: the gateway's address", cmd);
    }
    if (g->cert == NULL) {
        return ctl_fail("%s: --cert FILE (or $REDOUBT_CERT) is required: "
                        "your certificate (redoubtctl cert user)", cmd);
    }
    if (g->key == NULL) {
        size_t n = strlen(g->cert);
        if (n < 4 || strcmp(g->cert + n - 4, ".crt") != 0
            || n >= sizeof(g->keybuf)) {
            return ctl_fail("%s: --key FILE (or $REDOUBT_KEY) is required "
                            "when the certificate's name does not end in "
                            ".crt", cmd);
        }
        memcpy(g->keybuf, g->cert, n - 4);
        strcpy(g->keybuf + n - 4, ".key");
        g->key = g->keybuf;
    }
    if (g->ca == NULL) {
        return ctl_fail("%s: --ca FILE (or $REDOUBT_CA) is required: the CA "
                        "certificate that signed redoubt's certificate", cmd);
    }
    if (*g->domain == '\0' || !ctl_dns_name_ok(g->domain)
        || strchr(g->domain, '*') != NULL) {
        return ctl_fail("%s: bad --domain '%s': not a DNS name", cmd,
                        g->domain);
    }
    if (g->sni != NULL && (*g->sni == '\0' || ctl_is_ip(g->sni))) {
        return ctl_fail("%s: bad --sni '%s': a TLS server name is a host "
                        "name, not empty and not an IP address", cmd, g->sni);
    }
    if (ctl_parse_proxy(cmd, g) != 0
        || ctl_readable(cmd, "key", g->key) != 0
        || ctl_readable(cmd, "CA certificate", g->ca) != 0) {
        return -1;
    }
    X509 *x = ctl_read_cert("certificate", g->cert, false);
    if (x == NULL) {
        return -1;
    }
    char err[256];
    int rc = rd_identity_from_cert(x, &g->id, err, sizeof(err));
    X509_free(x);
    if (rc != 0) {
        return ctl_fail("%s: %s: %s", cmd, g->cert, err);
    }
    g->have_id = true;
    return 0;
}

/* A session can be had with the certificate now. */
int
ctl_gw_valid_now(const char *cmd, const ctl_gw_t *g)
{
    time_t now = time(NULL);
    char when[64];
    struct tm tm;
    time_t t = now < g->id.not_before ? g->id.not_before : g->id.not_after;
    if (gmtime_r(&t, &tm) == NULL
        || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(when, sizeof(when), "?");
    }
    if (now < g->id.not_before) {
        return ctl_fail("%s: the certificate %s is not valid before %s", cmd,
                        g->cert, when);
    }
    if (now > g->id.not_after) {
        return ctl_fail("%s: the certificate %s expired at %s: get a new one "
                        "(redoubtctl cert user)", cmd, g->cert, when);
    }
    return 0;
}

/* The database DB (or the certificate's route) and its database user
 * (--db-user, or the route's), as the gateway will see them. */
int
ctl_gw_database(const char *cmd, ctl_gw_t *g, const char *db,
                const char **out)
{
    const char *route = g->id.route_db, *ruser = g->id.route_db_user;
    if (db == NULL && route == NULL) {
        return ctl_fail("%s: missing DATABASE (redoubtctl db ls lists the "
                        "ones you may reach)", cmd);
    }
    if (db != NULL && *db == '\0') {
        return ctl_fail("%s: the database name must not be empty", cmd);
    }
    if (db != NULL && route != NULL && strcmp(db, route) != 0) {
        return ctl_fail("%s: the certificate %s is routed to the database "
                        "\"%s\": it cannot reach \"%s\"", cmd, g->cert, route,
                        db);
    }
    if (g->db_user != NULL && *g->db_user == '\0') {
        return ctl_fail("%s: --db-user must not be empty", cmd);
    }
    if (g->db_user != NULL && ruser != NULL && strcmp(g->db_user, ruser)) {
        return ctl_fail("%s: the certificate %s allows only the database "
                        "user \"%s\"", cmd, g->cert, ruser);
    }
    if (g->db_user == NULL) {
        g->db_user = ruser;
    }
    *out = db ? db : route;
    return 0;
}

/* The TLS server name for database db: --sni, else "DB.DOMAIN". */
void
ctl_server_name(const ctl_gw_t *g, const char *db, char *buf, size_t n)
{
    if (g->sni != NULL) {
        snprintf(buf, n, "%s", g->sni);
    } else {
        snprintf(buf, n, "%s.%s", db, g->domain);
    }
}

/* --- the gateway: a TLS connection ---------------------------------------- */

void
ctl_conn_close(ctl_conn_t *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->ssl = NULL;
    c->ctx = NULL;
    c->fd = -1;
    ERR_clear_error();
}

/* A TCP connection to host:port, at most CTL_IO_TIMEOUT_MS per address;
 * then blocking, with that timeout on every read and write. */
static int
ctl_tcp_connect(const char *cmd, const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int e = getaddrinfo(host, port, &hints, &res);
    if (e != 0) {
        return ctl_fail("%s: cannot resolve %s: %s", cmd, host,
                        gai_strerror(e));
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC
                    | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            if (errno == EINPROGRESS) {
                struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                int pr = poll(&pfd, 1, CTL_IO_TIMEOUT_MS);
                socklen_t len = sizeof(err);
                if (pr == 0) {
                    err = ETIMEDOUT;
                } else if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR,
                                                &err, &len) != 0) {
                    err = errno;
                }
            }
            if (err != 0) {
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return ctl_fail("%s: cannot connect to the gateway at %s:%s: %s", cmd,
                        host, port, strerror(err));
    }
    int flags = fcntl(fd, F_GETFL);
    struct timeval tv = { CTL_IO_TIMEOUT_MS / 1000, 0 };
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0
        || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0
        || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        err = errno;
        close(fd);
        return ctl_fail("%s: cannot set up the connection: %s", cmd,
                        strerror(err));
    }
    return fd;
}

/* Why the last SSL call failed, for a message. */
static void
ctl_ssl_reason(SSL *ssl, int ret, char *buf, size_t n)
{
    int se = SSL_get_error(ssl, ret);
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        ERR_error_string_n(e, buf, n);
    } else if (se == SSL_ERROR_SYSCALL && errno != 0) {
        snprintf(buf, n, "%s", errno == EAGAIN || errno == EWOULDBLOCK
                 ? "timed out" : strerror(errno));
    } else if (se == SSL_ERROR_ZERO_RETURN || se == SSL_ERROR_SYSCALL) {
        snprintf(buf, n, "the connection was closed");
    } else {
        snprintf(buf, n, "TLS error %d", se);
    }
    ERR_clear_error();
}

/*
 * Mutual TLS to the gateway with the user's certificate. The gateway's
 * certificate must chain to the CA and name the server name sent (sni),
 * or without one the host connected to, as strict clients check it.
 */
int
ctl_conn_open(const char *cmd, const ctl_gw_t *g, const char *sni,
              ctl_conn_t *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    /* A gateway that refuses the session closes the connection: a write
     * then fails with EPIPE, and the refusal is still there to read. */
    signal(SIGPIPE, SIG_IGN);
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        return ctl_fail_ssl("%s: cannot make a TLS context", cmd);
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_default_passwd_cb(c->ctx, ctl_no_password);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(c->ctx, g->ca, NULL) != 1) {
        ctl_fail_ssl("%s: cannot use the CA certificate %s", cmd, g->ca);
        ctl_conn_close(c);
        return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(c->ctx, g->cert) != 1
        || SSL_CTX_use_PrivateKey_file(c->ctx, g->key, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key(c->ctx) != 1) {
        ctl_fail_ssl("%s: cannot use the certificate %s with the key %s",
                     cmd, g->cert, g->key);
        ctl_conn_close(c);
        return -1;
    }
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL) {
        ctl_fail_ssl("%s: cannot make a TLS connection", cmd);
        ctl_conn_close(c);
        return -1;
    }
    const char *check = sni ? sni : g->host;
    int ok = sni == NULL || SSL_set_tlsext_host_name(c->ssl, sni) == 1;
    if (ok && ctl_is_ip(check)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), check);
    } else if (ok) {
        ok = SSL_set1_host(c->ssl, check);
    }
    if (!ok) {
        ctl_fail_ssl("%s: cannot check the gateway's name %s", cmd, check);
        ctl_conn_close(c);
        return -1;
    }
    c->fd = ctl_tcp_connect(cmd, g->host, g->port);
    if (c->fd < 0 || SSL_set_fd(c->ssl, c->fd) != 1) {
        ctl_conn_close(c);
        return -1;
    }
    int ret = SSL_connect(c->ssl);
    if (ret != 1) {
        long v = SSL_get_verify_result(c->ssl);
        char why[256];
        ctl_ssl_reason(c->ssl, ret, why, sizeof(why));
        if (v == X509_V_ERR_HOSTNAME_MISMATCH
            || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            ctl_fail("%s: the gateway's certificate does not name %s (the "
                     "name a client connects to, or the server name it "
                     "sends, must be in redoubt's certificate)", cmd, check);
        } else if (v != X509_V_OK) {
            ctl_fail("%s: cannot verify the gateway's certificate with %s: "
                     "%s", cmd, g->ca, X509_verify_cert_error_string(v));
        } else {
            ctl_fail("%s: TLS handshake with the gateway at %s:%s failed: %s",
                     cmd, g->host, g->port, why);
        }
        ctl_conn_close(c);
        return -1;
    }
    return 0;
}

/* Send one command and read its whole reply into reply. */
int
ctl_conn_call(const char *cmd, ctl_conn_t *c, size_t argc,
              const rd_str_t *argv, rd_buf_t *reply)
{
    rd_buf_t req = { 0 };
    char why[256];
    rd_resp_encode_command(&req, argc, argv);
    int ret = SSL_write(c->ssl, rd_buf_rpos(&req), (int)rd_buf_used(&req));
    rd_buf_free(&req);
    if (ret <= 0) {
        /* A refused session may have said why before it closed. */
        ERR_clear_error();
    }

    rd_resp_reply_scanner_t sc;
    rd_resp_limits_t lim = { .max_bulk = 1u << 20, .max_array = 1u << 20,
                             .max_inline = 1u << 16 };
    rd_resp_reply_init(&sc);
    for (;;) {
        char buf[16384];
        ret = SSL_read(c->ssl, buf, sizeof(buf));
        if (ret <= 0) {
            /* With TLS 1.3 a refused client certificate is an alert that
             * comes after the client's handshake is done. */
            unsigned long e = ERR_peek_last_error();
            int ad = ERR_GET_REASON(e) - SSL_AD_REASON_OFFSET;
            bool alert = ERR_GET_LIB(e) == ERR_LIB_SSL
                         && ((ad >= SSL_AD_BAD_CERTIFICATE
                              && ad <= SSL_AD_ACCESS_DENIED
                              && ad != SSL_AD_ILLEGAL_PARAMETER)
                             || ad == SSL_AD_CERTIFICATE_REQUIRED);
            ctl_ssl_reason(c->ssl, ret, why, sizeof(why));
            return ctl_fail("%s: the gateway %s: %s", cmd,
                            alert ? "refused your certificate"
                                  : "gave no answer", why);
        }
        size_t used = 0;
        const char *err = NULL;
        rd_resp_status_t st = rd_resp_scan_reply(&sc, buf, (size_t)ret, &lim,
                                                 &used, &err);
        if (st == RD_RESP_ERROR) {
            return ctl_fail("%s: the gateway's answer is not RESP: %s", cmd,
                            err ? err : "malformed");
        }
        rd_buf_append(reply, buf, used);
        if (rd_buf_used(reply) > CTL_REPLY_MAX) {
            return ctl_fail("%s: the gateway's answer is too long", cmd);
        }
        if (st == RD_RESP_OK) {
            return 0;
        }
    }
}

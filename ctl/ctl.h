/*
 * ctl.h - what redoubtctl's files share: limits, the types more than one
 * of them uses, and the functions one file offers the others. Private to
 * ctl/; the tool is described in redoubtctl.c.
 */
#ifndef CTL_H
#define CTL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "rd_core.h"
#include "rd_buf.h"
#include "rd_cycle.h"
#include "rd_identity.h"

#define CTL_MAX_VALUES      256         /* per list option, as the reader */
#define CTL_MAX_HOSTS       100
#define CTL_MAX_SANS        1000        /* with --databases-from */
#define CTL_SKEW            60          /* notBefore is this far back, s */
#define CTL_DAY             86400
#define CTL_CA_DAYS         3650        /* 10 years */
#define CTL_USER_TTL_MAX    (366 * CTL_DAY)
#define CTL_SERVER_TTL_MAX  (3650 * CTL_DAY)

typedef struct {
    const char   *name;         /* "--ttl" */
    const char  **value;        /* an option with a value, or */
    bool         *flag;         /* a flag */
} ctl_opt_t;

typedef struct {
    char   **v;
    size_t   n;
} ctl_list_t;

typedef struct {
    const char    *text;        /* as given, without brackets */
    unsigned char  ip[16];
    int            iplen;       /* 4, 16, or 0 for a DNS name */
} ctl_host_t;

typedef struct {
    const char *type;           /* --type / --ca value */
    const char *file;           /* DIR/<file>.crt, DIR/<file>.key */
    const char *cn;
} ctl_ca_kind_t;

typedef struct {
    X509      *cert;
    EVP_PKEY  *key;
    char       crt_path[PATH_MAX];
    char       key_path[PATH_MAX];
} ctl_ca_t;

#define CTL_MAX_ARGS        1024        /* --command CMD ARG... */

typedef struct {
    rd_cycle_t     *cycle;
    rd_identity_t   id;
    bool            have_id;
} ctl_access_t;

/* Options every command that talks to (or about) the gateway takes; any
 * not given comes from the environment. */
typedef struct {
    const char    *proxy;           /* --proxy, $REDOUBT_PROXY */
    const char    *cert;            /* --cert, $REDOUBT_CERT */
    const char    *key;             /* --key, $REDOUBT_KEY, else cert's */
    const char    *ca;              /* --ca, $REDOUBT_CA */
    const char    *sni;             /* --sni: the server name, as is */
    const char    *domain;          /* --domain, $REDOUBT_DOMAIN */
    const char    *db_user;         /* --db-user */
    char           host[256];
    char           port[8];
    char           keybuf[PATH_MAX];
    rd_identity_t  id;              /* read from the certificate */
    bool           have_id;
} ctl_gw_t;

#define CTL_GW_OPTS(g)                                                    \
    { "--proxy", &(g).proxy, NULL }, { "--cert", &(g).cert, NULL },       \
    { "--key", &(g).key, NULL }, { "--ca", &(g).ca, NULL },               \
    { "--sni", &(g).sni, NULL }, { "--domain", &(g).domain, NULL }

typedef struct {
    int      fd;
    SSL_CTX *ctx;
    SSL     *ssl;
} ctl_conn_t;

/* redoubtctl.c: errors, options, values, files */
int ctl_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
int ctl_fail_ssl(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
const ctl_opt_t *ctl_find_opt(const ctl_opt_t *opts, const char *arg,
                             size_t len);
int ctl_parse(const char *cmd, int argc, char **argv, const ctl_opt_t *opts,
              const char **pos, int maxpos, int *npos);
const char *ctl_default_ca_dir(void);
void ctl_list_free(ctl_list_t *l);
int ctl_split(const char *cmd, const char *opt, const char *arg, size_t max,
              ctl_list_t *l);
int ctl_ttl(const char *cmd, const char *opt, const char *arg, int64_t max,
            const char *maxtext, int64_t *sec);
int ctl_offset(const char *cmd, const char *opt, const char *arg,
               int64_t *sec);
bool ctl_dns_name_ok(const char *s);
int ctl_host(const char *cmd, char *text, ctl_host_t *h);
int ctl_path(char *buf, size_t n, const char *a, const char *b, const char *c);
int ctl_write_pair(const char *kpath, const char *cpath, EVP_PKEY *key,
                   X509 *cert, bool replace);
int ctl_no_password(char *buf, int size, int rwflag, void *u);
X509 *ctl_read_cert(const char *what, const char *path, bool der);
EVP_PKEY *ctl_read_key(const char *what, const char *path);
char *ctl_escaped_n(const char *s, size_t len);
char *ctl_escaped(const char *s);

/* ctl_ca.c: CAs, keys and certificates; "ca" */
const ctl_ca_kind_t *ctl_ca_kind(const char *type);
void ctl_ca_free(ctl_ca_t *ca);
int ctl_ca_load(const char *dir, const ctl_ca_kind_t *kind, ctl_ca_t *ca);
EVP_PKEY *ctl_key_like(const ctl_ca_t *ca);
X509 *ctl_cert_new(const X509_NAME *subject, EVP_PKEY *key, X509 *issuer,
                   time_t not_before, time_t not_after);
int ctl_leaf_exts(X509 *x, const ctl_ca_t *ca, EVP_PKEY *key, const char *eku);
int ctl_san(X509 *x, const ctl_host_t *hosts, size_t n);
int ctl_sign(X509 *x, EVP_PKEY *key);
int ctl_write_out(const char *prefix, EVP_PKEY *key, X509 *cert);
X509_NAME *ctl_name_cn(const char *cn);
int cmd_ca_init(const char *cmd, int argc, char **argv);
int cmd_ca_export(const char *cmd, int argc, char **argv);

/* ctl_cert.c: "cert" */
rd_cycle_t *ctl_load_config(const char *cmd, const char *path);
const char *ctl_default_domain(void);
int cmd_cert_server(const char *cmd, int argc, char **argv);
int cmd_cert_user(const char *cmd, int argc, char **argv);
void ctl_put_value(const char *s);
int cmd_cert_show(const char *cmd, int argc, char **argv);

/* ctl_access.c: "access check"; a user's identity and the configuration */
void ctl_access_free(ctl_access_t *a);
int ctl_access_load(const char *cmd, const char *cert, const char *conf,
                    ctl_access_t *a);
int cmd_access_check(const char *cmd, int argc, char **argv);

/* ctl_gw.c: the gateway client */
void ctl_gw_free(ctl_gw_t *g);
const char *ctl_env(const char *opt, const char *name);
int ctl_gw_load(const char *cmd, ctl_gw_t *g);
int ctl_gw_valid_now(const char *cmd, const ctl_gw_t *g);
int ctl_gw_database(const char *cmd, ctl_gw_t *g, const char *db,
                    const char **out);
void ctl_server_name(const ctl_gw_t *g, const char *db, char *buf, size_t n);
void ctl_conn_close(ctl_conn_t *c);
int ctl_conn_open(const char *cmd, const ctl_gw_t *g, const char *sni,
                  ctl_conn_t *c);
int ctl_conn_call(const char *cmd, ctl_conn_t *c, size_t argc,
                  const rd_str_t *argv, rd_buf_t *reply);

/* ctl_db.c: "db" */
int cmd_db_ls(const char *cmd, int argc, char **argv);
int cmd_db_connect(const char *cmd, int argc, char **argv);
int cmd_db_config(const char *cmd, int argc, char **argv);

#endif /* CTL_H */

/*
 * ctl_cert.c - redoubtctl's "cert server", "cert user" and "cert show".
 *
 * "cert server --databases-from" reads the server's configuration
 * (ctl_load_config, also used by "access check" and "db ls -c"). See
 * redoubtctl.c for the whole tool.
 */

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "rd_core.h"
#include "rd_cycle.h"
#include "rd_cert_identity.h"
#include "rd_log.h"
#include "rd_module.h"

#include "ctl.h"

/* --- cert server ------------------------------------------------------- */

static int
ctl_server_issue(const char *cmd, const ctl_ca_t *ca, ctl_host_t *hosts,
                 size_t nhosts, int64_t ttl, const char *out)
{
    time_t now = time(NULL);
    X509 *x = NULL;
    X509_NAME *name = NULL;
    int rc = -1;
    EVP_PKEY *key = ctl_key_like(ca);
    if (key != NULL) {
        name = ctl_name_cn(hosts[0].text);
    }
    if (name != NULL) {
        x = ctl_cert_new(name, key, ca->cert, now - CTL_SKEW,
                         now + (time_t)ttl);
    }
    if (x != NULL
        && ctl_leaf_exts(x, ca, key, "serverAuth,clientAuth") == 0
        && ctl_san(x, hosts, nhosts) == 0
        && ctl_sign(x, ca->key) == 0
        && ctl_write_out(out, key, x) == 0) {
        rc = 0;
    }
    X509_free(x);
    X509_NAME_free(name);
    EVP_PKEY_free(key);
    return rc;
}

/* The configuration at path, read as the server reads it. */
rd_cycle_t *
ctl_load_config(const char *cmd, const char *path)
{
    /* The server's notes (a role the configuration lacks, ...) are
     * worth seeing here; its debug and info chatter is not. */
    rd_log_level = RD_LOG_WARN;
    rd_modules_init();
    char *cerr = NULL;
    rd_cycle_t *cycle = rd_cycle_load(path, &cerr);
    if (cycle == NULL) {
        ctl_fail("%s: %s", cmd, cerr ? cerr : "cannot load the configuration");
        free(cerr);
    }
    return cycle;
}

const char *
ctl_default_domain(void)
{
    const char *d = getenv("REDOUBT_DOMAIN");
    return d && *d ? d : "redoubt.local";
}

/* Add name to hosts (a DNS name made here) unless it is there already. */
static void
ctl_host_add(ctl_host_t *hosts, size_t *n, ctl_list_t *own, const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (hosts[i].iplen == 0 && strcasecmp(hosts[i].text, name) == 0) {
            return;
        }
    }
    own->v[own->n] = rd_strdup(name);
    hosts[*n].text = own->v[own->n++];
    hosts[*n].iplen = 0;
    (*n)++;
}

/*
 * --databases-from CONFIG: every database's name, and NAME.DOMAIN, as DNS
 * names, for clients that send them as the TLS server name (the tls
 * module reads "db" and "db.anything" as database "db"). A name that is
 * no DNS name is left out with a note on stderr.
 */
static int
ctl_hosts_from_config(const char *cmd, const char *conf, const char *domain,
                      ctl_host_t **hosts, size_t *nhosts, ctl_list_t *own)
{
    if (!ctl_dns_name_ok(domain) || strchr(domain, '*') != NULL) {
        return ctl_fail("%s: bad --domain '%s': not a DNS name", cmd, domain);
    }
    rd_cycle_t *cycle = ctl_load_config(cmd, conf);
    if (cycle == NULL) {
        return -1;
    }
    size_t max = *nhosts + 2 * cycle->ndatabases;
    *hosts = rd_realloc(*hosts, (max ? max : 1) * sizeof(ctl_host_t));
    own->v = rd_calloc(2 * cycle->ndatabases + 1, sizeof(char *));
    own->n = 0;
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        const char *name = cycle->databases[i].name;
        char full[300];
        int len = snprintf(full, sizeof(full), "%s.%s", name, domain);
        if (strchr(name, '.') != NULL || strchr(name, '*') != NULL
            || !ctl_dns_name_ok(name) || len < 0
            || (size_t)len >= sizeof(full) || !ctl_dns_name_ok(full)) {
            char *esc = ctl_escaped(name);
            fprintf(stderr, "redoubtctl: %s: note: the database \"%s\" is "
                    "not named like a DNS label: left out (clients reach it "
                    "with a route in their certificate, or as the "
                    "listener's default)\n", cmd, esc);
            free(esc);
            continue;
        }
        ctl_host_add(*hosts, nhosts, own, name);
        ctl_host_add(*hosts, nhosts, own, full);
    }
    rd_cycle_destroy(cycle);
    if (*nhosts > CTL_MAX_SANS) {
        return ctl_fail("%s: more than %d names for one certificate", cmd,
                        CTL_MAX_SANS);
    }
    return 0;
}

int
cmd_cert_server(const char *cmd, int argc, char **argv)
{
    const char *dir = NULL, *host = NULL, *out = NULL, *ttl_s = NULL,
               *ca_s = NULL, *from = NULL, *domain = NULL, *pos[1];
    int npos;
    const ctl_opt_t opts[] = {
        { "--ca-dir", &dir, NULL },
        { "--host", &host, NULL },
        { "--out", &out, NULL },
        { "--ttl", &ttl_s, NULL },
        { "--ca", &ca_s, NULL },
        { "--databases-from", &from, NULL },
        { "--domain", &domain, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    if (host == NULL && from == NULL) {
        return ctl_fail("%s: --host is required (or --databases-from CONFIG)",
                        cmd);
    }
    if (domain != NULL && from == NULL) {
        return ctl_fail("%s: --domain goes with --databases-from", cmd);
    }
    if (out == NULL || *out == '\0') {
        return ctl_fail("%s: --out PREFIX is required", cmd);
    }
    const ctl_ca_kind_t *kind = ctl_ca_kind(ca_s ? ca_s : "db");
    if (kind == NULL) {
        return ctl_fail("%s: bad --ca '%s': expected db, user or db-client",
                        cmd, ca_s);
    }
    int64_t ttl;
    if (ctl_ttl(cmd, "--ttl", ttl_s ? ttl_s : "8760h", CTL_SERVER_TTL_MAX,
                "3650d", &ttl) != 0) {
        return -1;
    }
    ctl_list_t names, own;
    memset(&own, 0, sizeof(own));
    if (ctl_split(cmd, "--host", host, CTL_MAX_HOSTS, &names) != 0) {
        return -1;
    }
    ctl_host_t *hosts = rd_calloc(names.n ? names.n : 1, sizeof(ctl_host_t));
    size_t nhosts = names.n;
    rc = 0;
    for (size_t i = 0; rc == 0 && i < names.n; i++) {
        rc = ctl_host(cmd, names.v[i], &hosts[i]);
    }
    if (rc == 0 && from != NULL) {
        rc = ctl_hosts_from_config(cmd, from,
                                   domain ? domain : ctl_default_domain(),
                                   &hosts, &nhosts, &own);
        if (rc == 0 && nhosts == 0) {
            rc = ctl_fail("%s: no names: %s has no database named like a "
                          "DNS label, and no --host was given", cmd, from);
        }
    }
    ctl_ca_t ca;
    memset(&ca, 0, sizeof(ca));
    if (rc == 0) {
        rc = ctl_ca_load(dir ? dir : ctl_default_ca_dir(), kind, &ca);
    }
    if (rc == 0) {
        rc = ctl_server_issue(cmd, &ca, hosts, nhosts, ttl, out);
    }
    ctl_ca_free(&ca);
    free(hosts);
    ctl_list_free(&names);
    ctl_list_free(&own);
    return rc;
}

/* --- cert user --------------------------------------------------------- */

typedef struct {
    const char *user, *roles, *db_users, *db_names, *db, *db_user;
    const char *ttl, *out, *dir, *offset;
} ctl_user_args_t;

static int
ctl_user_issue(const ctl_ca_t *ca, const rd_identity_t *id, time_t base,
               int64_t ttl, const char *out)
{
    X509 *x = NULL;
    int rc = -1;
    X509_NAME *name = X509_NAME_new();
    if (name == NULL) {
        return ctl_fail_ssl("cannot make the subject name");
    }
    if (rd_identity_to_name(id, name) != 0) {
        X509_NAME_free(name);
        return ctl_fail("cert user: the identity has a value that is not "
                        "valid UTF-8 or is too long");
    }
    EVP_PKEY *key = ctl_key_like(ca);
    if (key != NULL) {
        x = ctl_cert_new(name, key, ca->cert, base - CTL_SKEW,
                         base + (time_t)ttl);
    }
    if (x != NULL
        && ctl_leaf_exts(x, ca, key, "clientAuth") == 0
        && ctl_sign(x, ca->key) == 0
        && ctl_write_out(out, key, x) == 0) {
        rc = 0;
    }
    X509_free(x);
    X509_NAME_free(name);
    EVP_PKEY_free(key);
    return rc;
}

static int
ctl_user_run(const char *cmd, const ctl_user_args_t *a)
{
    int64_t ttl, offset = 0;
    if (a->user == NULL || *a->user == '\0') {
        return ctl_fail("%s: --user is required", cmd);
    }
    if (a->roles == NULL) {
        return ctl_fail("%s: --roles is required", cmd);
    }
    if (a->out == NULL || *a->out == '\0') {
        return ctl_fail("%s: --out PREFIX is required", cmd);
    }
    if ((a->db && *a->db == '\0') || (a->db_user && *a->db_user == '\0')) {
        return ctl_fail("%s: --db and --db-user must not be empty", cmd);
    }
    if (ctl_ttl(cmd, "--ttl", a->ttl ? a->ttl : "8h", CTL_USER_TTL_MAX,
                "366d", &ttl) != 0
        || (a->offset && ctl_offset(cmd, "--not-before-offset", a->offset,
                                    &offset) != 0)) {
        return -1;
    }
    ctl_list_t roles, users, names;
    memset(&users, 0, sizeof(users));
    memset(&names, 0, sizeof(names));
    int rc = ctl_split(cmd, "--roles", a->roles, CTL_MAX_VALUES, &roles);
    if (rc == 0) {
        rc = ctl_split(cmd, "--db-users", a->db_users, CTL_MAX_VALUES, &users);
    }
    if (rc == 0) {
        rc = ctl_split(cmd, "--db-names", a->db_names, CTL_MAX_VALUES, &names);
    }
    ctl_ca_t ca;
    memset(&ca, 0, sizeof(ca));
    if (rc == 0) {
        rc = ctl_ca_load(a->dir ? a->dir : ctl_default_ca_dir(),
                         ctl_ca_kind("user"), &ca);
    }
    if (rc == 0) {
        rd_identity_t id = {
            .user = (char *)a->user,
            .roles = roles.v, .nroles = roles.n,
            .db_users = users.v, .ndb_users = users.n,
            .db_names = names.v, .ndb_names = names.n,
            .route_db = (char *)a->db, .route_db_user = (char *)a->db_user,
        };
        rc = ctl_user_issue(&ca, &id, time(NULL) + (time_t)offset, ttl,
                            a->out);
    }
    ctl_ca_free(&ca);
    ctl_list_free(&roles);
    ctl_list_free(&users);
    ctl_list_free(&names);
    return rc;
}

int
cmd_cert_user(const char *cmd, int argc, char **argv)
{
    ctl_user_args_t a;
    const char *pos[1];
    int npos;
    memset(&a, 0, sizeof(a));
    const ctl_opt_t opts[] = {
        { "--ca-dir", &a.dir, NULL },
        { "--user", &a.user, NULL },
        { "--roles", &a.roles, NULL },
        { "--db-users", &a.db_users, NULL },
        { "--db-names", &a.db_names, NULL },
        { "--db", &a.db, NULL },
        { "--db-user", &a.db_user, NULL },
        { "--ttl", &a.ttl, NULL },
        { "--out", &a.out, NULL },
        { "--not-before-offset", &a.offset, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    return ctl_user_run(cmd, &a);
}

/* --- cert show --------------------------------------------------------- */

/* Print a value from a certificate with control characters escaped, so
 * that a hostile certificate cannot write to the terminal. */
void
ctl_put_value(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            printf("\\x%02x", *p);
        } else {
            putchar(*p);
        }
    }
}

static void
ctl_put_list(const char *label, char *const *v, size_t n)
{
    printf("%-16s", label);
    if (n == 0) {
        fputs("-", stdout);
    }
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", stdout);
        ctl_put_value(v[i]);
    }
    putchar('\n');
}

static void
ctl_put_time(const char *label, time_t t)
{
    struct tm tm;
    char buf[64];
    if (gmtime_r(&t, &tm) == NULL
        || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(buf, sizeof(buf), "?");
    }
    printf("%-16s%s\n", label, buf);
}

static void
ctl_put_issuer(X509 *x)
{
    const X509_NAME *in = X509_get_issuer_name(x);
    int i = X509_NAME_get_index_by_NID(in, NID_commonName, -1);
    unsigned char *utf8 = NULL;
    int len = -1;
    if (i >= 0) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(in, i);
        len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    }
    printf("%-16s", "issuer:");
    if (len > 0 && memchr(utf8, '\0', (size_t)len) == NULL) {
        ctl_put_value((const char *)utf8);
    } else {
        fputs("-", stdout);
    }
    putchar('\n');
    OPENSSL_free(utf8);
    ERR_clear_error();
}

int
cmd_cert_show(const char *cmd, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    const ctl_opt_t opts[] = { { NULL, NULL, NULL } };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 1, &npos);
    if (rc != 0) {
        return rc;
    }
    if (npos == 0) {
        return ctl_fail("%s: missing FILE", cmd);
    }
    X509 *x = ctl_read_cert("certificate", pos[0], true);
    if (x == NULL) {
        return -1;
    }
    rd_identity_t id;
    char err[256];
    if (rd_identity_from_cert(x, &id, err, sizeof(err)) != 0) {
        X509_free(x);
        return ctl_fail("%s: %s", pos[0], err);
    }
    time_t now = time(NULL);
    printf("%-16s", "user:");
    ctl_put_value(id.user);
    putchar('\n');
    ctl_put_list("roles:", id.roles, id.nroles);
    ctl_put_list("db_users:", id.db_users, id.ndb_users);
    ctl_put_list("db_names:", id.db_names, id.ndb_names);
    ctl_put_list("route db:", &id.route_db, id.route_db ? 1 : 0);
    ctl_put_list("route db user:", &id.route_db_user,
                 id.route_db_user ? 1 : 0);
    ctl_put_time("not before:", id.not_before);
    ctl_put_time("not after:", id.not_after);
    ctl_put_issuer(x);
    printf("%-16s%s\n", "status:", now < id.not_before ? "not yet valid"
                                   : now > id.not_after ? "expired" : "valid");
    rd_identity_free(&id);
    X509_free(x);
    return 0;
}

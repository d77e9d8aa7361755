/*
 * redoubtctl.c - the administrator's and user's tool: CAs, certificates,
 * access checks, and connecting to databases through the gateway.
 *
 *   redoubtctl ca init DIR [--rsa 2048|4096] [--force]
 *   redoubtctl ca export --type user|db|db-client [--dir DIR]
 *   redoubtctl cert server --host NAME[,NAME|IP...] --out PREFIX [...]
 *                          [--databases-from CONFIG [--domain DOMAIN]]
 *   redoubtctl cert user --user NAME --roles R1[,R2] --out PREFIX [...]
 *   redoubtctl cert show FILE
 *   redoubtctl db ls --cert FILE -c CONFIG
 *   redoubtctl db ls [GATEWAY OPTIONS] [--db NAME]
 *   redoubtctl db connect [DB] [GATEWAY OPTIONS] [--db-user U] [-- ARGS]
 *   redoubtctl db config [DB] [GATEWAY OPTIONS] [--db-user U]
 *                        [--format text|cmd|uri|env|python|node|ioredis]
 *   redoubtctl access check --cert FILE -c CONFIG --db NAME [--db-user U]
 *                           [--command CMD [ARG...]]
 *
 * GATEWAY OPTIONS: --proxy HOST:PORT --cert FILE --key FILE --ca FILE
 * --sni NAME --domain DOMAIN, each defaulting to an environment variable
 * ($REDOUBT_PROXY, $REDOUBT_CERT, ...). The server name for database DB
 * is DB.DOMAIN (DOMAIN: redoubt.local) unless --sni names one.
 *
 * "db ls -c" and "access check" load the server's configuration and ask
 * the rbac module (rd_rbac.h), the code the server decides with. "db ls"
 * without -c asks a running gateway with the user's certificate (the
 * command REDOUBT DATABASES, rd_rbac_introspect.c), whose answer comes
 * from the same function. "db connect" runs redis-cli, "db config"
 * prints the settings and code for client libraries.
 *
 * Every failure is one line on stderr ("redoubtctl: ...") and exit status
 * 1, usage errors included; success is 0. See redoubtctl(1).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "rd_core.h"
#include "rd_buf.h"
#include "rd_conf.h"
#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_log.h"
#include "rd_module.h"
#include "rd_rbac.h"
#include "rd_rbac_introspect.h"
#include "rd_resp.h"

#define CTL_HELP            1           /* a command printed its usage */
#define CTL_MAX_VALUES      256         /* per list option, as the reader */
#define CTL_MAX_HOSTS       100
#define CTL_MAX_SANS        1000        /* with --databases-from */
#define CTL_SKEW            60          /* notBefore is this far back, s */
#define CTL_DAY             86400
#define CTL_CA_DAYS         3650        /* 10 years */
#define CTL_USER_TTL_MAX    (366 * CTL_DAY)
#define CTL_SERVER_TTL_MAX  (3650 * CTL_DAY)
#define CTL_OFFSET_MAX      (3650 * CTL_DAY)

static const char ctl_usage_text[] =
    "usage: redoubtctl ca init DIR [--rsa 2048|4096] [--force]\n"
    "       redoubtctl ca export --type user|db|db-client [--dir DIR]\n"
    "       redoubtctl cert server --host NAME[,NAME|IP...] --out PREFIX\n"
    "                  [--ca-dir DIR] [--ca db|user|db-client] [--ttl 8760h]\n"
    "                  [--databases-from CONFIG [--domain redoubt.local]]\n"
    "       redoubtctl cert user --user NAME --roles ROLE[,ROLE...] --out PREFIX\n"
    "                  [--ca-dir DIR] [--db-users U[,U...]|'*']\n"
    "                  [--db-names N[,N...]|'*'] [--db NAME] [--db-user USER]\n"
    "                  [--ttl 8h]\n"
    "       redoubtctl cert show FILE\n"
    "       redoubtctl db ls --cert FILE -c CONFIG\n"
    "       redoubtctl db ls [GATEWAY OPTIONS] [--db NAME]\n"
    "       redoubtctl db connect [DATABASE] [GATEWAY OPTIONS] [--db-user USER]\n"
    "                  [-- REDIS-CLI ARGS...]\n"
    "       redoubtctl db config [DATABASE] [GATEWAY OPTIONS] [--db-user USER]\n"
    "                  [--format text|cmd|uri|env|python|node|ioredis]\n"
    "       redoubtctl access check --cert FILE -c CONFIG --db NAME\n"
    "                  [--db-user USER] [--command CMD [ARG...]]\n"
    "       redoubtctl -h|--help\n"
    "       redoubtctl -v|--version\n"
    "\n"
    "GATEWAY OPTIONS, each else from the environment: --proxy HOST:PORT\n"
    "($REDOUBT_PROXY), --cert FILE ($REDOUBT_CERT), --key FILE ($REDOUBT_KEY,\n"
    "else the certificate's name with .key for .crt), --ca FILE ($REDOUBT_CA:\n"
    "the CA of redoubt's certificate), --domain DOMAIN ($REDOUBT_DOMAIN, else\n"
    "redoubt.local: database DB has the server name DB.DOMAIN), --sni NAME\n"
    "(that server name instead).\n"
    "The CA directory is --ca-dir (or --dir), else $REDOUBT_CA_DIR, else \".\".\n"
    "Durations: \"30m\", \"8h\", \"1d\". Exit status: 0 on success, 1 on any\n"
    "error; \"access check\" exits 1 also when access is denied. See\n"
    "redoubtctl(1).\n";

/* --- errors ------------------------------------------------------------ */

static int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *ctl_escaped(const char *s);
static int ctl_fail_ssl(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void
ctl_vfail(const char *fmt, va_list ap, const char *tail)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* One line, whatever a file name or an argument holds. */
    for (char *p = msg; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    fprintf(stderr, "redoubtctl: %s%s%s\n", msg, tail ? ": " : "",
            tail ? tail : "");
}

/* Print "redoubtctl: MESSAGE" and return -1. */
static int
ctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctl_vfail(fmt, ap, NULL);
    va_end(ap);
    ERR_clear_error();
    return -1;
}

/* The same with OpenSSL's reason for the last error appended. */
static int
ctl_fail_ssl(const char *fmt, ...)
{
    char reason[256];
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        ERR_error_string_n(e, reason, sizeof(reason));
    } else {
        snprintf(reason, sizeof(reason), "unknown error");
    }
    va_list ap;
    va_start(ap, fmt);
    ctl_vfail(fmt, ap, reason);
    va_end(ap);
    ERR_clear_error();
    return -1;
}

/* --- options ----------------------------------------------------------- */

typedef struct {
    const char   *name;         /* "--ttl" */
    const char  **value;        /* an option with a value, or */
    bool         *flag;         /* a flag */
} ctl_opt_t;

static const ctl_opt_t *
ctl_find_opt(const ctl_opt_t *opts, const char *arg, size_t len)
{
    for (const ctl_opt_t *o = opts; o->name; o++) {
        if (strlen(o->name) == len && strncmp(o->name, arg, len) == 0) {
            return o;
        }
    }
    return NULL;
}

static int
ctl_take_opt(const char *cmd, const ctl_opt_t *o, const char *inline_value,
             int argc, char **argv, int *i)
{
    if (o->flag != NULL) {
        if (inline_value != NULL) {
            return ctl_fail("%s: option %s takes no value", cmd, o->name);
        }
        if (*o->flag) {
            return ctl_fail("%s: option %s given twice", cmd, o->name);
        }
        *o->flag = true;
        return 0;
    }
    if (*o->value != NULL) {
        return ctl_fail("%s: option %s given twice", cmd, o->name);
    }
    if (inline_value == NULL) {
        if (*i + 1 >= argc) {
            return ctl_fail("%s: option %s needs a value", cmd, o->name);
        }
        inline_value = argv[++*i];
    }
    *o->value = inline_value;
    return 0;
}

/* Parse the arguments after "GROUP COMMAND": options from opts (as
 * "--name value" or "--name=value") and up to maxpos positional arguments.
 * Returns 0, CTL_HELP (usage printed), or -1 (error printed). */
static int
ctl_parse(const char *cmd, int argc, char **argv, const ctl_opt_t *opts,
          const char **pos, int maxpos, int *npos)
{
    bool only_pos = false;
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (!only_pos && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(ctl_usage_text, stdout);
            return CTL_HELP;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            const ctl_opt_t *o = ctl_find_opt(opts, a, len);
            /* Short options only where a command lists them ("-c"). */
            if (o != NULL && a[1] != '-' && eq != NULL) {
                return ctl_fail("%s: option %s takes its value as the next "
                                "argument", cmd, o->name);
            }
            if (o == NULL) {
                return ctl_fail("%s: unknown option '%.*s' (try 'redoubtctl "
                                "--help')", cmd, (int)len, a);
            }
            if (ctl_take_opt(cmd, o, eq ? eq + 1 : NULL, argc, argv, &i) != 0) {
                return -1;
            }
            continue;
        }
        if (*npos >= maxpos) {
            return ctl_fail("%s: unexpected argument '%s'", cmd, a);
        }
        pos[(*npos)++] = a;
    }
    return 0;
}

static const char *
ctl_default_ca_dir(void)
{
    const char *d = getenv("REDOUBT_CA_DIR");
    return d && *d ? d : ".";
}

/* --- values ------------------------------------------------------------ */

typedef struct {
    char   **v;
    size_t   n;
} ctl_list_t;

static void
ctl_list_free(ctl_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Split a comma-separated option value; no element may be empty. */
static int
ctl_split(const char *cmd, const char *opt, const char *arg, size_t max,
          ctl_list_t *l)
{
    l->v = NULL;
    l->n = 0;
    if (arg == NULL) {
        return 0;
    }
    size_t count = 1;
    for (const char *p = arg; *p; p++) {
        count += *p == ',';
    }
    if (count > max) {
        return ctl_fail("%s: bad %s: more than %zu values", cmd, opt, max);
    }
    l->v = rd_calloc(count, sizeof(char *));
    const char *p = arg;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0) {
            ctl_list_free(l);
            return ctl_fail("%s: bad %s '%s': empty value", cmd, opt, arg);
        }
        l->v[l->n++] = rd_strndup(p, len);
        if (p[len] == '\0') {
            return 0;
        }
        p += len + 1;
    }
}

/* A duration option in seconds, at least 1s and at most max. */
static int
ctl_ttl(const char *cmd, const char *opt, const char *arg, int64_t max,
        const char *maxtext, int64_t *sec)
{
    int64_t ms = rd_parse_duration(arg);
    if (ms <= 0) {
        return ctl_fail("%s: bad %s '%s': expected a duration such as "
                        "\"30m\", \"8h\" or \"1d\"", cmd, opt, arg);
    }
    if (ms < 1000) {
        return ctl_fail("%s: bad %s '%s': less than 1s", cmd, opt, arg);
    }
    if (ms / 1000 > max) {
        return ctl_fail("%s: bad %s '%s': at most %s", cmd, opt, arg, maxtext);
    }
    *sec = ms / 1000;
    return 0;
}

/* A signed duration ("-10h", "+1h", "30m") in seconds. */
static int
ctl_offset(const char *cmd, const char *opt, const char *arg, int64_t *sec)
{
    int sign = 1;
    const char *p = arg;
    if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
    }
    int64_t ms = rd_parse_duration(p);
    if (ms < 0) {
        return ctl_fail("%s: bad %s '%s': expected a duration with a sign, "
                        "such as \"-10h\" or \"+1h\"", cmd, opt, arg);
    }
    if (ms / 1000 > CTL_OFFSET_MAX) {
        return ctl_fail("%s: bad %s '%s': at most 3650d", cmd, opt, arg);
    }
    *sec = sign * (ms / 1000);
    return 0;
}

typedef struct {
    const char    *text;        /* as given, without brackets */
    unsigned char  ip[16];
    int            iplen;       /* 4, 16, or 0 for a DNS name */
} ctl_host_t;

/* A DNS host name: labels of letters, digits and '-' (not at either end),
 * at most 63 bytes each and 253 in all; "*." may lead (a wildcard). The
 * last label is not all digits (that would be a mistyped IP address). */
static bool
ctl_dns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253) {
        return false;
    }
    if (strncmp(s, "*.", 2) == 0) {
        s += 2;
    }
    bool numeric = false;
    for (;;) {
        size_t len = strcspn(s, ".");
        if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-') {
            return false;
        }
        numeric = true;
        for (size_t i = 0; i < len; i++) {
            char c = s[i];
            bool digit = c >= '0' && c <= '9';
            bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            if (!digit && !alpha && c != '-') {
                return false;
            }
            numeric = numeric && digit;
        }
        if (s[len] == '\0') {
            return !numeric;
        }
        s += len + 1;
    }
}

static int
ctl_host(const char *cmd, char *text, ctl_host_t *h)
{
    size_t len = strlen(text);
    h->iplen = 0;
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text[len - 1] = '\0';
        memmove(text, text + 1, len - 1);
        if (inet_pton(AF_INET6, text, h->ip) != 1) {
            return ctl_fail("%s: bad host '[%s]': not an IPv6 address", cmd,
                            text);
        }
        h->iplen = 16;
    } else if (inet_pton(AF_INET, text, h->ip) == 1) {
        h->iplen = 4;
    } else if (inet_pton(AF_INET6, text, h->ip) == 1) {
        h->iplen = 16;
    } else if (!ctl_dns_name_ok(text)) {
        return ctl_fail("%s: bad host '%s': not a DNS name or an IP address",
                        cmd, text);
    }
    h->text = text;
    return 0;
}

/* --- files ------------------------------------------------------------- */

static int
ctl_path(char *buf, size_t n, const char *a, const char *b, const char *c)
{
    int len = snprintf(buf, n, "%s%s%s", a, b, c);
    if (len < 0 || (size_t)len >= n) {
        return ctl_fail("path too long: %s%s%s", a, b, c);
    }
    return 0;
}

static int
ctl_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

static mode_t
ctl_umasked(mode_t mode)
{
    mode_t u = umask(0);
    umask(u);
    return mode & ~u;
}

/* Create path (O_EXCL), or with tmp, a new temp file next to it whose name
 * is left in tmp (PATH_MAX bytes), and fill it. Nothing is left on error. */
static int
ctl_create(const char *path, const char *data, size_t len, mode_t mode,
           char *tmp)
{
    const char *target = path;
    int fd;

    if (tmp != NULL) {
        if (ctl_path(tmp, PATH_MAX, path, ".tmp.", "XXXXXX") != 0) {
            return -1;
        }
        fd = mkostemp(tmp, O_CLOEXEC);      /* 0600, O_EXCL */
        target = tmp;
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    }
    if (fd < 0) {
        return ctl_fail("cannot create %s: %s", path, strerror(errno));
    }
    int rc = fchmod(fd, ctl_umasked(mode));
    if (rc == 0) {
        rc = ctl_write_all(fd, data, len);
    }
    if (rc == 0) {
        rc = fsync(fd);
    }
    int saved = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        unlink(target);
        return ctl_fail("cannot write %s: %s", path, strerror(saved));
    }
    return 0;
}

typedef struct {
    const char  *path;
    BIO         *pem;           /* the content */
    mode_t       mode;
    char         tmp[PATH_MAX];
} ctl_file_t;

/* Write files that belong together (a key and its certificate). Without
 * replace, none may exist yet (O_EXCL). With replace, each is written to a
 * temp file first, and only when all are written are they renamed over
 * the old ones, so a reader sees the old or the new file, never a mix of
 * a half-written one. On failure no new file is left behind. */
static int
ctl_install(ctl_file_t *f, size_t n, bool replace)
{
    size_t i, j;
    for (i = 0; i < n; i++) {
        char *data = NULL;
        long len = BIO_get_mem_data(f[i].pem, &data);
        if (len <= 0 || data == NULL) {
            ctl_fail_ssl("cannot encode %s", f[i].path);
            break;
        }
        if (ctl_create(f[i].path, data, (size_t)len, f[i].mode,
                       replace ? f[i].tmp : NULL) != 0) {
            break;
        }
    }
    if (i < n) {
        for (j = 0; j < i; j++) {
            unlink(replace ? f[j].tmp : f[j].path);
        }
        return -1;
    }
    if (!replace) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (rename(f[i].tmp, f[i].path) != 0) {
            ctl_fail("cannot write %s: %s", f[i].path, strerror(errno));
            for (j = i; j < n; j++) {
                unlink(f[j].tmp);
            }
            return -1;
        }
    }
    return 0;
}

/* PREFIX.key (0600) and PREFIX.crt (0644, both less the umask). */
static int
ctl_write_pair(const char *kpath, const char *cpath, EVP_PKEY *key,
               X509 *cert, bool replace)
{
    ctl_file_t f[2] = {
        { .path = kpath, .pem = BIO_new(BIO_s_mem()), .mode = 0600 },
        { .path = cpath, .pem = BIO_new(BIO_s_mem()), .mode = 0644 },
    };
    int rc;
    if (f[0].pem == NULL || f[1].pem == NULL
        || !PEM_write_bio_PrivateKey(f[0].pem, key, NULL, NULL, 0, NULL, NULL)
        || !PEM_write_bio_X509(f[1].pem, cert)) {
        rc = ctl_fail_ssl("cannot encode %s and %s", kpath, cpath);
    } else {
        rc = ctl_install(f, 2, replace);
    }
    BIO_free(f[0].pem);
    BIO_free(f[1].pem);
    return rc;
}

/* Never prompt for a pass phrase: encrypted keys are not supported. */
static int
ctl_no_password(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static FILE *
ctl_open(const char *what, const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        ctl_fail("cannot read %s %s: %s", what, path, strerror(errno));
    }
    return f;
}

/* A certificate in PEM (the first of a bundle), or with der, in DER. */
static X509 *
ctl_read_cert(const char *what, const char *path, bool der)
{
    FILE *f = ctl_open(what, path);
    if (f == NULL) {
        return NULL;
    }
    X509 *x = PEM_read_X509(f, NULL, ctl_no_password, NULL);
    if (x == NULL && der) {
        ERR_clear_error();
        rewind(f);
        x = d2i_X509_fp(f, NULL);
    }
    if (x == NULL) {
        ctl_fail("cannot read %s %s: not a %scertificate", what, path,
                 der ? "" : "PEM ");
    }
    fclose(f);
    return x;
}

static EVP_PKEY *
ctl_read_key(const char *what, const char *path)
{
    FILE *f = ctl_open(what, path);
    if (f == NULL) {
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, ctl_no_password, NULL);
    if (k == NULL) {
        ctl_fail("cannot read %s %s: not an unencrypted PEM private key",
                 what, path);
    }
    fclose(f);
    return k;
}

/* --- keys and certificates --------------------------------------------- */

typedef struct {
    const char *type;           /* --type / --ca value */
    const char *file;           /* DIR/<file>.crt, DIR/<file>.key */
    const char *cn;
} ctl_ca_kind_t;

static const ctl_ca_kind_t ctl_ca_kinds[] = {
    { "user",      "user-ca",      "redoubt user CA" },
    { "db",        "db-ca",        "redoubt db CA" },
    { "db-client", "db-client-ca", "redoubt db-client CA" },
};

static const ctl_ca_kind_t *
ctl_ca_kind(const char *type)
{
    for (size_t i = 0; i < rd_countof(ctl_ca_kinds); i++) {
        if (strcmp(ctl_ca_kinds[i].type, type) == 0) {
            return &ctl_ca_kinds[i];
        }
    }
    return NULL;
}

typedef struct {
    X509      *cert;
    EVP_PKEY  *key;
    char       crt_path[PATH_MAX];
    char       key_path[PATH_MAX];
} ctl_ca_t;

static void
ctl_ca_free(ctl_ca_t *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    ca->cert = NULL;
    ca->key = NULL;
}

static int
ctl_ca_paths(const char *dir, const ctl_ca_kind_t *kind, ctl_ca_t *ca)
{
    char base[PATH_MAX];
    if (ctl_path(base, sizeof(base), dir, "/", kind->file) != 0
        || ctl_path(ca->crt_path, sizeof(ca->crt_path), base, ".crt", "") != 0
        || ctl_path(ca->key_path, sizeof(ca->key_path), base, ".key", "") != 0) {
        return -1;
    }
    return 0;
}

static int
ctl_ca_dir_ok(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        return ctl_fail("cannot use CA directory %s: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        return ctl_fail("cannot use CA directory %s: not a directory", dir);
    }
    return 0;
}

/* Load a CA's certificate and key and check that they belong together. */
static int
ctl_ca_load(const char *dir, const ctl_ca_kind_t *kind, ctl_ca_t *ca)
{
    memset(ca, 0, sizeof(*ca));
    if (ctl_ca_dir_ok(dir) != 0 || ctl_ca_paths(dir, kind, ca) != 0) {
        return -1;
    }
    char what[64];
    snprintf(what, sizeof(what), "%s CA certificate", kind->type);
    ca->cert = ctl_read_cert(what, ca->crt_path, false);
    if (ca->cert == NULL) {
        return -1;
    }
    snprintf(what, sizeof(what), "%s CA key", kind->type);
    ca->key = ctl_read_key(what, ca->key_path);
    if (ca->key == NULL) {
        ctl_ca_free(ca);
        return -1;
    }
    if (X509_check_ca(ca->cert) < 1) {
        ctl_ca_free(ca);
        return ctl_fail("%s is not a CA certificate", ca->crt_path);
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ctl_ca_free(ca);
        return ctl_fail("%s does not match %s", ca->key_path, ca->crt_path);
    }
    return 0;
}

static EVP_PKEY *
ctl_key_new(int rsa_bits, const char *curve)
{
    EVP_PKEY *k = rsa_bits > 0 ? EVP_RSA_gen((unsigned)rsa_bits)
                               : EVP_EC_gen(curve);
    if (k == NULL) {
        ctl_fail_ssl("cannot generate a key");
    }
    return k;
}

/* A new key of the CA key's type: the same curve, or as many RSA bits. */
static EVP_PKEY *
ctl_key_like(const ctl_ca_t *ca)
{
    char group[80];
    size_t len = 0;
    switch (EVP_PKEY_get_base_id(ca->key)) {
    case EVP_PKEY_EC:
        if (!EVP_PKEY_get_group_name(ca->key, group, sizeof(group), &len)) {
            ctl_fail_ssl("%s: cannot read the curve", ca->key_path);
            return NULL;
        }
        return ctl_key_new(0, group);
    case EVP_PKEY_RSA:
        return ctl_key_new(EVP_PKEY_get_bits(ca->key) < 2048
                           ? 2048 : EVP_PKEY_get_bits(ca->key), NULL);
    default:
        ctl_fail("%s: unsupported key type (ECDSA and RSA are)", ca->key_path);
        return NULL;
    }
}

static bool
ctl_key_is_rsa(EVP_PKEY *k)
{
    return EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA;
}

/* A positive random 128-bit serial number. */
static int
ctl_set_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        return ctl_fail_ssl("cannot make a serial number");
    }
    b[0] &= 0x7f;
    b[0] |= 0x01;               /* never zero, always 16 bytes long */
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    int ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok ? 0 : ctl_fail_ssl("cannot set the serial number");
}

/* A certificate with everything but extensions and signature. The issuer
 * is NULL for a self-signed one. */
static X509 *
ctl_cert_new(const X509_NAME *subject, EVP_PKEY *key, X509 *issuer,
             time_t not_before, time_t not_after)
{
    X509 *x = X509_new();
    if (x == NULL) {
        ctl_fail_ssl("cannot make a certificate");
        return NULL;
    }
    const X509_NAME *iname = issuer ? X509_get_subject_name(issuer) : subject;
    if (!X509_set_version(x, X509_VERSION_3)
        || ctl_set_serial(x) != 0
        || !X509_set_subject_name(x, subject)
        || !X509_set_issuer_name(x, iname)
        || !ASN1_TIME_set(X509_getm_notBefore(x), not_before)
        || !ASN1_TIME_set(X509_getm_notAfter(x), not_after)
        || !X509_set_pubkey(x, key)) {
        ctl_fail_ssl("cannot make a certificate");
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Add an extension written as in openssl.cnf ("critical,CA:TRUE"). */
static int
ctl_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    memset(&ctx, 0, sizeof(ctx));
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL || !X509_add_ext(x, e, -1)) {
        X509_EXTENSION_free(e);
        return ctl_fail_ssl("cannot add extension %s = %s", OBJ_nid2sn(nid),
                            value);
    }
    X509_EXTENSION_free(e);
    return 0;
}

/* The extensions of an end-entity certificate issued by ca. */
static int
ctl_leaf_exts(X509 *x, const ctl_ca_t *ca, EVP_PKEY *key, const char *eku)
{
    const char *ku = ctl_key_is_rsa(key)
                     ? "critical,digitalSignature,keyEncipherment"
                     : "critical,digitalSignature";
    if (ctl_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") != 0
        || ctl_ext(x, ca->cert, NID_key_usage, ku) != 0
        || ctl_ext(x, ca->cert, NID_ext_key_usage, eku) != 0
        || ctl_ext(x, ca->cert, NID_subject_key_identifier, "hash") != 0
        || ctl_ext(x, ca->cert, NID_authority_key_identifier,
                   "keyid,issuer") != 0) {
        return -1;
    }
    return 0;
}

static int
ctl_san(X509 *x, const ctl_host_t *hosts, size_t n)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int ok = gens != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_STRING *s = hosts[i].iplen ? ASN1_OCTET_STRING_new()
                                        : ASN1_IA5STRING_new();
        if (g == NULL || s == NULL) {
            GENERAL_NAME_free(g);
            ASN1_STRING_free(s);
            ok = 0;
            break;
        }
        if (hosts[i].iplen) {
            ok = ASN1_OCTET_STRING_set(s, hosts[i].ip, hosts[i].iplen);
        } else {
            ok = ASN1_STRING_set(s, hosts[i].text, -1);
        }
        GENERAL_NAME_set0_value(g, hosts[i].iplen ? GEN_IPADD : GEN_DNS, s);
        if (!ok || !sk_GENERAL_NAME_push(gens, g)) {
            GENERAL_NAME_free(g);
            ok = 0;
        }
    }
    if (ok) {
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
                               X509V3_ADD_DEFAULT) == 1;
    }
    GENERAL_NAMES_free(gens);
    return ok ? 0 : ctl_fail_ssl("cannot add the subjectAltName");
}

static int
ctl_sign(X509 *x, EVP_PKEY *key)
{
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        return ctl_fail_ssl("cannot sign the certificate");
    }
    return 0;
}

/* Write PREFIX.key and PREFIX.crt, replacing older ones atomically. */
static int
ctl_write_out(const char *prefix, EVP_PKEY *key, X509 *cert)
{
    char kpath[PATH_MAX], cpath[PATH_MAX];
    if (ctl_path(kpath, sizeof(kpath), prefix, ".key", "") != 0
        || ctl_path(cpath, sizeof(cpath), prefix, ".crt", "") != 0
        || ctl_write_pair(kpath, cpath, key, cert, true) != 0) {
        return -1;
    }
    printf("wrote %s and %s\n", cpath, kpath);
    return 0;
}

static X509_NAME *
ctl_name_cn(const char *cn)
{
    X509_NAME *name = X509_NAME_new();
    if (name == NULL
        || !X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                       (const unsigned char *)cn, -1, -1, 0)) {
        X509_NAME_free(name);
        ctl_fail_ssl("cannot make the subject name");
        return NULL;
    }
    return name;
}

/* --- ca init ----------------------------------------------------------- */

/* Make one CA: key and self-signed certificate. */
static int
ctl_ca_make(const char *dir, const ctl_ca_kind_t *kind, int rsa_bits,
            bool force)
{
    ctl_ca_t ca;
    memset(&ca, 0, sizeof(ca));
    if (ctl_ca_paths(dir, kind, &ca) != 0) {
        return -1;
    }
    time_t now = time(NULL);
    X509_NAME *name = NULL;
    int rc = -1;
    ca.key = ctl_key_new(rsa_bits, "P-256");
    if (ca.key != NULL) {
        name = ctl_name_cn(kind->cn);
    }
    if (name != NULL) {
        ca.cert = ctl_cert_new(name, ca.key, NULL, now - CTL_SKEW,
                               now + (time_t)CTL_CA_DAYS * CTL_DAY);
    }
    if (ca.cert != NULL
        && ctl_ext(ca.cert, NULL, NID_basic_constraints, "critical,CA:TRUE") == 0
        && ctl_ext(ca.cert, NULL, NID_key_usage,
                   "critical,keyCertSign,cRLSign") == 0
        && ctl_ext(ca.cert, NULL, NID_subject_key_identifier, "hash") == 0
        && ctl_sign(ca.cert, ca.key) == 0
        && ctl_write_pair(ca.key_path, ca.crt_path, ca.key, ca.cert,
                          force) == 0) {
        printf("%s CA: %s, key %s\n", kind->type, ca.crt_path, ca.key_path);
        rc = 0;
    }
    X509_NAME_free(name);
    ctl_ca_free(&ca);
    return rc;
}

/* Without --force, no file of any CA may exist yet. */
static int
ctl_ca_none_exist(const char *dir)
{
    for (size_t i = 0; i < rd_countof(ctl_ca_kinds); i++) {
        ctl_ca_t ca;
        if (ctl_ca_paths(dir, &ctl_ca_kinds[i], &ca) != 0) {
            return -1;
        }
        const char *paths[] = { ca.key_path, ca.crt_path };
        for (size_t j = 0; j < rd_countof(paths); j++) {
            struct stat st;
            if (lstat(paths[j], &st) == 0) {
                return ctl_fail("ca init: %s already exists (--force "
                                "replaces the CAs)", paths[j]);
            }
            if (errno != ENOENT) {
                return ctl_fail("ca init: %s: %s", paths[j], strerror(errno));
            }
        }
    }
    return 0;
}

/* Create dir (0700) unless it exists. *created tells which. */
static int
ctl_mkdir(const char *dir, bool *created)
{
    struct stat st;
    *created = false;
    if (mkdir(dir, 0700) == 0) {
        *created = true;
        return 0;
    }
    if (errno != EEXIST) {
        return ctl_fail("ca init: cannot create %s: %s", dir, strerror(errno));
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return ctl_fail("ca init: %s exists and is not a directory", dir);
    }
    return 0;
}

/* After a failed "ca init" without --force: remove the first n CAs, which
 * this run wrote, and the directory if this run made it. */
static void
ctl_ca_undo(const char *dir, bool created, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ctl_ca_t ca;
        if (ctl_ca_paths(dir, &ctl_ca_kinds[i], &ca) == 0) {
            unlink(ca.key_path);
            unlink(ca.crt_path);
        }
    }
    if (created) {
        rmdir(dir);
    }
}

static int
cmd_ca_init(const char *cmd, int argc, char **argv)
{
    const char *rsa = NULL, *pos[1];
    bool force = false;
    int npos, rsa_bits = 0;
    const ctl_opt_t opts[] = {
        { "--rsa", &rsa, NULL },
        { "--force", NULL, &force },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 1, &npos);
    if (rc != 0) {
        return rc;
    }
    if (npos == 0) {
        return ctl_fail("%s: missing DIR", cmd);
    }
    if (rsa != NULL) {
        if (strcmp(rsa, "2048") != 0 && strcmp(rsa, "4096") != 0) {
            return ctl_fail("%s: bad --rsa '%s': expected 2048 or 4096", cmd,
                            rsa);
        }
        rsa_bits = atoi(rsa);
    }
    const char *dir = pos[0];
    bool created;
    if (ctl_mkdir(dir, &created) != 0) {
        return -1;
    }
    if (!force && ctl_ca_none_exist(dir) != 0) {
        return -1;
    }
    for (size_t i = 0; i < rd_countof(ctl_ca_kinds); i++) {
        if (ctl_ca_make(dir, &ctl_ca_kinds[i], rsa_bits, force) != 0) {
            if (!force) {
                ctl_ca_undo(dir, created, i);
            }
            return -1;
        }
    }
    return 0;
}

/* --- ca export --------------------------------------------------------- */

static int
cmd_ca_export(const char *cmd, int argc, char **argv)
{
    const char *type = NULL, *dir = NULL, *pos[1];
    int npos;
    const ctl_opt_t opts[] = {
        { "--type", &type, NULL },
        { "--dir", &dir, NULL },
        { "--ca-dir", &dir, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    if (type == NULL) {
        return ctl_fail("%s: --type is required (user, db or db-client)", cmd);
    }
    const ctl_ca_kind_t *kind = ctl_ca_kind(type);
    if (kind == NULL) {
        return ctl_fail("%s: bad --type '%s': expected user, db or db-client",
                        cmd, type);
    }
    if (dir == NULL) {
        dir = ctl_default_ca_dir();
    }
    ctl_ca_t ca;
    memset(&ca, 0, sizeof(ca));
    if (ctl_ca_dir_ok(dir) != 0 || ctl_ca_paths(dir, kind, &ca) != 0) {
        return -1;
    }
    char what[64];
    snprintf(what, sizeof(what), "%s CA certificate", kind->type);
    X509 *x = ctl_read_cert(what, ca.crt_path, false);
    if (x == NULL) {
        return -1;
    }
    rc = PEM_write_X509(stdout, x) ? 0 : ctl_fail_ssl("cannot write the "
                                                      "certificate");
    X509_free(x);
    return rc;
}

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
static rd_cycle_t *
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

static const char *
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

static int
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

static int
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
static void
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

static int
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

/* --- db ls, access check ----------------------------------------------- */

#define CTL_MAX_ARGS        1024        /* --command CMD ARG... */

/* A copy of the n bytes at s with control characters (NUL too) escaped,
 * in ctl_put_value's form. */
static char *
ctl_escaped_n(const char *s, size_t len)
{
    size_t n = 1;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    for (; p < end; p++) {
        n += (*p < 0x20 || *p == 0x7f || *p == '\\') ? 4 : 1;
    }
    char *out = rd_alloc(n), *o = out;
    for (p = (const unsigned char *)s; p < end; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            o += snprintf(o, 5, "\\x%02x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

static char *
ctl_escaped(const char *s)
{
    return ctl_escaped_n(s, strlen(s));
}

typedef struct {
    rd_cycle_t     *cycle;
    rd_identity_t   id;
    bool            have_id;
} ctl_access_t;

static void
ctl_access_free(ctl_access_t *a)
{
    if (a->cycle != NULL) {
        rd_cycle_destroy(a->cycle);
        a->cycle = NULL;
    }
    if (a->have_id) {
        rd_identity_free(&a->id);
        a->have_id = false;
    }
}

/* The identity in the certificate at cert, and the configuration at conf,
 * read as the server reads them. The certificate's signature and validity
 * are not checked: the question is what the roles say. */
static int
ctl_access_load(const char *cmd, const char *cert, const char *conf,
                ctl_access_t *a)
{
    memset(a, 0, sizeof(*a));
    if (cert == NULL || *cert == '\0') {
        return ctl_fail("%s: --cert FILE is required", cmd);
    }
    if (conf == NULL || *conf == '\0') {
        return ctl_fail("%s: -c CONFIG is required", cmd);
    }
    X509 *x = ctl_read_cert("certificate", cert, true);
    if (x == NULL) {
        return -1;
    }
    char err[256];
    int rc = rd_identity_from_cert(x, &a->id, err, sizeof(err));
    X509_free(x);
    if (rc != 0) {
        return ctl_fail("%s: %s: %s", cmd, cert, err);
    }
    a->have_id = true;
    a->cycle = ctl_load_config(cmd, conf);
    if (a->cycle == NULL) {
        ctl_access_free(a);
        return -1;
    }
    return 0;
}

static rd_database_t *
ctl_find_db(rd_cycle_t *cycle, const char *name)
{
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        if (strcmp(cycle->databases[i].name, name) == 0) {
            return &cycle->databases[i];
        }
    }
    return NULL;
}

/* --- db ls: the table ---------------------------------------------------- */

typedef struct {
    char *cell[4];
} ctl_row_t;

static void
ctl_put_row(const char *const *cell, const size_t *width, size_t ncols)
{
    for (size_t c = 0; c < ncols; c++) {
        if (c + 1 < ncols) {
            printf("%-*s ", (int)width[c], cell[c]);
        } else {
            printf("%s\n", cell[c]);
        }
    }
}

/* Print rows (cells escaped already) under the heading, and free them. */
static void
ctl_db_table(ctl_row_t *rows, size_t nrows)
{
    enum { NCOLS = 4 };
    const char *head[NCOLS] = { "NAME", "DESCRIPTION", "LABELS",
                                "DB USERS" };
    size_t width[NCOLS];
    for (size_t c = 0; c < NCOLS; c++) {
        width[c] = strlen(head[c]);
        for (size_t i = 0; i < nrows; i++) {
            size_t w = strlen(rows[i].cell[c]);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    ctl_put_row(head, width, NCOLS);
    char *dashes[NCOLS];
    const char *cells[NCOLS];
    for (size_t c = 0; c < NCOLS; c++) {
        dashes[c] = rd_alloc(width[c] + 1);
        memset(dashes[c], '-', width[c]);
        dashes[c][width[c]] = '\0';
        cells[c] = dashes[c];
    }
    ctl_put_row(cells, width, NCOLS);
    for (size_t c = 0; c < NCOLS; c++) {
        free(dashes[c]);
    }
    for (size_t i = 0; i < nrows; i++) {
        for (size_t c = 0; c < NCOLS; c++) {
            cells[c] = rows[i].cell[c];
        }
        ctl_put_row(cells, width, NCOLS);
        for (size_t c = 0; c < NCOLS; c++) {
            free(rows[i].cell[c]);
        }
    }
    free(rows);
}

/* "a,b,c" of the list, or "-" when it is empty. */
static char *
ctl_join(char *const *v, size_t n)
{
    size_t len = 2;
    for (size_t i = 0; i < n; i++) {
        len += strlen(v[i]) + 1;
    }
    char *out = rd_alloc(len);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            strcat(out, ",");
        }
        strcat(out, v[i]);
    }
    if (n == 0) {
        strcpy(out, "-");
    }
    return out;
}

/* db ls -c CONFIG: the roles of the configuration, read here. */
static int
ctl_db_ls_config(const char *cmd, const char *cert, const char *conf)
{
    ctl_access_t a;
    if (ctl_access_load(cmd, cert, conf, &a) != 0) {
        return -1;
    }
    rd_introspect_db_t *list;
    size_t n = rd_introspect_databases(a.cycle, &a.id, &list);
    ctl_row_t *rows = rd_calloc(n + 1, sizeof(ctl_row_t));
    for (size_t i = 0; i < n; i++) {
        rd_introspect_db_t *e = &list[i];
        char *users = ctl_join(e->users, e->nusers);
        rows[i].cell[0] = ctl_escaped(e->db->name);
        rows[i].cell[1] = ctl_escaped(e->description && *e->description
                                      ? e->description : "-");
        rows[i].cell[2] = ctl_escaped(*e->labels ? e->labels : "-");
        rows[i].cell[3] = ctl_escaped(*users ? users : "-");
        free(users);
    }
    rd_introspect_free(list, n);
    ctl_db_table(rows, n);
    ctl_access_free(&a);
    return 0;
}

/* --- the gateway: where it is, and the user's files ----------------------- */

#define CTL_DEFAULT_PORT    "6380"
#define CTL_IO_TIMEOUT_MS   10000
#define CTL_REPLY_MAX       (64u << 20)

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

static void
ctl_gw_free(ctl_gw_t *g)
{
    if (g->have_id) {
        rd_identity_free(&g->id);
        g->have_id = false;
    }
}

/* An option's value, else the environment's; "" counts as not given. */
static const char *
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
static int
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
static int
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
static int
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
static void
ctl_server_name(const ctl_gw_t *g, const char *db, char *buf, size_t n)
{
    if (g->sni != NULL) {
        snprintf(buf, n, "%s", g->sni);
    } else {
        snprintf(buf, n, "%s.%s", db, g->domain);
    }
}

/* --- the gateway: a TLS connection ---------------------------------------- */

typedef struct {
    int      fd;
    SSL_CTX *ctx;
    SSL     *ssl;
} ctl_conn_t;

static void
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
static int
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
static int
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
                             .max_inline = 1u << 16, .max_depth = 8 };
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

/* --- db ls: from a running gateway ---------------------------------------- */

/* A bulk string of the reply as a new C string (NUL bytes escaped). */
static char *
ctl_bulk(const rd_resp_value_t *v)
{
    return ctl_escaped_n(v->str ? v->str : "", v->len);
}

static int
ctl_bad_reply(const char *cmd)
{
    return ctl_fail("%s: the gateway's answer to REDOUBT DATABASES is not "
                    "a list of databases", cmd);
}

/* One database of the reply: an array of field names and values. */
static int
ctl_parse_db(rd_resp_reader_t *rd, ctl_row_t *row)
{
    rd_resp_value_t head, k, v;
    if (rd_resp_read(rd, &head) != 0 || head.type != '*' || head.n < 0
        || head.n % 2) {
        return -1;
    }
    for (int64_t j = 0; j < head.n / 2; j++) {
        if (rd_resp_read(rd, &k) != 0 || k.type != '$' || k.str == NULL) {
            return -1;
        }
        int col = -1;
        if (k.len == 4 && memcmp(k.str, "name", 4) == 0) {
            col = 0;
        } else if (k.len == 11 && memcmp(k.str, "description", 11) == 0) {
            col = 1;
        } else if (k.len == 6 && memcmp(k.str, "labels", 6) == 0) {
            col = 2;
        } else if (k.len == 8 && memcmp(k.str, "db_users", 8) == 0) {
            col = 3;
        }
        if (col < 0 || row->cell[col] != NULL) {
            if (rd_resp_skip(rd) != 0) {    /* a field from a newer server */
                return -1;
            }
            continue;
        }
        if (col == 3) {
            rd_resp_value_t a, u;
            if (rd_resp_read(rd, &a) != 0 || a.type != '*' || a.n < 0) {
                return -1;
            }
            char **users = rd_calloc((size_t)a.n + 1, sizeof(char *));
            int64_t nu = 0;
            for (; nu < a.n; nu++) {
                if (rd_resp_read(rd, &u) != 0 || u.type != '$') {
                    break;
                }
                users[nu] = ctl_bulk(&u);
            }
            if (nu == a.n) {
                row->cell[3] = ctl_join(users, (size_t)nu);
            }
            for (int64_t q = 0; q < nu; q++) {
                free(users[q]);
            }
            free(users);
            if (row->cell[3] == NULL) {
                return -1;
            }
            continue;
        }
        if (rd_resp_read(rd, &v) != 0 || v.type != '$') {
            return -1;
        }
        row->cell[col] = ctl_bulk(&v);
        if (col > 0 && v.len == 0) {
            free(row->cell[col]);
            row->cell[col] = rd_strdup("-");
        }
    }
    if (row->cell[0] == NULL) {
        return -1;
    }
    for (int c = 1; c < 4; c++) {
        if (row->cell[c] == NULL) {
            row->cell[c] = rd_strdup("-");
        }
    }
    return 0;
}

/* What to try when the gateway refused. */
static const char *
ctl_refusal_hint(const char *msg)
{
    if (strstr(msg, "no database selected") != NULL
        || strstr(msg, "access to database") != NULL) {
        return " (the gateway opens a session on a database first: name one "
               "you may reach with --db NAME)";
    }
    if (strncmp(msg, "ERR unknown command", 19) == 0) {
        return " (this gateway does not answer REDOUBT DATABASES: is it "
               "older than redoubtctl?)";
    }
    return "";
}

static int
ctl_db_ls_gateway(const char *cmd, ctl_gw_t *g, const char *db)
{
    if (ctl_gw_valid_now(cmd, g) != 0) {
        return -1;
    }
    char sni[512];
    if (db != NULL || g->sni != NULL) {
        ctl_server_name(g, db, sni, sizeof(sni));
    }
    ctl_conn_t c;
    if (ctl_conn_open(cmd, g, db || g->sni ? sni : NULL, &c) != 0) {
        return -1;
    }
    static const rd_str_t argv[2] = { RD_STR("REDOUBT"), RD_STR("DATABASES") };
    rd_buf_t reply = { 0 };
    int rc = ctl_conn_call(cmd, &c, 2, argv, &reply);
    ctl_conn_close(&c);
    if (rc != 0) {
        rd_buf_free(&reply);
        return -1;
    }

    rd_resp_reader_t rd;
    rd_resp_value_t v;
    rd_resp_reader_init(&rd, rd_buf_rpos(&reply), rd_buf_used(&reply));
    if (rd_resp_read(&rd, &v) != 0) {
        rd_buf_free(&reply);
        return ctl_bad_reply(cmd);
    }
    if (v.type == '-') {
        char *msg = ctl_escaped_n(v.str, v.len);
        ctl_fail("%s: the gateway answered: %s%s", cmd, msg,
                 ctl_refusal_hint(msg));
        free(msg);
        rd_buf_free(&reply);
        return -1;
    }
    if (v.type != '*' || v.n < 0) {
        rd_buf_free(&reply);
        return ctl_bad_reply(cmd);
    }
    ctl_row_t *rows = rd_calloc((size_t)v.n + 1, sizeof(ctl_row_t));
    size_t n = 0;
    for (; n < (size_t)v.n; n++) {
        if (ctl_parse_db(&rd, &rows[n]) != 0) {
            break;
        }
    }
    rd_buf_free(&reply);
    if (n < (size_t)v.n) {
        for (size_t i = 0; i <= n; i++) {
            for (int col = 0; col < 4; col++) {
                free(rows[i].cell[col]);
            }
        }
        free(rows);
        return ctl_bad_reply(cmd);
    }
    ctl_db_table(rows, n);
    return 0;
}

static int
cmd_db_ls(const char *cmd, int argc, char **argv)
{
    const char *conf = NULL, *db = NULL, *pos[1];
    ctl_gw_t g;
    int npos;
    memset(&g, 0, sizeof(g));
    const ctl_opt_t opts[] = {
        CTL_GW_OPTS(g),
        { "-c", &conf, NULL },
        { "--config", &conf, NULL },
        { "--db", &db, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    if (conf != NULL) {
        if (g.proxy || g.key || g.ca || g.sni || g.domain || db) {
            return ctl_fail("%s: -c CONFIG reads the roles here: it takes "
                            "only --cert (the gateway options are for a "
                            "running gateway)", cmd);
        }
        return ctl_db_ls_config(cmd, ctl_env(g.cert, "REDOUBT_CERT"), conf);
    }
    if (db != NULL && *db == '\0') {
        return ctl_fail("%s: --db must not be empty", cmd);
    }
    rc = ctl_gw_load(cmd, &g);
    if (rc == 0) {
        rc = ctl_db_ls_gateway(cmd, &g, db);
    }
    ctl_gw_free(&g);
    return rc;
}

/* --- db connect ------------------------------------------------------------ */

static int
cmd_db_connect(const char *cmd, int argc, char **argv)
{
    const char *pos[1];
    ctl_gw_t g;
    int npos;
    memset(&g, 0, sizeof(g));
    const ctl_opt_t opts[] = {
        CTL_GW_OPTS(g),
        { "--db-user", &g.db_user, NULL },
        { NULL, NULL, NULL }
    };
    /* Everything after the first "--" (that is no option's value) is for
     * redis-cli. */
    int nopt = 0;
    for (; nopt < argc && strcmp(argv[nopt], "--") != 0; nopt++) {
        if (ctl_find_opt(opts, argv[nopt], strlen(argv[nopt])) != NULL) {
            nopt++;
        }
    }
    int nextra = nopt < argc ? argc - nopt - 1 : 0;
    if (nextra > CTL_MAX_ARGS - 20) {
        return ctl_fail("%s: too many arguments for redis-cli", cmd);
    }
    int rc = ctl_parse(cmd, nopt < argc ? nopt : argc, argv, opts, pos, 1,
                       &npos);
    if (rc != 0) {
        return rc;
    }
    const char *db = NULL;
    char sni[512];
    if (ctl_gw_load(cmd, &g) != 0
        || ctl_gw_database(cmd, &g, npos > 0 ? pos[0] : NULL, &db) != 0
        || ctl_gw_valid_now(cmd, &g) != 0) {
        ctl_gw_free(&g);
        return -1;
    }
    ctl_server_name(&g, db, sni, sizeof(sni));

    char *args[CTL_MAX_ARGS + 1];
    int n = 0;
    args[n++] = "redis-cli";
    args[n++] = "--tls";
    args[n++] = "--cert";
    args[n++] = (char *)g.cert;
    args[n++] = "--key";
    args[n++] = (char *)g.key;
    args[n++] = "--cacert";
    args[n++] = (char *)g.ca;
    args[n++] = "--sni";
    args[n++] = sni;
    args[n++] = "-h";
    args[n++] = g.host;
    args[n++] = "-p";
    args[n++] = g.port;
    if (g.db_user != NULL) {
        args[n++] = "--user";
        args[n++] = (char *)g.db_user;
        if (getenv("REDISCLI_AUTH") == NULL) {
            args[n++] = "--askpass";
        }
    }
    for (int i = 0; i < nextra; i++) {
        args[n++] = argv[nopt + 1 + i];
    }
    args[n] = NULL;
    fflush(stdout);
    execvp(args[0], args);
    rc = ctl_fail("%s: cannot run redis-cli: %s (it comes with Redis; on "
                  "Debian: apt-get install redis-tools)", cmd,
                  strerror(errno));
    ctl_gw_free(&g);
    return rc;
}

/* --- db config ------------------------------------------------------------- */

/* s for a POSIX shell: as is when it is plain, else in single quotes. */
static void
ctl_put_sh(const char *s)
{
    bool plain = *s != '\0';
    for (const char *p = s; *p && plain; p++) {
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789_@%+=:,./-", *p) != NULL;
    }
    if (plain) {
        fputs(s, stdout);
        return;
    }
    putchar('\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            fputs("'\\''", stdout);
        } else {
            putchar(*p);
        }
    }
    putchar('\'');
}

/* s as a Python or JavaScript string literal in quotes q. */
static void
ctl_put_lit(const char *s, char q)
{
    putchar(q);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == (unsigned char)q) {
            printf("\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            printf("\\x%02x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar(q);
}

/* s percent-encoded for a URI's query (unreserved bytes and '/' kept). */
static void
ctl_put_pct(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9') || strchr("-._~/", *p) != NULL) {
            putchar(*p);
        } else {
            printf("%%%02X", *p);
        }
    }
}

typedef struct {
    const char *db;
    const char *host;       /* the gateway, as --proxy names it */
    const char *port;
    const char *sni;        /* the server name */
    const char *ca, *cert, *key;    /* absolute paths */
    const char *user;       /* the database user, or NULL */
} ctl_dbconf_t;

/* rediss://SERVERNAME:PORT with the TLS files as redis-py reads them. */
static void
ctl_put_uri(const ctl_dbconf_t *d)
{
    bool v6 = strchr(d->sni, ':') != NULL;
    printf("rediss://%s%s%s:%s?ssl_ca_certs=", v6 ? "[" : "", d->sni,
           v6 ? "]" : "", d->port);
    ctl_put_pct(d->ca);
    fputs("&ssl_certfile=", stdout);
    ctl_put_pct(d->cert);
    fputs("&ssl_keyfile=", stdout);
    ctl_put_pct(d->key);
    fputs("&ssl_cert_reqs=required&ssl_check_hostname=true", stdout);
}

static void
ctl_put_cli(const ctl_dbconf_t *d)
{
    fputs("redis-cli --tls --cert ", stdout);
    ctl_put_sh(d->cert);
    fputs(" --key ", stdout);
    ctl_put_sh(d->key);
    fputs(" --cacert ", stdout);
    ctl_put_sh(d->ca);
    fputs(" --sni ", stdout);
    ctl_put_sh(d->sni);
    fputs(" -h ", stdout);
    ctl_put_sh(d->host);
    printf(" -p %s", d->port);
    if (d->user != NULL) {
        fputs(" --user ", stdout);
        ctl_put_sh(d->user);
        fputs(" --askpass", stdout);
    }
}

static void
ctl_conf_text(const ctl_dbconf_t *d)
{
    const struct { const char *label, *value; } f[] = {
        { "database:", d->db }, { "host:", d->host }, { "port:", d->port },
        { "server name:", d->sni }, { "ca:", d->ca }, { "cert:", d->cert },
        { "key:", d->key }, { "db user:", d->user ? d->user : "-" },
    };
    for (size_t i = 0; i < rd_countof(f); i++) {
        printf("%-13s", f[i].label);
        ctl_put_value(f[i].value);
        putchar('\n');
    }
    printf("%-13s", "uri:");
    ctl_put_uri(d);
    printf("\n%-13s", "redis-cli:");
    ctl_put_cli(d);
    putchar('\n');
}

static void
ctl_conf_env(const ctl_dbconf_t *d)
{
    const struct { const char *name, *value; } f[] = {
        { "REDOUBT_DB_NAME", d->db }, { "REDOUBT_DB_HOST", d->host },
        { "REDOUBT_DB_PORT", d->port }, { "REDOUBT_DB_SERVER_NAME", d->sni },
        { "REDOUBT_DB_CA", d->ca }, { "REDOUBT_DB_CERT", d->cert },
        { "REDOUBT_DB_KEY", d->key }, { "REDOUBT_DB_USER", d->user },
    };
    for (size_t i = 0; i < rd_countof(f); i++) {
        if (f[i].value != NULL) {
            printf("export %s=", f[i].name);
            ctl_put_sh(f[i].value);
            putchar('\n');
        }
    }
}

static void
ctl_conf_python(const ctl_dbconf_t *d)
{
    printf("# redoubt database ");
    ctl_put_lit(d->db, '"');
    printf(" through the gateway at %s:%s (redoubtctl db config)\n",
           d->host, d->port);
    printf("%simport socket\n\nimport redis\n\n", d->user ? "import os\n" : "");
    printf("GATEWAY = ");
    ctl_put_lit(d->host, '"');
    printf("\nSERVER_NAME = ");
    ctl_put_lit(d->sni, '"');
    printf("\n\n"
"# redis-py sends the host it connects to as the TLS server name, which\n"
"# picks the database and is checked against redoubt's certificate: let\n"
"# SERVER_NAME lead to the gateway where DNS (or /etc/hosts) does not.\n"
"_getaddrinfo = socket.getaddrinfo\n"
"\n"
"\n"
"def _to_gateway(host, *args, **kwargs):\n"
"    return _getaddrinfo(GATEWAY if host == SERVER_NAME else host, *args, **kwargs)\n"
"\n"
"\n"
"socket.getaddrinfo = _to_gateway\n"
"\n"
"r = redis.Redis(\n"
"    host=SERVER_NAME,\n"
"    port=%s,\n"
"    ssl=True,\n"
"    ssl_cert_reqs=\"required\",\n"
"    ssl_check_hostname=True,\n"
"    ssl_ca_certs=", d->port);
    ctl_put_lit(d->ca, '"');
    printf(",\n    ssl_certfile=");
    ctl_put_lit(d->cert, '"');
    printf(",\n    ssl_keyfile=");
    ctl_put_lit(d->key, '"');
    if (d->user != NULL) {
        printf(",\n    username=");
        ctl_put_lit(d->user, '"');
        printf(",\n    password=os.environ[\"REDISCLI_AUTH\"],");
    }
    printf("\n)\nprint(r.ping())\n");
}

/* The options of tls.connect(), for node-redis's socket and ioredis's
 * tls, indented by ind spaces. */
static void
ctl_conf_node_tls(const ctl_dbconf_t *d, int ind, bool hostport)
{
    if (hostport) {
        printf("%*shost: ", ind, "");
        ctl_put_lit(d->host, '\'');
        printf(",\n%*sport: %s,\n%*stls: true,\n", ind, "", d->port, ind, "");
    }
    printf("%*sservername: ", ind, "");
    ctl_put_lit(d->sni, '\'');
    printf(",\n%*sca: fs.readFileSync(", ind, "");
    ctl_put_lit(d->ca, '\'');
    printf("),\n%*scert: fs.readFileSync(", ind, "");
    ctl_put_lit(d->cert, '\'');
    printf("),\n%*skey: fs.readFileSync(", ind, "");
    ctl_put_lit(d->key, '\'');
    printf("),\n");
}

static void
ctl_conf_node_auth(const ctl_dbconf_t *d)
{
    if (d->user != NULL) {
        printf("  username: ");
        ctl_put_lit(d->user, '\'');
        printf(",\n  password: process.env.REDISCLI_AUTH,\n");
    }
}

static void
ctl_conf_node_head(const ctl_dbconf_t *d, const char *lib)
{
    printf("// redoubt database ");
    ctl_put_lit(d->db, '\'');
    printf(" through the gateway at %s:%s, with %s\n"
           "// (redoubtctl db config)\n"
           "const fs = require('fs');\n", d->host, d->port, lib);
}

static void
ctl_conf_node(const ctl_dbconf_t *d)
{
    ctl_conf_node_head(d, "node-redis");
    printf("const { createClient } = require('redis');\n\n"
           "const client = createClient({\n"
           "  socket: {\n");
    ctl_conf_node_tls(d, 4, true);
    printf("  },\n"
           "  RESP: 2,  // redoubt speaks RESP2; newer node-redis asks for "
           "RESP3\n");
    ctl_conf_node_auth(d);
    printf("});\n"
           "client.on('error', (err) => console.error(err));\n"
           "client.connect()\n"
           "  .then(() => client.ping())\n"
           "  .then((reply) => { console.log(reply); return client.quit(); });\n");
}

static void
ctl_conf_ioredis(const ctl_dbconf_t *d)
{
    ctl_conf_node_head(d, "ioredis");
    printf("const Redis = require('ioredis');\n\n"
           "const redis = new Redis({\n"
           "  host: ");
    ctl_put_lit(d->host, '\'');
    printf(",\n  port: %s,\n  tls: {\n", d->port);
    ctl_conf_node_tls(d, 4, false);
    printf("  },\n"
           "  enableReadyCheck: false,  // its check is INFO, which redoubt does "
           "not pass to a Redis Cluster\n");
    ctl_conf_node_auth(d);
    printf("});\n"
           "redis.ping()\n"
           "  .then((reply) => { console.log(reply); return redis.quit(); });\n");
}

static int
cmd_db_config(const char *cmd, int argc, char **argv)
{
    const char *format = NULL, *pos[1];
    ctl_gw_t g;
    int npos;
    memset(&g, 0, sizeof(g));
    const ctl_opt_t opts[] = {
        CTL_GW_OPTS(g),
        { "--db-user", &g.db_user, NULL },
        { "--format", &format, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 1, &npos);
    if (rc != 0) {
        return rc;
    }
    static const struct {
        const char *name;
        void      (*put)(const ctl_dbconf_t *d);
    } formats[] = {
        { "text", ctl_conf_text }, { "cmd", NULL }, { "uri", NULL },
        { "env", ctl_conf_env }, { "python", ctl_conf_python },
        { "node", ctl_conf_node }, { "ioredis", ctl_conf_ioredis },
    };
    size_t f = 0;
    if (format != NULL) {
        for (f = 0; f < rd_countof(formats); f++) {
            if (strcmp(formats[f].name, format) == 0) {
                break;
            }
        }
        if (f == rd_countof(formats)) {
            return ctl_fail("%s: bad --format '%s': expected text, cmd, uri, "
                            "env, python, node or ioredis", cmd, format);
        }
    }
    const char *db = NULL;
    char sni[512], ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    rc = 0;
    if (ctl_gw_load(cmd, &g) != 0
        || ctl_gw_database(cmd, &g, npos > 0 ? pos[0] : NULL, &db) != 0) {
        rc = -1;
    } else if (realpath(g.ca, ca) == NULL || realpath(g.cert, cert) == NULL
               || realpath(g.key, key) == NULL) {
        rc = ctl_fail("%s: cannot resolve the path of a file: %s", cmd,
                      strerror(errno));
    }
    if (rc != 0) {
        ctl_gw_free(&g);
        return -1;
    }
    ctl_server_name(&g, db, sni, sizeof(sni));
    ctl_dbconf_t d = {
        .db = db, .host = g.host, .port = g.port, .sni = sni,
        .ca = ca, .cert = cert, .key = key, .user = g.db_user,
    };
    if (formats[f].put != NULL) {
        formats[f].put(&d);
    } else if (strcmp(formats[f].name, "cmd") == 0) {
        ctl_put_cli(&d);
        putchar('\n');
    } else {
        ctl_put_uri(&d);
        putchar('\n');
    }
    ctl_gw_free(&g);
    return 0;
}

/* "1h", "10m", "90s", "1500ms" */
static void
ctl_put_duration(int64_t ms)
{
    static const struct { int64_t ms; const char *unit; } units[] = {
        { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" },
    };
    for (size_t i = 0; i < rd_countof(units); i++) {
        if (ms % units[i].ms == 0) {
            printf("%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    printf("%lldms", (long long)ms);
}

/* The verdict, one field a line, the first line "allowed" or "denied". */
static void
ctl_put_decision(const rd_rbac_decision_t *d, const char *db,
                 const char *user, size_t argc, const rd_str_t *argv,
                 const char *decider, const rd_rbac_limits_t *lim)
{
    puts(d->allowed ? "allowed" : "denied");
    printf("%-12s", "database:");
    ctl_put_value(db);
    printf("\n%-12s", "db user:");
    if (user != NULL) {
        ctl_put_value(user);
    } else {
        fputs("any the roles allow", stdout);
    }
    putchar('\n');
    if (argc > 0) {
        printf("%-12s", "command:");
        for (size_t i = 0; i < argc; i++) {
            fputs(i ? " " : "", stdout);
            ctl_put_value(argv[i].data);
        }
        putchar('\n');
    }
    printf("%-12s", "decided by:");
    if (decider != NULL) {
        fputs(decider, stdout);
    } else if (d->role != NULL) {
        fputs("role \"", stdout);
        ctl_put_value(d->role);
        printf("\", %s rule", d->rule ? d->rule : "its");
        if (d->scope != NULL) {
            printf(" (%s: no db_labels)", d->scope);
        }
    } else {
        fputs("no role allows", stdout);
    }
    printf("\n%-12s", "reason:");
    ctl_put_value(d->reason[0] ? d->reason : "-");
    putchar('\n');
    if (lim != NULL && d->allowed) {
        printf("%-12s", "limits:");
        if (lim->max_session_ttl == 0 && lim->client_idle_timeout == 0) {
            fputs("none", stdout);
        }
        if (lim->max_session_ttl != 0) {
            fputs("max_session_ttl ", stdout);
            ctl_put_duration(lim->max_session_ttl);
        }
        if (lim->client_idle_timeout != 0) {
            fputs(lim->max_session_ttl ? ", " : "", stdout);
            fputs("client_idle_timeout ", stdout);
            ctl_put_duration(lim->client_idle_timeout);
        }
        putchar('\n');
    }
}

/* Returns 0 (allowed), 1 (denied, printed) or -1 (error). */
static int
ctl_access_check(const char *cmd, ctl_access_t *a, const char *dbname,
                 const char *db_user, size_t argc, const rd_str_t *argv)
{
    const rd_identity_t *id = &a->id;
    rd_database_t *db = ctl_find_db(a->cycle, dbname);
    if (db == NULL) {
        return ctl_fail("%s: no database \"%s\" in %s", cmd, dbname,
                        a->cycle->conf_file ? a->cycle->conf_file
                                            : "the configuration");
    }
    rd_rbac_decision_t d;
    rd_rbac_limits_t lim;
    memset(&d, 0, sizeof(d));
    memset(&lim, 0, sizeof(lim));

    /* What the server does before it asks the roles: the route picks the
     * database, and a route's user is the only one AUTH may select. */
    if (id->route_db != NULL && strcmp(id->route_db, db->name) != 0) {
        snprintf(d.reason, sizeof(d.reason), "this certificate is routed "
                 "to the database \"%s\"", id->route_db);
        ctl_put_decision(&d, db->name, db_user ? db_user : id->route_db_user,
                         argc, argv, "the certificate's route", NULL);
        return 1;
    }
    if (id->route_db_user != NULL && db_user != NULL
        && strcmp(id->route_db_user, db_user) != 0) {
        snprintf(d.reason, sizeof(d.reason), "this certificate allows only "
                 "the database user \"%s\"", id->route_db_user);
        ctl_put_decision(&d, db->name, db_user, argc, argv,
                         "the certificate's route", NULL);
        return 1;
    }
    /* The session: as the route's or the given user, else any user. */
    const char *session_user = db_user ? db_user : id->route_db_user;
    int ok = rd_rbac_check_db(a->cycle, id, db, session_user, &d, &lim);
    if (!ok || argc == 0) {
        ctl_put_decision(&d, db->name, session_user, argc, argv, NULL,
                         argc == 0 ? &lim : NULL);
        return ok ? 0 : 1;
    }
    /* A command: as the session's user, "default" before any AUTH. */
    const char *user = session_user ? session_user : "default";
    memset(&d, 0, sizeof(d));
    ok = rd_rbac_check_command(a->cycle, id, db, user, argc, argv, &d);
    ctl_put_decision(&d, db->name, user, argc, argv, NULL, NULL);
    return ok ? 0 : 1;
}

static int
cmd_access_check(const char *cmd, int argc, char **argv)
{
    const char *cert = NULL, *conf = NULL, *db = NULL, *db_user = NULL,
               *command = NULL, *pos[CTL_MAX_ARGS];
    int npos;
    const ctl_opt_t opts[] = {
        { "--cert", &cert, NULL },
        { "-c", &conf, NULL },
        { "--config", &conf, NULL },
        { "--db", &db, NULL },
        { "--db-user", &db_user, NULL },
        { "--command", &command, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, CTL_MAX_ARGS - 1, &npos);
    if (rc != 0) {
        return rc;
    }
    if (npos > 0 && command == NULL) {
        return ctl_fail("%s: unexpected argument '%s' (arguments follow "
                        "--command CMD)", cmd, pos[0]);
    }
    if (db == NULL || *db == '\0') {
        return ctl_fail("%s: --db NAME is required", cmd);
    }
    if ((db_user != NULL && *db_user == '\0')
        || (command != NULL && *command == '\0')) {
        return ctl_fail("%s: --db-user and --command must not be empty", cmd);
    }
    ctl_access_t a;
    if (ctl_access_load(cmd, cert, conf, &a) != 0) {
        return -1;
    }
    size_t n = command ? (size_t)npos + 1 : 0;
    rd_str_t args[CTL_MAX_ARGS];
    for (size_t i = 0; i < n; i++) {
        const char *s = i == 0 ? command : pos[i - 1];
        args[i].data = s;
        args[i].len = strlen(s);
    }
    rc = ctl_access_check(cmd, &a, db, db_user, n, args);
    ctl_access_free(&a);
    /* Denied is exit status 1 like an error, with the verdict on stdout
     * and nothing on stderr. */
    return rc > 0 ? -1 : rc;
}

/* --- main -------------------------------------------------------------- */

typedef struct {
    const char *group;
    const char *name;
    int       (*run)(const char *cmd, int argc, char **argv);
} ctl_cmd_t;

static const ctl_cmd_t ctl_cmds[] = {
    { "ca",   "init",   cmd_ca_init },
    { "ca",   "export", cmd_ca_export },
    { "cert", "server", cmd_cert_server },
    { "cert", "user",   cmd_cert_user },
    { "cert", "show",   cmd_cert_show },
    { "db",   "ls",     cmd_db_ls },
    { "db",   "connect", cmd_db_connect },
    { "db",   "config", cmd_db_config },
    { "access", "check", cmd_access_check },
};

static int
ctl_dispatch(int argc, char **argv)
{
    const char *a = argv[1];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0
        || strcmp(a, "help") == 0) {
        fputs(ctl_usage_text, stdout);
        return 0;
    }
    if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
        printf("redoubtctl %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (a[0] == '-') {
        return ctl_fail("unknown option '%s' (try 'redoubtctl --help')", a);
    }
    bool group = false;
    for (size_t i = 0; i < rd_countof(ctl_cmds); i++) {
        if (strcmp(ctl_cmds[i].group, a) != 0) {
            continue;
        }
        group = true;
        if (argc > 2 && strcmp(ctl_cmds[i].name, argv[2]) == 0) {
            char cmd[32];
            snprintf(cmd, sizeof(cmd), "%s %s", a, argv[2]);
            return ctl_cmds[i].run(cmd, argc - 3, argv + 3) < 0 ? -1 : 0;
        }
    }
    if (group && argc > 2) {
        return ctl_fail("unknown command '%s %s' (try 'redoubtctl --help')", a,
                        argv[2]);
    }
    if (group) {
        return ctl_fail("%s: missing command (try 'redoubtctl --help')", a);
    }
    return ctl_fail("unknown command '%s' (try 'redoubtctl --help')", a);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        ctl_fail("missing command (try 'redoubtctl --help')");
        return 1;
    }
    int rc = ctl_dispatch(argc, argv);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (rc == 0) {
            ctl_fail("cannot write to standard output: %s", strerror(errno));
        }
        rc = -1;
    }
    return rc == 0 ? 0 : 1;
}

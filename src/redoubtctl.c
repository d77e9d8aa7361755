/*
 * redoubtctl.c - the administrator's and user's tool: CAs and certificates.
 *
 *   redoubtctl ca init DIR [--rsa 2048|4096] [--force]
 *   redoubtctl ca export --type user|db|db-client [--dir DIR]
 *   redoubtctl cert server --host NAME[,NAME|IP...] --out PREFIX [...]
 *   redoubtctl cert user --user NAME --roles R1[,R2] --out PREFIX [...]
 *   redoubtctl cert show FILE
 *   redoubtctl db ls --cert FILE -c CONFIG
 *   redoubtctl access check --cert FILE -c CONFIG --db NAME [--db-user U]
 *                           [--command CMD [ARG...]]
 *
 * "db ls" and "access check" load the server's configuration and ask the
 * rbac module (rd_rbac.h), the code the server decides with.
 *
 * Every failure is one line on stderr ("redoubtctl: ...") and exit status
 * 1, usage errors included; success is 0. See redoubtctl(1).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "rd_core.h"
#include "rd_conf.h"
#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_log.h"
#include "rd_module.h"
#include "rd_rbac.h"

#define CTL_HELP            1           /* a command printed its usage */
#define CTL_MAX_VALUES      256         /* per list option, as the reader */
#define CTL_MAX_HOSTS       100
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
    "       redoubtctl cert user --user NAME --roles ROLE[,ROLE...] --out PREFIX\n"
    "                  [--ca-dir DIR] [--db-users U[,U...]|'*']\n"
    "                  [--db-names N[,N...]|'*'] [--db NAME] [--db-user USER]\n"
    "                  [--ttl 8h]\n"
    "       redoubtctl cert show FILE\n"
    "       redoubtctl db ls --cert FILE -c CONFIG\n"
    "       redoubtctl access check --cert FILE -c CONFIG --db NAME\n"
    "                  [--db-user USER] [--command CMD [ARG...]]\n"
    "       redoubtctl -h|--help\n"
    "       redoubtctl -v|--version\n"
    "\n"
    "The CA directory is --ca-dir (or --dir), else $REDOUBT_CA_DIR, else \".\".\n"
    "Durations: \"30m\", \"8h\", \"1d\". Exit status: 0 on success, 1 on any\n"
    "error; \"access check\" exits 1 also when access is denied. See\n"
    "redoubtctl(1).\n";

/* --- errors ------------------------------------------------------------ */

static int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
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

static int
cmd_cert_server(const char *cmd, int argc, char **argv)
{
    const char *dir = NULL, *host = NULL, *out = NULL, *ttl_s = NULL,
               *ca_s = NULL, *pos[1];
    int npos;
    const ctl_opt_t opts[] = {
        { "--ca-dir", &dir, NULL },
        { "--host", &host, NULL },
        { "--out", &out, NULL },
        { "--ttl", &ttl_s, NULL },
        { "--ca", &ca_s, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    if (host == NULL) {
        return ctl_fail("%s: --host is required", cmd);
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
    ctl_list_t names;
    if (ctl_split(cmd, "--host", host, CTL_MAX_HOSTS, &names) != 0) {
        return -1;
    }
    ctl_host_t *hosts = rd_calloc(names.n, sizeof(ctl_host_t));
    rc = 0;
    for (size_t i = 0; rc == 0 && i < names.n; i++) {
        rc = ctl_host(cmd, names.v[i], &hosts[i]);
    }
    ctl_ca_t ca;
    memset(&ca, 0, sizeof(ca));
    if (rc == 0) {
        rc = ctl_ca_load(dir ? dir : ctl_default_ca_dir(), kind, &ca);
    }
    if (rc == 0) {
        rc = ctl_server_issue(cmd, &ca, hosts, names.n, ttl, out);
    }
    ctl_ca_free(&ca);
    free(hosts);
    ctl_list_free(&names);
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

/* A copy of s with control characters escaped (ctl_put_value's form). */
static char *
ctl_escaped(const char *s)
{
    size_t n = 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        n += (*p < 0x20 || *p == 0x7f || *p == '\\') ? 4 : 1;
    }
    char *out = rd_alloc(n), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            o += snprintf(o, 5, "\\x%02x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
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
    /* The server's notes (a role the configuration lacks, ...) are
     * worth seeing here; its debug and info chatter is not. */
    rd_log_level = RD_LOG_WARN;
    rd_modules_init();
    char *cerr = NULL;
    a->cycle = rd_cycle_load(conf, &cerr);
    if (a->cycle == NULL) {
        ctl_fail("%s: %s", cmd, cerr ? cerr : "cannot load the configuration");
        free(cerr);
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

static int
cmd_db_ls(const char *cmd, int argc, char **argv)
{
    const char *cert = NULL, *conf = NULL, *pos[1];
    int npos;
    const ctl_opt_t opts[] = {
        { "--cert", &cert, NULL },
        { "-c", &conf, NULL },
        { "--config", &conf, NULL },
        { NULL, NULL, NULL }
    };
    int rc = ctl_parse(cmd, argc, argv, opts, pos, 0, &npos);
    if (rc != 0) {
        return rc;
    }
    ctl_access_t a;
    if (ctl_access_load(cmd, cert, conf, &a) != 0) {
        return -1;
    }
    rd_cycle_t *cycle = a.cycle;
    const rd_identity_t *id = &a.id;
    enum { NCOLS = 4 };
    const char *head[NCOLS] = { "NAME", "DESCRIPTION", "LABELS",
                                "DB USERS" };
    size_t width[NCOLS];
    for (size_t c = 0; c < NCOLS; c++) {
        width[c] = strlen(head[c]);
    }
    ctl_row_t *rows = rd_calloc(cycle->ndatabases + 1, sizeof(ctl_row_t));
    size_t nrows = 0;
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        rd_database_t *db = &cycle->databases[i];
        /* A routed certificate reaches its database only, as the route's
         * user if it names one (as the server decides). */
        if (id->route_db != NULL && strcmp(id->route_db, db->name) != 0) {
            continue;
        }
        rd_rbac_decision_t d;
        rd_rbac_limits_t lim;
        memset(&d, 0, sizeof(d));
        memset(&lim, 0, sizeof(lim));
        if (!rd_rbac_check_db(cycle, id, db, id->route_db_user, &d, &lim)) {
            continue;
        }
        char labels[4096];
        labels[0] = '\0';
        rd_rbac_db_labels(db, labels, sizeof(labels));
        const char *desc = rd_rbac_db_description(db);

        size_t ulen = 1;
        char **users = NULL;
        size_t nusers = 0;
        if (id->route_db_user != NULL) {
            users = rd_calloc(1, sizeof(char *));
            users[0] = rd_strdup(id->route_db_user);
            nusers = 1;
        } else {
            nusers = rd_rbac_db_users(cycle, id, db, &users);
        }
        for (size_t u = 0; u < nusers; u++) {
            ulen += strlen(users[u]) + 1;
        }
        char *ulist = rd_alloc(ulen);
        ulist[0] = '\0';
        for (size_t u = 0; u < nusers; u++) {
            if (u > 0) {
                strcat(ulist, ",");
            }
            strcat(ulist, users[u]);
        }
        rd_rbac_free_list(users, nusers);

        ctl_row_t *r = &rows[nrows++];
        r->cell[0] = ctl_escaped(db->name);
        r->cell[1] = ctl_escaped(desc && *desc ? desc : "-");
        r->cell[2] = ctl_escaped(*labels ? labels : "-");
        r->cell[3] = ctl_escaped(*ulist ? ulist : "-");
        free(ulist);
        for (size_t c = 0; c < NCOLS; c++) {
            size_t w = strlen(r->cell[c]);
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
    ctl_access_free(&a);
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

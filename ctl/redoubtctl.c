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
 * The code is split by subcommand group, with ctl.h for what the files
 * share: this file has main, the usage, errors, option parsing, values
 * and files; ctl_ca.c "ca" and the key and certificate helpers;
 * ctl_cert.c "cert"; ctl_db.c "db", over the gateway client in ctl_gw.c;
 * ctl_access.c "access check".
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rd_core.h"
#include "rd_conf.h"

#include "ctl.h"

#define CTL_HELP            1           /* a command printed its usage */
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
int
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
int
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

const ctl_opt_t *
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
int
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

const char *
ctl_default_ca_dir(void)
{
    const char *d = getenv("REDOUBT_CA_DIR");
    return d && *d ? d : ".";
}

/* --- values ------------------------------------------------------------ */

void
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
int
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
int
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
int
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

/* A DNS host name: labels of letters, digits and '-' (not at either end),
 * at most 63 bytes each and 253 in all; "*." may lead (a wildcard). The
 * last label is not all digits (that would be a mistyped IP address). */
bool
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

int
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

int
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
int
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
int
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
X509 *
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

EVP_PKEY *
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

/* --- db ls, access check ----------------------------------------------- */

/* A copy of the n bytes at s with control characters (NUL too) escaped,
 * in ctl_put_value's form. */
char *
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

char *
ctl_escaped(const char *s)
{
    return ctl_escaped_n(s, strlen(s));
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

/*
 * ctl_db.c - redoubtctl's "db ls", "db connect" and "db config".
 *
 * "db ls -c" asks the rbac module with the server's configuration; "db
 * ls" without -c asks a running gateway (ctl_gw.c) with the command
 * REDOUBT DATABASES. "db connect" runs redis-cli, "db config" prints the
 * settings and code for client libraries. See redoubtctl.c for the whole
 * tool.
 */

#include "config.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_core.h"
#include "rd_buf.h"
#include "rd_rbac_introspect.h"
#include "rd_resp.h"

#include "ctl.h"

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

int
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

int
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

int
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

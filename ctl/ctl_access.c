/*
 * ctl_access.c - redoubtctl's "access check", and loading a user's
 * identity and the server's configuration for it and for "db ls -c".
 *
 * The decision comes from the rbac module (rd_rbac.h), the code the
 * server decides with. See redoubtctl.c for the whole tool.
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>

#include "rd_core.h"
#include "rd_cycle.h"
#include "rd_cert_identity.h"
#include "rd_rbac.h"
#include "rd_session.h"

#include "ctl.h"

void
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
int
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
    rd_request_t r;
    rd_request_from_argv(&r, argc, argv);   /* as the server sees it */
    ok = rd_rbac_check_command(a->cycle, id, db, user, &r, &d);
    rd_request_unclassify(&r);
    ctl_put_decision(&d, db->name, user, argc, argv, NULL, NULL);
    return ok ? 0 : 1;
}

int
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

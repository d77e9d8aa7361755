/*
 * rd_rbac_introspect.c - the introspect module: REDOUBT DATABASES, the
 * databases the session's identity reaches, answered by redoubt itself.
 *
 *   REDOUBT DATABASES
 *
 * The reply is an array with one element per database the certificate's
 * roles let it open a session on (rd_introspect_databases: the check of
 * the authorize phase, for every database of the configuration the
 * session runs with), in configuration order; each element is an array of
 * field names and values:
 *
 *   1) "name"         2) the database's name
 *   3) "description"  4) its description, "" when none
 *   5) "labels"       6) "k=v,k2=v2", "" when none
 *   7) "db_users"     8) an array: the database users the roles allow
 *                        there, templates expanded, "*" for any
 *
 * "redoubtctl db ls" without -c sends it with the user's own certificate
 * and prints the same table as "db ls -c CONFIG".
 *
 * The command never reaches Redis. Its filter handler runs before the
 * rbac module's (the registry puts this module ahead of rbac): it works
 * before any AUTH, whatever database user the session runs as and
 * whatever command rules the roles have, because it reveals only what the
 * certificate's own roles grant and touches no data. It goes through the
 * reply and audit phases like any command (audited as command "redoubt").
 * While this worker cannot write the audit log, the audit module's
 * filter (ahead of this one in the registry) refuses it with "-ERR
 * redoubt: audit unavailable", under either audit.on_failure. Inside
 * MULTI it is refused (the transaction is then aborted, as Redis aborts
 * one with a rejected command): Redis would queue it, and an EXEC would
 * then not answer it. On a plaintext listener (no identity) it is an
 * error.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_buf.h"
#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_log.h"
#include "rd_rbac.h"
#include "rd_rbac_introspect.h"
#include "rd_resp.h"
#include "rd_session.h"

#define RD_INTROSPECT_LABELS_MAX  8192

size_t
rd_introspect_databases(rd_cycle_t *cycle, const rd_identity_t *id,
                        rd_introspect_db_t **out)
{
    rd_introspect_db_t *list = NULL;
    size_t n = 0;

    *out = NULL;
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        rd_database_t *db = &cycle->databases[i];
        /* A routed certificate reaches its database only, as the route's
         * user if it names one (as the tls and rbac modules decide). */
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
        if (list == NULL) {
            list = rd_calloc(cycle->ndatabases, sizeof(*list));
        }
        rd_introspect_db_t *e = &list[n++];
        e->db = db;
        e->description = rd_rbac_db_description(db);
        e->labels = rd_alloc(RD_INTROSPECT_LABELS_MAX);
        rd_rbac_db_labels(db, e->labels, RD_INTROSPECT_LABELS_MAX);
        if (id->route_db_user != NULL) {
            e->users = rd_calloc(1, sizeof(char *));
            e->users[0] = rd_strdup(id->route_db_user);
            e->nusers = 1;
        } else {
            e->nusers = rd_rbac_db_users(cycle, id, db, &e->users);
        }
    }
    *out = list;
    return n;
}

void
rd_introspect_free(rd_introspect_db_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].labels);
        rd_rbac_free_list(list[i].users, list[i].nusers);
    }
    free(list);
}

static void
rd_introspect_bulk_str(rd_buf_t *b, const char *s)
{
    rd_resp_encode_bulk(b, s, strlen(s));
}

/* REDOUBT DATABASES for s's identity, into b. */
static size_t
rd_introspect_reply(rd_session_t *s, rd_buf_t *b)
{
    rd_introspect_db_t *list;
    size_t n = rd_introspect_databases(s->cycle, s->identity, &list);

    rd_resp_encode_array(b, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        rd_introspect_db_t *e = &list[i];
        rd_resp_encode_array(b, 8);
        rd_introspect_bulk_str(b, "name");
        rd_introspect_bulk_str(b, e->db->name);
        rd_introspect_bulk_str(b, "description");
        rd_introspect_bulk_str(b, e->description ? e->description : "");
        rd_introspect_bulk_str(b, "labels");
        rd_introspect_bulk_str(b, e->labels);
        rd_introspect_bulk_str(b, "db_users");
        rd_resp_encode_array(b, (int64_t)e->nusers);
        for (size_t u = 0; u < e->nusers; u++) {
            rd_introspect_bulk_str(b, e->users[u]);
        }
    }
    rd_introspect_free(list, n);
    return n;
}

static int
rd_introspect_filter(rd_session_t *s, rd_request_t *r)
{
    if (r->argc == 0 || !rd_str_eq_ci(r->argv[0], "redoubt")) {
        return RD_DECLINED;
    }
    if (r->argc < 2 || !rd_str_eq_ci(r->argv[1], "databases")) {
        rd_request_error(r, "ERR redoubt: unknown REDOUBT subcommand: "
                         "REDOUBT DATABASES lists the databases this "
                         "certificate reaches");
        return RD_DONE;
    }
    if (r->argc != 2) {
        rd_request_error(r, "ERR wrong number of arguments for "
                         "'redoubt|databases' command");
        return RD_DONE;
    }
    if (s->txn != RD_TXN_NONE) {
        rd_request_error(r, "ERR redoubt: REDOUBT DATABASES is not allowed "
                         "inside MULTI");
        return RD_DONE;
    }
    if (s->identity == NULL) {
        rd_request_error(r, "ERR redoubt: REDOUBT DATABASES needs a client "
                         "certificate (this listener is plaintext)");
        return RD_DONE;
    }

    rd_buf_t b = { 0 };
    size_t n = rd_introspect_reply(s, &b);
    rd_session_log(s, RD_LOG_INFO, "REDOUBT DATABASES: %zu database%s", n,
                   n == 1 ? "" : "s");
    rd_request_reply_append(r, rd_buf_rpos(&b), rd_buf_used(&b));
    rd_buf_free(&b);
    rd_request_done(r);
    return RD_DONE;
}

static int
rd_introspect_postconfiguration(rd_cycle_t *cycle)
{
    return rd_phase_add(cycle, RD_PHASE_FILTER, rd_introspect_filter);
}

rd_module_t rd_introspect_module = {
    .name = "introspect",
    .postconfiguration = rd_introspect_postconfiguration,
};

/*
 * rd_identity.h - who a session's user is: the identify phase's output
 * (s->identity), which the roles, the audit and the error log read.
 *
 * The tls module fills it from the client certificate
 * (modules/tls/rd_cert_identity.h holds the encoding and the parser);
 * the core only carries it.
 */
#ifndef RD_IDENTITY_H
#define RD_IDENTITY_H

#include <stddef.h>
#include <time.h>

typedef struct rd_identity_s {
    char    *user;
    char   **roles;
    size_t   nroles;
    char   **db_users;          /* trait values; "*" allowed */
    size_t   ndb_users;
    char   **db_names;
    size_t   ndb_names;
    char    *route_db;          /* NULL: no route */
    char    *route_db_user;     /* NULL: none */
    time_t   not_before;
    time_t   not_after;
} rd_identity_t;

void rd_identity_free(rd_identity_t *id);
/* "alice roles=[access,dev] db_users=[alice] db_names=[*] route=db/alice" */
void rd_identity_format(const rd_identity_t *id, char *buf, size_t n);

#endif

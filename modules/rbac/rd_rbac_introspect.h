/*
 * rd_rbac_introspect.h - the databases an identity reaches, as the roles
 * say: "redoubtctl db ls" reads them from a configuration, and a client
 * asks a running gateway with the command REDOUBT DATABASES, which the
 * introspect module answers itself (rd_rbac_introspect.c).
 *
 * One function makes the list for both, so the two can never differ.
 */
#ifndef RD_RBAC_INTROSPECT_H
#define RD_RBAC_INTROSPECT_H

#include "rd_core.h"

struct rd_identity_s;

typedef struct {
    const rd_database_t *db;
    const char          *description;   /* "" when none */
    char                *labels;        /* "k=v,k2=v2", "" when none */
    char               **users;         /* database users, "*" possible */
    size_t               nusers;
} rd_introspect_db_t;

/*
 * The databases of cycle that id may open a session on, in the order of
 * the configuration, each with the database users its roles allow: the
 * check the server makes when a session starts (rd_rbac_check_db). A
 * certificate with a route reaches its route's database only, and with a
 * route user only as that user. Returns the count; *out is the caller's
 * to free with rd_introspect_free (NULL when the count is 0).
 */
size_t rd_introspect_databases(rd_cycle_t *cycle,
                               const struct rd_identity_s *id,
                               rd_introspect_db_t **out);
void   rd_introspect_free(rd_introspect_db_t *list, size_t n);

extern rd_module_t rd_introspect_module;

#endif

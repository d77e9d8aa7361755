/*
 * rd_rbac.h - role-based access: who may reach which database as which
 * database user, and run which commands on which keys.
 *
 * One evaluation, used by the server (authorize and filter phases) and by
 * redoubtctl ("db ls", "access check"), so that an explanation is never a
 * copy of the decision.
 *
 * Rules (redoubt.conf(5) has the long form):
 *  - a role's allow block matches database D as user U when its db_labels
 *    match D's labels (every listed label must match one of its values;
 *    "*" = "*" matches any database) and its db_users (after expanding
 *    {{internal.db_users}} from the identity's traits) contain U or "*";
 *  - a deny block without commands or keys refuses the session when its
 *    db_labels match (and, if it lists db_users, U is among them);
 *    a deny block with commands or keys refuses only those commands or
 *    keys, on the databases its labels match;
 *  - any matching deny beats every allow;
 *  - a command is allowed when one role whose allow matches (D, U) allows
 *    the command (no commands list: every command) and all its keys (no
 *    keys list: every key), and no matching deny names it or its keys.
 */
#ifndef RD_RBAC_H
#define RD_RBAC_H

#include "rd_core.h"

struct rd_identity_s;

typedef struct {
    int          allowed;
    const char  *role;        /* the role whose rule decided, or NULL */
    const char  *rule;        /* "allow", "deny", or NULL */
    const char  *scope;       /* a deny without db_labels: "every
                                 database", else NULL */
    char         reason[256]; /* for the client and the log; never shows
                                 a role's definition */
} rd_rbac_decision_t;

/* Limits from the roles that grant a session; 0 = none. */
typedef struct {
    int64_t max_session_ttl;      /* ms */
    int64_t client_idle_timeout;  /* ms */
} rd_rbac_limits_t;

extern rd_module_t rd_rbac_module;

/* May the identity open a session on db as db_user (NULL: any user the
 * roles allow, for a session that will choose its user with AUTH)? */
int rd_rbac_check_db(rd_cycle_t *cycle, const struct rd_identity_s *id,
                     const rd_database_t *db, const char *db_user,
                     rd_rbac_decision_t *d, rd_rbac_limits_t *lim);

/* May the identity, on db as db_user, run r's command? r is read as the
 * core classified it (r->cmd, rd_request_touched() in rd_session.h); a
 * caller without a session makes r with rd_request_from_argv(). */
int rd_rbac_check_command(rd_cycle_t *cycle, const struct rd_identity_s *id,
                          const rd_database_t *db, const char *db_user,
                          rd_request_t *r, rd_rbac_decision_t *d);

/* The database users the identity may use on db (expanded, "*" possible);
 * the array and strings are the caller's to free with rd_rbac_free_list. */
size_t rd_rbac_db_users(rd_cycle_t *cycle, const struct rd_identity_s *id,
                        const rd_database_t *db, char ***out);
void rd_rbac_free_list(char **list, size_t n);

/* A database's labels as "k=v,k2=v2" and its description (may be ""). */
void rd_rbac_db_labels(const rd_database_t *db, char *buf, size_t n);
const char *rd_rbac_db_description(const rd_database_t *db);

#endif

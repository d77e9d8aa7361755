/*
 * rd_rbac_int.h - the rbac module's private header: the compiled
 * configuration (rd_rbac_conf.c builds it, rd_rbac_eval.c and rd_rbac.c
 * read it) and the functions shared between those files.
 */
#ifndef RD_RBAC_INT_H
#define RD_RBAC_INT_H

#include "rd_core.h"
#include "rd_command.h"

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

/* --- compiled configuration --------------------------------------------- */

typedef enum {
    RD_PAT_ANY = 0,
    RD_PAT_EXACT,
    RD_PAT_GLOB,
    RD_PAT_REGEX
} rd_pat_kind_t;

typedef struct {
    rd_pat_kind_t  kind;
    char          *text;
    pcre2_code    *re;
} rd_pattern_t;

typedef struct {
    char          *name;       /* "*" for the any-database rule */
    rd_pattern_t  *values;
    size_t         nvalues;
} rd_label_rule_t;

/* Commands named in a rule: a category mask and rows of the table. */
typedef struct {
    uint64_t             cats;      /* RD_CAT_* */
    const rd_command_t **cmds;
    size_t               n;
} rd_cmd_list_t;

typedef struct {
    int              present;
    rd_label_rule_t *labels;
    size_t           nlabels;
    char           **db_users;
    size_t           ndb_users;
    char           **db_names;
    size_t           ndb_names;
    rd_cmd_list_t    commands;
    int              has_commands;
    rd_pattern_t    *keys;
    size_t           nkeys;
    rd_pattern_t    *channels;
    size_t           nchannels;
    int              has_channels;
    rd_cmd_list_t    unchecked;     /* allow: run although unverifiable */
} rd_rule_t;

typedef struct {
    char      *name;
    rd_rule_t  allow;
    rd_rule_t  deny;
    int64_t    max_session_ttl;
    int64_t    client_idle_timeout;
} rd_role_t;

typedef struct {
    rd_role_t *roles;
    size_t     nroles;
    int64_t    max_auth_failures;   /* per session; 0: no limit */
} rd_rbac_conf_t;

typedef struct {
    char   **names;        /* label names, parallel to values */
    char   **values;
    size_t   n;
    char    *description;
} rd_rbac_db_conf_t;

extern const rd_directive_t rd_rbac_directives[];

void *rd_rbac_create_main(rd_conf_t *cf);
const char *rd_rbac_init_main(rd_conf_t *cf, void *conf);
void *rd_rbac_create_db(rd_conf_t *cf);
rd_rbac_db_conf_t *rd_rbac_db_conf(const rd_database_t *db);

#endif

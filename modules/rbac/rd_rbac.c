/*
 * rd_rbac.c - the rbac module: roles, database labels, AUTH handling and
 * command and key rules. See rd_rbac.h for the rules in short and
 * redoubt.conf(5) for the long form.
 *
 * Roles are compiled once when the configuration is read: label values
 * and key patterns become exact strings, globs (rd_glob_match: bytes, as
 * Redis matches them) or PCRE2 regular
 * expressions ("^...$"), command lists become a category mask plus names
 * checked against the command table. A bad pattern or an unknown command
 * is a configuration error with file and line.
 *
 * Phases:
 *   authorize  refuse a session whose roles do not reach the database
 *              (or its route user); apply the strictest session limits;
 *   filter     AUTH / HELLO AUTH: pin or check the database user;
 *              every command: command and key rules for the session's
 *              database user;
 *   reply      a successful AUTH makes its user the session's.
 * Plaintext listeners (tls = false, tests only) carry no identity and
 * are not checked.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rd_command.h"
#include "rd_conncmd.h"
#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_log.h"
#include "rd_match.h"
#include "rd_rbac.h"
#include "rd_session.h"
#include "rd_stats.h"
#include "rd_worker.h"

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

/* Per request: the user an AUTH in flight would select; the next
 * request parked behind an AUTH. */
typedef struct rd_rbac_request_s {
    char                      *auth_user;
    rd_request_t              *next_parked;
} rd_rbac_request_t;

/*
 * Per session: the database user the session authenticated as, and the
 * requests that arrived while an AUTH was in flight. Those are checked
 * only once the AUTH's reply says which user they run as (Redis applies
 * them in order, so a pipelined "AUTH alice pw; SET k v" runs SET as
 * alice if the AUTH succeeded, as before if it failed).
 */
typedef struct {
    char          *db_user;
    unsigned       auths_inflight;
    unsigned       auth_failures;
    int            default_allowed; /* may the roles run as "default"? */
    rd_request_t  *parked_head;
    rd_request_t  *parked_tail;
    rd_timer_t     resume;
    rd_session_t  *session;
} rd_rbac_session_t;

static const char *rd_rbac_set_roles(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);
static const char *rd_rbac_set_labels(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);

static const rd_conf_range_t rd_rbac_auth_range = { 0, 1000000 };

static const rd_directive_t rd_rbac_directives[] = {
    { "roles", RD_CONF_MAIN, rd_rbac_set_roles, 0, NULL },
    { "limits.max_auth_failures", RD_CONF_MAIN, rd_conf_set_num,
      offsetof(rd_rbac_conf_t, max_auth_failures), &rd_rbac_auth_range },
    { "labels", RD_CONF_DB, rd_rbac_set_labels, 0, NULL },
    { "description", RD_CONF_DB, rd_conf_set_str,
      offsetof(rd_rbac_db_conf_t, description), NULL },
    rd_null_directive
};

/* --- reading the configuration ------------------------------------------ */

static void
rd_rbac_re_free(void *p)
{
    pcre2_code_free(p);
}

/* "*" any, "^...$" regex, a glob when it has * ? or [, else exact. */
static const char *
rd_rbac_pattern(rd_conf_t *cf, const char *text, rd_pattern_t *p)
{
    size_t n = strlen(text);
    p->text = rd_pstrdup(cf->pool, text);

    if (strcmp(text, "*") == 0) {
        p->kind = RD_PAT_ANY;
    } else if (n >= 2 && text[0] == '^' && text[n - 1] == '$') {
        int code;
        PCRE2_SIZE off;
        /* Byte mode: keys are binary and a pattern must not be dodged by
         * a subject that is not valid UTF-8. */
        p->re = pcre2_compile((PCRE2_SPTR)text, n, (uint32_t)rd_regex_flags(),
                              &code, &off, NULL);
        if (p->re == NULL) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof(msg));
            return rd_psprintf(cf->pool, "bad regular expression \"%s\" at "
                               "offset %zu: %s", text, (size_t)off,
                               (char *)msg);
        }
        rd_pool_cleanup_add(cf->pool, rd_rbac_re_free, p->re);
        p->kind = RD_PAT_REGEX;
    } else if (strpbrk(text, "*?[")) {
        p->kind = RD_PAT_GLOB;
    } else {
        p->kind = RD_PAT_EXACT;
    }
    return NULL;
}

/* 1: p matches the bytes s[0..len), 0: it does not, -1: the regex engine
 * gave up (a match limit): a deny rule takes that as a match. */
static int
rd_rbac_match(const rd_pattern_t *p, const char *s, size_t len)
{
    switch (p->kind) {
    case RD_PAT_ANY:
        return 1;
    case RD_PAT_EXACT:
        return strlen(p->text) == len && memcmp(p->text, s, len) == 0;
    case RD_PAT_GLOB:
        return rd_glob_match(p->text, strlen(p->text), s, len);
    case RD_PAT_REGEX:
        return rd_regex_exec(p->re, s, len);
    }
    return 0;
}

/* A setting that is a string or an array of strings, as a list. */
static const char *
rd_rbac_strings(rd_conf_t *cf, const config_setting_t *s, char ***out,
                size_t *n)
{
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_STRING) {
        *out = rd_palloc(cf->pool, sizeof(char *));
        (*out)[0] = rd_pstrdup(cf->pool, config_setting_get_string(s));
        *n = 1;
        return NULL;
    }
    if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
        return "must be a string or an array of strings [ \"a\", \"b\" ]";
    }
    int len = config_setting_length(s);
    *out = rd_palloc(cf->pool, (size_t)(len ? len : 1) * sizeof(char *));
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            return "must be a string or an array of strings";
        }
        const char *v = config_setting_get_string(e);
        if (*v == '\0') {
            return "must not contain empty strings";
        }
        (*out)[i] = rd_pstrdup(cf->pool, v);
    }
    *n = (size_t)len;
    return NULL;
}

static const char *
rd_rbac_templates_ok(rd_conf_t *cf, char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strstr(v[i], "{{") == NULL) {
            continue;
        }
        if (strcmp(v[i], "{{internal.db_users}}") != 0
            && strcmp(v[i], "{{internal.db_names}}") != 0)
        {
            return rd_psprintf(cf->pool, "unknown template \"%s\" (known: "
                               "{{internal.db_users}}, "
                               "{{internal.db_names}})", v[i]);
        }
    }
    return NULL;
}

static const char *
rd_rbac_read_labels(rd_conf_t *cf, const config_setting_t *g, rd_rule_t *r)
{
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        return "must be a group { name = \"value\"; ... }";
    }
    size_t n = (size_t)config_setting_length(g);
    r->labels = rd_palloc(cf->pool, (n ? n : 1) * sizeof(rd_label_rule_t));
    r->nlabels = n;
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        rd_label_rule_t *l = &r->labels[i];
        char **vals;
        const char *err = rd_rbac_strings(cf, e, &vals, &l->nvalues);
        if (err) {
            rd_conf_error(cf, e, config_setting_name(e), "%s", err);
            return NULL;
        }
        l->name = rd_pstrdup(cf->pool, config_setting_name(e));
        if (strcmp(l->name, "*") == 0
            && !(l->nvalues == 1 && strcmp(vals[0], "*") == 0))
        {
            rd_conf_error(cf, e, "*", "the wildcard label matches any "
                          "database and takes only \"*\" as its value");
            return NULL;
        }
        l->values = rd_palloc(cf->pool, (l->nvalues ? l->nvalues : 1)
                                        * sizeof(rd_pattern_t));
        for (size_t k = 0; k < l->nvalues; k++) {
            err = rd_rbac_pattern(cf, vals[k], &l->values[k]);
            if (err) {
                rd_conf_error(cf, e, l->name, "%s", err);
                return NULL;
            }
        }
    }
    return NULL;
}

static const char *
rd_rbac_read_commands(rd_conf_t *cf, const config_setting_t *s,
                      rd_cmd_list_t *l)
{
    char **v;
    size_t n;
    const char *err = rd_rbac_strings(cf, s, &v, &n);
    if (err) {
        return err;
    }
    l->cmds = rd_palloc(cf->pool, (n ? n : 1) * sizeof(rd_command_t *));
    for (size_t i = 0; i < n; i++) {
        if (v[i][0] == '@') {
            uint64_t cat = rd_acl_category(v[i]);
            if (cat == 0) {
                return rd_psprintf(cf->pool, "unknown command category "
                                   "\"%s\"", v[i]);
            }
            l->cats |= cat;
            continue;
        }
        rd_str_t name = { v[i], strlen(v[i]) };
        const rd_command_t *c = rd_command_find(name);
        if (c == NULL) {
            return rd_psprintf(cf->pool, "unknown command \"%s\"", v[i]);
        }
        l->cmds[l->n++] = c;
    }
    return NULL;
}

static const char *
rd_rbac_read_patterns(rd_conf_t *cf, const config_setting_t *s,
                      rd_pattern_t **out, size_t *n)
{
    char **v;
    const char *err = rd_rbac_strings(cf, s, &v, n);
    if (err) {
        return err;
    }
    *out = rd_palloc(cf->pool, (*n ? *n : 1) * sizeof(rd_pattern_t));
    for (size_t k = 0; k < *n && err == NULL; k++) {
        err = rd_rbac_pattern(cf, v[k], &(*out)[k]);
    }
    return err;
}

static const char *
rd_rbac_read_rule(rd_conf_t *cf, const config_setting_t *g, rd_rule_t *r,
                  int deny)
{
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        return "must be a group { ... }";
    }
    r->present = 1;
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(e);
        const char *err = NULL;

        if (strcmp(name, "db_labels") == 0) {
            err = rd_rbac_read_labels(cf, e, r);
            if (cf->error) {
                return NULL;
            }
        } else if (strcmp(name, "db_users") == 0) {
            err = rd_rbac_strings(cf, e, &r->db_users, &r->ndb_users);
            if (err == NULL) {
                err = rd_rbac_templates_ok(cf, r->db_users, r->ndb_users);
            }
        } else if (strcmp(name, "db_names") == 0) {
            err = rd_rbac_strings(cf, e, &r->db_names, &r->ndb_names);
            if (err == NULL) {
                err = rd_rbac_templates_ok(cf, r->db_names, r->ndb_names);
            }
        } else if (strcmp(name, "commands") == 0) {
            err = rd_rbac_read_commands(cf, e, &r->commands);
            r->has_commands = 1;
        } else if (strcmp(name, "keys") == 0) {
            err = rd_rbac_read_patterns(cf, e, &r->keys, &r->nkeys);
        } else if (strcmp(name, "channels") == 0) {
            err = rd_rbac_read_patterns(cf, e, &r->channels, &r->nchannels);
            r->has_channels = 1;
        } else if (strcmp(name, "unchecked") == 0 && !deny) {
            err = rd_rbac_read_commands(cf, e, &r->unchecked);
        } else {
            err = deny ? "unknown directive (known: db_labels, db_users, "
                         "db_names, commands, keys, channels)"
                       : "unknown directive (known: db_labels, db_users, "
                         "db_names, commands, keys, channels, unchecked)";
        }
        if (err) {
            rd_conf_error(cf, e, name, "%s", err);
            return NULL;
        }
    }
    return NULL;
}

static const char *
rd_rbac_read_options(rd_conf_t *cf, const config_setting_t *g, rd_role_t *role)
{
    static const rd_conf_range_t range = { 1000, 366LL * 86400000 };
    static const rd_directive_t ttl = { "max_session_ttl", 0, NULL,
        offsetof(rd_role_t, max_session_ttl), &range };
    static const rd_directive_t idle = { "client_idle_timeout", 0, NULL,
        offsetof(rd_role_t, client_idle_timeout), &range };

    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        return "must be a group { ... }";
    }
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(e);
        const rd_directive_t *d = strcmp(name, ttl.name) == 0 ? &ttl
                                : strcmp(name, idle.name) == 0 ? &idle : NULL;
        const char *err = d ? rd_conf_set_msec(cf, e, d, role)
                            : "unknown directive (known: max_session_ttl, "
                              "client_idle_timeout)";
        if (err) {
            rd_conf_error(cf, e, name, "%s", err);
            return NULL;
        }
    }
    return NULL;
}

static const char *
rd_rbac_read_role(rd_conf_t *cf, const config_setting_t *g, rd_role_t *role)
{
    if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
        return "each role must be a group { name = ...; allow = ...; }";
    }
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(e);
        const char *err = NULL;

        if (strcmp(name, "name") == 0) {
            if (config_setting_type(e) != CONFIG_TYPE_STRING
                || *config_setting_get_string(e) == '\0')
            {
                err = "must be a non-empty string";
            } else {
                role->name = rd_pstrdup(cf->pool, config_setting_get_string(e));
            }
        } else if (strcmp(name, "allow") == 0) {
            err = rd_rbac_read_rule(cf, e, &role->allow, 0);
        } else if (strcmp(name, "deny") == 0) {
            err = rd_rbac_read_rule(cf, e, &role->deny, 1);
        } else if (strcmp(name, "options") == 0) {
            err = rd_rbac_read_options(cf, e, role);
        } else {
            err = "unknown directive (known: name, allow, deny, options)";
        }
        if (cf->error) {
            return NULL;
        }
        if (err) {
            rd_conf_error(cf, e, name, "%s", err);
            return NULL;
        }
    }
    if (role->name == NULL) {
        rd_conf_error(cf, g, "roles", "each role needs a name");
    }
    return NULL;
}

static const char *
rd_rbac_set_roles(rd_conf_t *cf, const config_setting_t *s,
                  const rd_directive_t *d, void *conf)
{
    rd_rbac_conf_t *c = conf;
    if (config_setting_type(s) != CONFIG_TYPE_LIST) {
        return "must be a list: ( { name = ...; }, ... )";
    }
    size_t n = (size_t)config_setting_length(s);
    c->roles = rd_palloc(cf->pool, (n ? n : 1) * sizeof(rd_role_t));
    c->nroles = n;
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
        const char *err = rd_rbac_read_role(cf, g, &c->roles[i]);
        if (err || cf->error) {
            return err;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->roles[j].name, c->roles[i].name) == 0) {
                rd_conf_error(cf, g, "roles", "the role \"%s\" is defined "
                              "twice", c->roles[i].name);
                return NULL;
            }
        }
    }
    return NULL;
}

static const char *
rd_rbac_set_labels(rd_conf_t *cf, const config_setting_t *s,
                   const rd_directive_t *d, void *conf)
{
    rd_rbac_db_conf_t *c = conf;
    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        return "must be a group { env = \"prod\"; ... }";
    }
    size_t n = (size_t)config_setting_length(s);
    c->names = rd_palloc(cf->pool, (n ? n : 1) * sizeof(char *));
    c->values = rd_palloc(cf->pool, (n ? n : 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            rd_conf_error(cf, e, config_setting_name(e), "a label's value "
                          "must be a string");
            return NULL;
        }
        if (strchr(config_setting_name(e), '*')) {
            rd_conf_error(cf, e, config_setting_name(e), "a database's label "
                          "name cannot contain '*'");
            return NULL;
        }
        c->names[i] = rd_pstrdup(cf->pool, config_setting_name(e));
        c->values[i] = rd_pstrdup(cf->pool, config_setting_get_string(e));
    }
    c->n = n;
    return NULL;
}

static void *
rd_rbac_create_main(rd_conf_t *cf)
{
    rd_rbac_conf_t *c = rd_palloc(cf->pool, sizeof(rd_rbac_conf_t));
    c->max_auth_failures = RD_CONF_UNSET;
    return c;
}

static const char *
rd_rbac_init_main(rd_conf_t *cf, void *conf)
{
    rd_rbac_conf_t *c = conf;
    (void)cf;
    if (c->max_auth_failures == RD_CONF_UNSET) {
        c->max_auth_failures = 10;
    }
    return NULL;
}

static void *
rd_rbac_create_db(rd_conf_t *cf)
{
    return rd_palloc(cf->pool, sizeof(rd_rbac_db_conf_t));
}

static rd_rbac_db_conf_t *
rd_rbac_db_conf(const rd_database_t *db)
{
    return db->ctx[rd_rbac_module.index];
}

/* --- evaluation ------------------------------------------------------- */

static const rd_role_t *
rd_rbac_role(rd_rbac_conf_t *c, const char *name)
{
    for (size_t i = 0; i < c->nroles; i++) {
        if (strcmp(c->roles[i].name, name) == 0) {
            return &c->roles[i];
        }
    }
    return NULL;
}

static int
rd_rbac_labels_match(const rd_rule_t *r, const rd_database_t *db)
{
    rd_rbac_db_conf_t *dc = rd_rbac_db_conf(db);

    if (r->nlabels == 0) {
        return 0;           /* a rule without labels reaches nothing */
    }
    for (size_t i = 0; i < r->nlabels; i++) {
        const rd_label_rule_t *l = &r->labels[i];
        if (strcmp(l->name, "*") == 0) {
            continue;
        }
        const char *have = NULL;
        for (size_t k = 0; k < dc->n; k++) {
            if (strcmp(dc->names[k], l->name) == 0) {
                have = dc->values[k];
                break;
            }
        }
        if (have == NULL) {
            return 0;
        }
        int any = 0;
        for (size_t k = 0; k < l->nvalues && !any; k++) {
            any = rd_rbac_match(&l->values[k], have, strlen(have)) > 0;
        }
        if (!any) {
            return 0;
        }
    }
    return 1;
}

/* Does the (expanded) db_users list hold user? */
static int
rd_rbac_users_match(const rd_rule_t *r, const rd_identity_t *id,
                    const char *user)
{
    for (size_t i = 0; i < r->ndb_users; i++) {
        const char *u = r->db_users[i];
        if (strcmp(u, "{{internal.db_users}}") == 0
            || strcmp(u, "{{internal.db_names}}") == 0)
        {
            int users = strcmp(u, "{{internal.db_users}}") == 0;
            char **t = users ? id->db_users : id->db_names;
            size_t n = users ? id->ndb_users : id->ndb_names;
            for (size_t k = 0; k < n; k++) {
                if (strcmp(t[k], "*") == 0 || strcmp(t[k], user) == 0) {
                    return 1;
                }
            }
        } else if (strcmp(u, "*") == 0 || strcmp(u, user) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Does the db_users list name anybody once its templates are expanded? */
static int
rd_rbac_has_users(const rd_rule_t *r, const rd_identity_t *id)
{
    for (size_t i = 0; i < r->ndb_users; i++) {
        const char *u = r->db_users[i];
        if (strcmp(u, "{{internal.db_users}}") == 0) {
            if (id->ndb_users > 0) {
                return 1;
            }
        } else if (strcmp(u, "{{internal.db_names}}") == 0) {
            if (id->ndb_names > 0) {
                return 1;
            }
        } else {
            return 1;
        }
    }
    return 0;
}

static int
rd_rbac_deny_is_session(const rd_rule_t *r)
{
    return !r->has_commands && r->nkeys == 0 && !r->has_channels;
}

/*
 * Does a deny rule apply to db as db_user (NULL: a session that has not
 * chosen its user)? A deny rule without db_labels applies to every
 * database, unless it says nothing at all ("deny = { };" is no rule).
 */
static int
rd_rbac_deny_applies(const rd_rule_t *r, const rd_identity_t *id,
                     const rd_database_t *db, const char *db_user)
{
    if (!r->present) {
        return 0;
    }
    if (r->nlabels == 0) {
        if (rd_rbac_deny_is_session(r) && r->ndb_users == 0) {
            return 0;
        }
    } else if (!rd_rbac_labels_match(r, db)) {
        return 0;
    }
    return r->ndb_users == 0
           || (db_user != NULL && rd_rbac_users_match(r, id, db_user));
}

/* A role a certificate names but the configuration lacks is logged once
 * per process, not at every evaluation. */
static void
rd_rbac_unknown_role(const char *role, const char *user)
{
    static char *seen[64];
    static size_t nseen;

    for (size_t i = 0; i < nseen; i++) {
        if (strcmp(seen[i], role) == 0) {
            return;
        }
    }
    if (nseen < rd_countof(seen)) {
        seen[nseen++] = rd_strdup(role);
    }
    rd_log_notice("role \"%s\" (of \"%s\") is not configured and is "
                  "ignored", role, user);
}

/* The roles of the identity that this configuration knows. */
static size_t
rd_rbac_known_roles(rd_rbac_conf_t *c, const rd_identity_t *id,
                    const rd_role_t **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < id->nroles && n < max; i++) {
        const rd_role_t *r = rd_rbac_role(c, id->roles[i]);
        if (r) {
            out[n++] = r;
        } else {
            rd_rbac_unknown_role(id->roles[i], id->user);
        }
    }
    return n;
}

#define RD_RBAC_MAX_ROLES 256

int
rd_rbac_check_db(rd_cycle_t *cycle, const rd_identity_t *id,
                 const rd_database_t *db, const char *db_user,
                 rd_rbac_decision_t *d, rd_rbac_limits_t *lim)
{
    rd_rbac_conf_t *c = rd_main_conf(cycle, rd_rbac_module);
    const rd_role_t *roles[RD_RBAC_MAX_ROLES];
    size_t n = rd_rbac_known_roles(c, id, roles, RD_RBAC_MAX_ROLES);

    memset(d, 0, sizeof(*d));
    if (lim) {
        memset(lim, 0, sizeof(*lim));
    }
    if (db_user) {
        snprintf(d->reason, sizeof(d->reason), "access to database \"%s\" as "
                 "user \"%s\" denied", db->name, db_user);
    } else {
        snprintf(d->reason, sizeof(d->reason), "access to database \"%s\" "
                 "denied", db->name);
    }
    if (n == 0) {
        d->allowed = 0;
        return 0;
    }

    /* Any matching session-level deny beats every allow. */
    for (size_t i = 0; i < n; i++) {
        const rd_rule_t *r = &roles[i]->deny;
        if (rd_rbac_deny_is_session(r)
            && rd_rbac_deny_applies(r, id, db, db_user))
        {
            d->role = roles[i]->name;
            d->rule = "deny";
            d->scope = r->nlabels == 0 ? "every database" : NULL;
            return 0;
        }
    }

    for (size_t i = 0; i < n; i++) {
        const rd_rule_t *r = &roles[i]->allow;
        if (!r->present || !rd_rbac_labels_match(r, db)) {
            continue;
        }
        if (db_user ? !rd_rbac_users_match(r, id, db_user)
                    : !rd_rbac_has_users(r, id)) {
            continue;
        }
        if (!d->allowed) {
            d->allowed = 1;
            d->role = roles[i]->name;
            d->rule = "allow";
        }
        /* The strictest limits of the granting roles apply. */
        if (lim) {
            const rd_role_t *ro = roles[i];
            if (ro->max_session_ttl > 0 && (lim->max_session_ttl == 0
                || ro->max_session_ttl < lim->max_session_ttl)) {
                lim->max_session_ttl = ro->max_session_ttl;
            }
            if (ro->client_idle_timeout > 0 && (lim->client_idle_timeout == 0
                || ro->client_idle_timeout < lim->client_idle_timeout)) {
                lim->client_idle_timeout = ro->client_idle_timeout;
            }
        }
    }
    if (d->allowed) {
        d->reason[0] = '\0';
    }
    return d->allowed;
}

/* Is cmd in the list, by name (a row, or its container's) or, unless
 * by_name, by one of its categories? */
static int
rd_rbac_command_in(const rd_cmd_list_t *l, const rd_command_t *cmd,
                   int by_name)
{
    if (!by_name && (cmd->acl & l->cats)) {
        return 1;
    }
    for (size_t i = 0; i < l->n; i++) {
        const rd_command_t *c = l->cmds[i];
        if (c == cmd) {
            return 1;
        }
        /* "client" names every CLIENT subcommand. */
        size_t len = strlen(c->name);
        if (c->subcommands && strncmp(cmd->name, c->name, len) == 0
            && cmd->name[len] == '|') {
            return 1;
        }
    }
    return 0;
}

/* Does one of the patterns match v? A regex that gives up counts as a
 * match for a deny rule (deny 1) and as none for an allow rule. */
static int
rd_rbac_pattern_in(const rd_pattern_t *p, size_t n, rd_str_t v, int deny)
{
    for (size_t i = 0; i < n; i++) {
        int m = rd_rbac_match(&p[i], v.data, v.len);
        if (m > 0 || (m < 0 && deny)) {
            return 1;
        }
    }
    return 0;
}

static void
rd_rbac_printable(char *out, size_t n, rd_str_t s)
{
    size_t k = 0;
    for (size_t i = 0; i < s.len && k + 4 < n; i++) {
        unsigned char ch = (unsigned char)s.data[i];
        out[k++] = (ch >= 0x20 && ch < 0x7f && ch != '\'') ? (char)ch : '?';
    }
    if (s.len > 0 && k + 4 >= n) {
        out[k++] = '.';
        out[k++] = '.';
        out[k++] = '.';
    }
    out[k] = '\0';
}

/*
 * Does SORT / SORT_RO read keys named by a pattern? Options are walked as
 * Redis's sortCommand walks them; like Redis's own ACL (which refuses
 * these to users without access to every key), any GET and a BY whose
 * pattern holds '*' count.
 */
static int
rd_rbac_sort_patterns(size_t argc, const rd_str_t *argv)
{
    for (size_t j = 2; j < argc; j++) {
        size_t left = argc - j - 1;
        if (rd_str_eq_ci(argv[j], "limit") && left >= 2) {
            j += 2;
        } else if (rd_str_eq_ci(argv[j], "by") && left >= 1) {
            if (memchr(argv[j + 1].data, '*', argv[j + 1].len)) {
                return 1;
            }
            j++;
        } else if (rd_str_eq_ci(argv[j], "get") && left >= 1) {
            return 1;
        } else if (rd_str_eq_ci(argv[j], "store") && left >= 1) {
            j++;
        }
    }
    return 0;
}

/* The channels a command publishes or subscribes to: argv[from..argc) or
 * just argv[1]; patterns for PSUBSCRIBE. 0 when it names none. */
static int
rd_rbac_channels(const rd_command_t *cmd, size_t argc, size_t *from,
                 size_t *to, int *patterns)
{
    static const struct {
        const char *name;
        int         all;        /* every argument from 1, or only argv[1] */
        int         patterns;
    } pubsub[] = {
        { "publish", 0, 0 }, { "spublish", 0, 0 }, { "subscribe", 1, 0 },
        { "ssubscribe", 1, 0 }, { "psubscribe", 1, 1 },
    };
    if (cmd == NULL || !(cmd->acl & RD_CAT_PUBSUB) || argc < 2) {
        return 0;
    }
    for (size_t i = 0; i < rd_countof(pubsub); i++) {
        if (strcmp(cmd->name, pubsub[i].name) == 0) {
            *from = 1;
            *to = pubsub[i].all ? argc : 2;
            *patterns = pubsub[i].patterns;
            return 1;
        }
    }
    return 0;
}

/* A rule with anything finer than "this database as this user". */
static int
rd_rbac_rule_restricts(const rd_rule_t *r)
{
    return r->present && (r->has_commands || r->nkeys || r->has_channels);
}

#define RD_RBAC_MAX_KEYS 4096

/* What a request touches, as far as the command table can tell. */
typedef struct {
    const rd_command_t *cmd;
    size_t             *idx;
    size_t              idx_small[64];
    int                 nkeys;
    const char         *unverifiable;  /* why redoubt cannot tell what the
                                          command does, or NULL */
    const char         *keys_unknown;  /* why its keys cannot be named */
    int                 has_channels;
    size_t              chan_from, chan_to;
    int                 chan_patterns;
} rd_rbac_req_t;

static void
rd_rbac_classify(rd_rbac_req_t *q, size_t argc, const rd_str_t *argv)
{
    const rd_command_t *cmd = rd_command_lookup(argc, argv);

    memset(q, 0, sizeof(*q));
    q->idx = q->idx_small;
    q->cmd = cmd;
    if (cmd == NULL) {
        q->unverifiable = "unknown command";
        return;
    }
    unsigned opts = RD_KEYS_TOUCHED;
    int n = rd_command_keys_ex(cmd, argc, argv, opts, q->idx, NULL,
                               rd_countof(q->idx_small));
    if (n > (int)rd_countof(q->idx_small) && n <= RD_RBAC_MAX_KEYS) {
        q->idx = rd_alloc((size_t)n * sizeof(size_t));
        n = rd_command_keys_ex(cmd, argc, argv, opts, q->idx, NULL,
                               (size_t)n);
    }
    q->nkeys = n < 0 || n > RD_RBAC_MAX_KEYS ? 0 : n;
    q->has_channels = rd_rbac_channels(cmd, argc, &q->chan_from, &q->chan_to,
                                       &q->chan_patterns);

    if (cmd->acl & RD_CAT_SCRIPTING) {
        q->unverifiable = "scripts";
    } else if (cmd->acl & (RD_CAT_ADMIN | RD_CAT_DANGEROUS)) {
        q->unverifiable = "admin";
    }
    if (n < 0 || n > RD_RBAC_MAX_KEYS || !rd_command_keys_exact(cmd)) {
        q->keys_unknown = "keys";
    } else if (cmd->nspecs == 0 && (cmd->acl & RD_CAT_KEYSPACE)) {
        q->keys_unknown = "keys";      /* KEYS, SCAN, FLUSHDB, SELECT ... */
    } else if ((strcmp(cmd->name, "sort") == 0
                || strcmp(cmd->name, "sort_ro") == 0)
               && rd_rbac_sort_patterns(argc, argv))
    {
        q->keys_unknown = "key patterns";
    }
    if (q->unverifiable == NULL) {
        q->unverifiable = q->keys_unknown;
    }
}

static void
rd_rbac_req_free(rd_rbac_req_t *q)
{
    if (q->idx != q->idx_small) {
        free(q->idx);
    }
}

/* The first key (or channel) of the request that pats matches (want 1)
 * or does not match (want 0); -1 when none. */
static ssize_t
rd_rbac_find_key(const rd_rbac_req_t *q, const rd_str_t *argv,
                 const rd_pattern_t *pats, size_t npats, int want)
{
    for (int k = 0; k < q->nkeys; k++) {
        if (rd_rbac_pattern_in(pats, npats, argv[q->idx[k]], want) == want) {
            return (ssize_t)q->idx[k];
        }
    }
    return -1;
}

/* The first channel the rule does not allow (want 0) or denies (want 1).
 * A PSUBSCRIBE pattern is allowed only when it is one of the rule's
 * patterns, literally (as Redis's ACL has it), and denied when any deny
 * channel rule applies: a pattern may reach any channel. */
static ssize_t
rd_rbac_find_channel(const rd_rbac_req_t *q, const rd_str_t *argv,
                     const rd_rule_t *r, int want)
{
    if (!q->has_channels) {
        return -1;
    }
    for (size_t i = q->chan_from; i < q->chan_to; i++) {
        int in;
        if (q->chan_patterns) {
            in = want;          /* deny: always; allow: literal match */
            if (!want) {
                in = 0;
                for (size_t k = 0; k < r->nchannels && !in; k++) {
                    in = strlen(r->channels[k].text) == argv[i].len
                         && memcmp(r->channels[k].text, argv[i].data,
                                   argv[i].len) == 0;
                }
            }
        } else {
            in = rd_rbac_pattern_in(r->channels, r->nchannels, argv[i], want);
        }
        if (in == want) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/*
 * The command phase's decision. In order:
 *  1. a deny rule that applies names the command, one of its keys or
 *     channels: refused;
 *  2. when a role that applies to the database has command, key or
 *     channel rules, a request redoubt cannot see through (unknown and
 *     module commands, scripts and functions, @admin and @dangerous
 *     commands, keys the command table cannot name, SORT by patterns) is
 *     allowed only by a role that names it explicitly: by name in its
 *     commands, or in its unchecked list (names or categories);
 *  3. one role whose allow applies must allow the command, every key
 *     and every channel (no list: all; a role with rules but no channels
 *     list: no channel, as Redis's resetchannels).
 */
int
rd_rbac_check_command(rd_cycle_t *cycle, const rd_identity_t *id,
                      const rd_database_t *db, const char *db_user,
                      size_t argc, const rd_str_t *argv,
                      rd_rbac_decision_t *d)
{
    rd_rbac_conf_t *c = rd_main_conf(cycle, rd_rbac_module);
    const rd_role_t *roles[RD_RBAC_MAX_ROLES];
    size_t n = rd_rbac_known_roles(c, id, roles, RD_RBAC_MAX_ROLES);
    char name[80], what[80];
    rd_rbac_req_t q;
    ssize_t at;

    memset(d, 0, sizeof(*d));
    rd_rbac_printable(name, sizeof(name), argv[0]);
    for (char *p = name; *p; p++) {
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    }
    rd_rbac_classify(&q, argc, argv);
    const rd_command_t *cmd = q.cmd;

    /* 1. Deny rules with commands, keys or channels. */
    int restricted = 0;
    for (size_t i = 0; i < n && !d->rule; i++) {
        const rd_rule_t *r = &roles[i]->deny;
        if (rd_rbac_deny_is_session(r)
            || !rd_rbac_deny_applies(r, id, db, db_user)) {
            continue;
        }
        restricted = 1;
        if (r->has_commands && cmd
            && rd_rbac_command_in(&r->commands, cmd, 0)) {
            snprintf(d->reason, sizeof(d->reason), "command '%s' is not "
                     "allowed on database \"%s\" as user \"%s\"", name,
                     db->name, db_user);
        } else if (r->nkeys
                   && (at = rd_rbac_find_key(&q, argv, r->keys, r->nkeys,
                                             1)) >= 0) {
            rd_rbac_printable(what, sizeof(what), argv[at]);
            snprintf(d->reason, sizeof(d->reason), "key '%s' is not "
                     "allowed on database \"%s\" as user \"%s\"", what,
                     db->name, db_user);
        } else if (r->has_channels
                   && (at = rd_rbac_find_channel(&q, argv, r, 1)) >= 0) {
            rd_rbac_printable(what, sizeof(what), argv[at]);
            snprintf(d->reason, sizeof(d->reason), "channel '%s' is not "
                     "allowed on database \"%s\" as user \"%s\"", what,
                     db->name, db_user);
        } else {
            continue;
        }
        d->role = roles[i]->name;
        d->rule = "deny";
        d->scope = r->nlabels == 0 ? "every database" : NULL;
    }
    if (d->rule) {
        goto done;
    }
    for (size_t i = 0; i < n && !restricted; i++) {
        const rd_rule_t *r = &roles[i]->allow;
        restricted = rd_rbac_rule_restricts(r)
                     && rd_rbac_labels_match(r, db);
    }

    /* 2 and 3: one allow that grants the database, the user, the
     * command, its keys and channels. */
    const char *why = NULL;
    for (size_t i = 0; i < n && !d->allowed; i++) {
        const rd_rule_t *r = &roles[i]->allow;
        if (!r->present || !rd_rbac_labels_match(r, db)
            || !rd_rbac_users_match(r, id, db_user)) {
            continue;
        }
        if (restricted && q.unverifiable
            && !(cmd && (rd_rbac_command_in(&r->commands, cmd, 1)
                         || rd_rbac_command_in(&r->unchecked, cmd, 0))))
        {
            why = "unverifiable";
            continue;
        }
        if (r->has_commands
            && (cmd == NULL || !rd_rbac_command_in(&r->commands, cmd, 0))) {
            why = "command";
            continue;
        }
        if (r->nkeys && q.keys_unknown) {
            /* Naming the command does not name its keys. */
            why = "unknown-keys";
            continue;
        }
        if (r->nkeys
            && (at = rd_rbac_find_key(&q, argv, r->keys, r->nkeys, 0)) >= 0) {
            why = "key";
            rd_rbac_printable(what, sizeof(what), argv[at]);
            continue;
        }
        if (restricted && q.has_channels
            && (at = rd_rbac_find_channel(&q, argv, r, 0)) >= 0) {
            why = "channel";
            rd_rbac_printable(what, sizeof(what), argv[at]);
            continue;
        }
        d->allowed = 1;
        d->role = roles[i]->name;
        d->rule = "allow";
    }
    if (!d->allowed) {
        if (why && strcmp(why, "key") == 0) {
            snprintf(d->reason, sizeof(d->reason), "key '%s' is not allowed "
                     "on database \"%s\" as user \"%s\"", what, db->name,
                     db_user);
        } else if (why && strcmp(why, "channel") == 0) {
            snprintf(d->reason, sizeof(d->reason), "channel '%s' is not "
                     "allowed on database \"%s\" as user \"%s\"", what,
                     db->name, db_user);
        } else if (why && strcmp(why, "unknown-keys") == 0) {
            snprintf(d->reason, sizeof(d->reason), "the keys of command '%s' "
                     "cannot be checked (%s) on database \"%s\" as user "
                     "\"%s\"", name, q.keys_unknown, db->name, db_user);
        } else if (why && strcmp(why, "unverifiable") == 0) {
            snprintf(d->reason, sizeof(d->reason), "what command '%s' "
                     "touches cannot be checked (%s) on database \"%s\" as "
                     "user \"%s\"", name, q.unverifiable, db->name, db_user);
        } else {
            snprintf(d->reason, sizeof(d->reason), "command '%s' is not "
                     "allowed on database \"%s\" as user \"%s\"", name,
                     db->name, db_user);
        }
    }

done:
    rd_rbac_req_free(&q);
    return d->allowed;
}

size_t
rd_rbac_db_users(rd_cycle_t *cycle, const rd_identity_t *id,
                 const rd_database_t *db, char ***out)
{
    rd_rbac_conf_t *c = rd_main_conf(cycle, rd_rbac_module);
    const rd_role_t *roles[RD_RBAC_MAX_ROLES];
    size_t n = rd_rbac_known_roles(c, id, roles, RD_RBAC_MAX_ROLES);
    char **list = NULL;
    size_t count = 0, cap = 0;

#define RD_PUSH(v)                                                        \
    do {                                                                  \
        int dup = 0;                                                      \
        for (size_t q = 0; q < count; q++) {                              \
            dup |= strcmp(list[q], (v)) == 0;                             \
        }                                                                 \
        if (!dup) {                                                       \
            if (count == cap) {                                           \
                cap = cap ? cap * 2 : 8;                                  \
                list = rd_realloc(list, cap * sizeof(char *));            \
            }                                                             \
            list[count++] = rd_strdup(v);                                 \
        }                                                                 \
    } while (0)

    for (size_t i = 0; i < n; i++) {
        const rd_rule_t *r = &roles[i]->allow;
        if (!r->present || !rd_rbac_labels_match(r, db)) {
            continue;
        }
        for (size_t k = 0; k < r->ndb_users; k++) {
            const char *u = r->db_users[k];
            if (strcmp(u, "{{internal.db_users}}") == 0) {
                for (size_t t = 0; t < id->ndb_users; t++) {
                    RD_PUSH(id->db_users[t]);
                }
            } else if (strcmp(u, "{{internal.db_names}}") == 0) {
                for (size_t t = 0; t < id->ndb_names; t++) {
                    RD_PUSH(id->db_names[t]);
                }
            } else {
                RD_PUSH(u);
            }
        }
    }
#undef RD_PUSH
    *out = list;
    return count;
}

void
rd_rbac_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
}

void
rd_rbac_db_labels(const rd_database_t *db, char *buf, size_t n)
{
    rd_rbac_db_conf_t *dc = rd_rbac_db_conf(db);
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < dc->n && k < n; i++) {
        k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", i ? "," : "",
                              dc->names[i], dc->values[i]);
    }
}

const char *
rd_rbac_db_description(const rd_database_t *db)
{
    rd_rbac_db_conf_t *dc = rd_rbac_db_conf(db);
    return dc->description ? dc->description : "";
}

/* --- phases --------------------------------------------------------------- */

static void
rd_rbac_session_expired(rd_timer_t *t)
{
    rd_session_t *s = t->data;
    rd_session_log(s, RD_LOG_INFO, "max_session_ttl reached, closing");
    rd_session_close(s, "max_session_ttl reached");
}

static void
rd_rbac_session_cleanup(rd_session_t *s, void *data)
{
    rd_rbac_session_t *rs = data;
    rd_timer_del(&s->worker->loop.timers, &rs->resume);
    free(rs->db_user);
    free(rs);
}

static int rd_rbac_check(rd_session_t *s, rd_request_t *r);

/* The AUTH ahead of them was answered: check the parked requests in
 * order, until one is another AUTH that must be answered first. */
static void
rd_rbac_resume(rd_timer_t *t)
{
    rd_rbac_session_t *rs = t->data;
    rd_session_t *s = rs->session;

    while (rs->parked_head && rs->auths_inflight == 0 && !s->conn->closed) {
        rd_request_t *r = rs->parked_head;
        rd_rbac_request_t *rr = rd_request_ctx(r, rd_rbac_module);
        rs->parked_head = rr->next_parked;
        if (rs->parked_head == NULL) {
            rs->parked_tail = NULL;
        }
        rr->next_parked = NULL;
        if (rd_rbac_check(s, r) == RD_DONE) {
            continue;           /* answered (refused) here */
        }
        rd_request_continue(r);
    }
}

static rd_rbac_session_t *
rd_rbac_session(rd_session_t *s)
{
    rd_rbac_session_t *rs = rd_session_ctx(s, rd_rbac_module);
    if (rs == NULL) {
        rs = rd_calloc(1, sizeof(*rs));
        rs->session = s;
        rs->resume.handler = rd_rbac_resume;
        rs->resume.data = rs;
        rd_session_ctx(s, rd_rbac_module) = rs;
        rd_session_cleanup_add(s, rd_rbac_session_cleanup, rs);
    }
    return rs;
}

static void
rd_rbac_set_user(rd_session_t *s, const char *user)
{
    rd_rbac_session_t *rs = rd_rbac_session(s);
    char *u = rd_strdup(user);
    free(rs->db_user);
    rs->db_user = u;
    s->db_user = u;
}

static int
rd_rbac_authorize(rd_session_t *s, rd_request_t *r)
{
    const rd_identity_t *id = s->identity;
    rd_rbac_decision_t d;
    rd_rbac_limits_t lim;

    if (id == NULL || s->database == NULL) {
        return RD_DECLINED;         /* plaintext test listener */
    }
    const char *route_user = id->route_db_user;
    if (!rd_rbac_check_db(s->cycle, id, s->database, route_user, &d, &lim)) {
        rd_session_log(s, RD_LOG_INFO, "%s%s%s%s",
                    d.reason, d.role ? " (role \"" : "",
                    d.role ? d.role : "", d.role ? "\")" : "");
        rd_stats_refusal(RD_REFUSAL_ACCESS_DENIED);
        rd_session_refuse(s, "ERR redoubt: %s", d.reason);
        return RD_ERROR;
    }
    /* Until an AUTH succeeds Redis runs the connection as "default",
     * route or not; a route only pins what AUTH may select. */
    rd_rbac_set_user(s, "default");
    rd_rbac_decision_t dd;
    rd_rbac_session(s)->default_allowed =
        rd_rbac_check_db(s->cycle, id, s->database, "default", &dd, NULL);

    /* The strictest session limits of the granting roles. */
    rd_worker_t *w = s->worker;
    if (lim.max_session_ttl > 0) {
        int64_t left = rd_timer_armed(&s->expiry_timer)
                       ? s->expiry_timer.when - w->loop.now : INT64_MAX;
        if (lim.max_session_ttl < left) {
            s->expiry_timer.handler = rd_rbac_session_expired;
            s->expiry_timer.data = s;
            rd_timer_add(&w->loop.timers, &s->expiry_timer, w->loop.now,
                         lim.max_session_ttl);
        }
    }
    if (lim.client_idle_timeout > 0
        && (s->idle_timeout == 0 || lim.client_idle_timeout < s->idle_timeout))
    {
        s->idle_timeout = lim.client_idle_timeout;
    }
    return RD_OK;
}

static void
rd_rbac_free_request_ctx(void *ctx)
{
    rd_rbac_request_t *rr = ctx;
    free(rr->auth_user);
    free(rr);
}

static rd_rbac_request_t *
rd_rbac_request(rd_request_t *r)
{
    rd_rbac_request_t *rr = rd_request_ctx(r, rd_rbac_module);
    if (rr == NULL) {
        rr = rd_calloc(1, sizeof(*rr));
        rd_request_ctx(r, rd_rbac_module) = rr;
    }
    return rr;
}

/* Remember the user a request selects when Redis accepts it (AUTH, HELLO
 * AUTH: that user; RESET: "default"); requests after it wait for its
 * reply. */
static void
rd_rbac_pending_auth(rd_request_t *r, const char *user, size_t len)
{
    rd_rbac_request_t *rr = rd_rbac_request(r);
    free(rr->auth_user);
    rr->auth_user = rd_strndup(user, len);
    rd_rbac_session(r->session)->auths_inflight++;
}

/* A refused or failed AUTH; after limits.max_auth_failures of them the
 * session is closed once that reply is written. */
static void
rd_rbac_auth_failed(rd_session_t *s, rd_request_t *r)
{
    rd_rbac_session_t *rs = rd_rbac_session(s);
    rd_rbac_conf_t *c = rd_main_conf(s->cycle, rd_rbac_module);
    rs->auth_failures++;
    if (c->max_auth_failures > 0 && rs->auth_failures >= c->max_auth_failures
        && !r->close_after)
    {
        rd_session_log(s, RD_LOG_INFO, "%u failed AUTH attempts, "
                    "closing", rs->auth_failures);
        /* Nothing after r is answered: the core frees the requests that
         * wait here (they all came after r) once r's reply is out. */
        r->close_after = 1;
        rs->parked_head = NULL;
        rs->parked_tail = NULL;
    }
}

/* Refuse an AUTH here: counted as a failed attempt. */
static int
rd_rbac_auth_refuse(rd_session_t *s, rd_request_t *r, const char *fmt,
                    const char *arg)
{
    rd_stats_refusal(RD_REFUSAL_AUTH_DENIED);
    rd_rbac_auth_failed(s, r);
    rd_request_error(r, fmt, arg);
    return RD_DONE;
}

/*
 * AUTH and HELLO ... AUTH (r->conncmd: parsed as Redis parses them, so
 * the user checked here is the user Redis will authenticate). With a
 * route user the database user is fixed: another name is refused here
 * and a password-only AUTH is sent as that user. Without one, the named
 * user is checked against the roles now. Returns RD_DONE when the
 * request was answered here.
 */
static int
rd_rbac_auth(rd_session_t *s, rd_request_t *r)
{
    const rd_identity_t *id = s->identity;
    const rd_conncmd_t *cc = &r->conncmd;
    rd_str_t u = rd_conncmd_user(cc, r->argv);

    if (id->route_db_user) {
        if (cc->kind == RD_CONN_AUTH && cc->user_at == 0) {
            /* AUTH password: the pinned user, with that password. */
            rd_str_t argv[3] = { r->argv[0],
                                 { id->route_db_user,
                                   strlen(id->route_db_user) },
                                 r->argv[1] };
            rd_request_set_command(r, 3, argv);
            u = rd_conncmd_user(&r->conncmd, r->argv);
        }
        if (u.len != strlen(id->route_db_user)
            || memcmp(u.data, id->route_db_user, u.len) != 0)
        {
            rd_session_log(s, RD_LOG_INFO, "AUTH as another user than the "
                           "certificate's \"%s\" refused",
                           id->route_db_user);
            return rd_rbac_auth_refuse(s, r, "ERR redoubt: this certificate "
                                       "allows only the database user "
                                       "\"%s\"", id->route_db_user);
        }
        rd_rbac_pending_auth(r, u.data, u.len);
        return RD_DECLINED;
    }

    char user[256];
    if (u.len >= sizeof(user) || memchr(u.data, '\0', u.len)) {
        return rd_rbac_auth_refuse(s, r, "ERR redoubt: %s",
                                   "invalid user name");
    }
    memcpy(user, u.data, u.len);
    user[u.len] = '\0';

    rd_rbac_decision_t d;
    if (!rd_rbac_check_db(s->cycle, id, s->database, user, &d, NULL)) {
        rd_session_log(s, RD_LOG_INFO, "%s", d.reason);
        return rd_rbac_auth_refuse(s, r, "ERR redoubt: %s", d.reason);
    }
    rd_rbac_pending_auth(r, user, u.len);
    return RD_DECLINED;
}

/* The checks of the filter phase: RD_DONE (refused, answered) or
 * RD_DECLINED (go on). */
static int
rd_rbac_check(rd_session_t *s, rd_request_t *r)
{
    const rd_conncmd_t *cc = &r->conncmd;
    rd_rbac_session_t *rs = rd_rbac_session(s);

    if (rd_conncmd_has_auth(cc)) {
        return rd_rbac_auth(s, r);
    }
    if (cc->kind == RD_CONN_QUIT || cc->kind == RD_CONN_HELLO
        || cc->kind == RD_CONN_AUTH
        || (s->txn == RD_TXN_REFUSED
            && (cc->kind == RD_CONN_EXEC || cc->kind == RD_CONN_DISCARD)))
    {
        /* (The EXEC or DISCARD of a refused MULTI never reaches Redis:
         * the core answers it.) */
        /* HELLO without AUTH changes no user; an AUTH without arguments
         * gets Redis's arity error. */
        return RD_DECLINED;
    }

    if (!rs->default_allowed && strcmp(s->db_user, "default") == 0) {
        /* Not authenticated as anybody the roles allow: Redis's own
         * answer to a client that has not authenticated. */
        const rd_command_t *cmd = rd_command_lookup(r->argc, r->argv);
        if (cmd == NULL || !(cmd->flags & RD_CMD_NO_AUTH)) {
            rd_stats_refusal(RD_REFUSAL_NOPERM);
            rd_request_error(r, "NOAUTH Authentication required.");
            return RD_DONE;
        }
    }

    rd_rbac_decision_t d;
    if (!rd_rbac_check_command(s->cycle, s->identity, s->database,
                               s->db_user, r->argc, r->argv, &d))
    {
        rd_session_log(s, RD_LOG_INFO, "%s", d.reason);
        rd_stats_refusal(RD_REFUSAL_NOPERM);
        rd_request_error(r, "NOPERM redoubt: %s", d.reason);
        return RD_DONE;
    }
    if (cc->kind == RD_CONN_RESET) {
        /* RESET runs the connection as "default" again. */
        rd_rbac_pending_auth(r, "default", 7);
    }
    return RD_DECLINED;
}

static int
rd_rbac_filter(rd_session_t *s, rd_request_t *r)
{
    if (s->identity == NULL) {
        return RD_DECLINED;
    }
    rd_rbac_session_t *rs = rd_rbac_session(s);
    if ((rs->auths_inflight > 0 || rs->parked_head)
        && r->conncmd.kind != RD_CONN_QUIT)
    {
        /* Which user this runs as depends on the AUTH ahead of it. */
        rd_rbac_request_t *rr = rd_rbac_request(r);
        if (rs->parked_tail) {
            ((rd_rbac_request_t *)rd_request_ctx(rs->parked_tail,
                rd_rbac_module))->next_parked = r;
        } else {
            rs->parked_head = r;
        }
        rs->parked_tail = r;
        rr->next_parked = NULL;
        return RD_AGAIN;
    }
    return rd_rbac_check(s, r);
}

/* Did Redis accept r's credentials? Only the real success reply counts:
 * +OK for AUTH (not +QUEUED), the HELLO map, +RESET. */
static int
rd_rbac_accepted(const rd_request_t *r)
{
    const char *h = r->reply_head;
    unsigned n = r->reply_head_len;
    switch (r->conncmd.kind) {
    case RD_CONN_AUTH:
        return n >= 5 && memcmp(h, "+OK\r\n", 5) == 0;
    case RD_CONN_HELLO:
        return n >= 1 && (h[0] == '*' || h[0] == '%');
    case RD_CONN_RESET:
        return n >= 8 && memcmp(h, "+RESET\r\n", 8) == 0;
    default:
        return 0;
    }
}

/* The reply says which user the session runs as from now on. */
static int
rd_rbac_reply(rd_session_t *s, rd_request_t *r)
{
    rd_rbac_request_t *rr = rd_request_ctx(r, rd_rbac_module);
    if (rr == NULL || rr->auth_user == NULL) {
        return RD_DECLINED;
    }
    rd_rbac_session_t *rs = rd_rbac_session(s);
    if (rd_rbac_accepted(r)) {
        rd_rbac_set_user(s, rr->auth_user);
        rd_session_log(s, RD_LOG_INFO, "database user is now \"%s\"",
                       rr->auth_user);
    } else if (r->conncmd.kind != RD_CONN_RESET
               && !(r->reply_head_len >= 8
                    && memcmp(r->reply_head, "-NOPROTO", 8) == 0)) {
        rd_stats_refusal(RD_REFUSAL_AUTH_FAILED);
        rd_rbac_auth_failed(s, r);
    }
    if (rs->auths_inflight > 0 && --rs->auths_inflight == 0
        && rs->parked_head)
    {
        /* Not from inside the reply loop: from the timers, next. */
        rd_timer_add(&s->worker->loop.timers, &rs->resume, s->worker->loop.now,
                     0);
    }
    return RD_DECLINED;
}

static int
rd_rbac_postconfiguration(rd_cycle_t *cycle)
{
    rd_phase_add(cycle, RD_PHASE_AUTHORIZE, rd_rbac_authorize);
    rd_phase_add(cycle, RD_PHASE_FILTER, rd_rbac_filter);
    return rd_phase_add(cycle, RD_PHASE_REPLY, rd_rbac_reply);
}

rd_module_t rd_rbac_module = {
    .name = "rbac",
    .directives = rd_rbac_directives,
    .create_conf = { rd_rbac_create_main, NULL, rd_rbac_create_db },
    .init_conf = { rd_rbac_init_main, NULL, NULL },
    .postconfiguration = rd_rbac_postconfiguration,
    .free_request_ctx = rd_rbac_free_request_ctx,
};

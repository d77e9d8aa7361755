/*
 * rd_rbac_conf.c - the rbac module's configuration: roles, their rules
 * and the databases' labels, read and compiled.
 *
 * Roles are compiled once when the configuration is read: label values
 * and key patterns become exact strings, globs (rd_glob_match: bytes, as
 * Redis matches them) or PCRE2 regular
 * expressions ("^...$"), command lists become a category mask plus names
 * checked against the command table. A bad pattern or an unknown command
 * is a configuration error with file and line.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_match.h"
#include "rd_rbac.h"
#include "rd_rbac_int.h"

static const char *rd_rbac_set_roles(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);
static const char *rd_rbac_set_labels(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);

static const rd_conf_range_t rd_rbac_auth_range = { 0, 1000000 };

const rd_directive_t rd_rbac_directives[] = {
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

void *
rd_rbac_create_main(rd_conf_t *cf)
{
    rd_rbac_conf_t *c = rd_palloc(cf->pool, sizeof(rd_rbac_conf_t));
    c->max_auth_failures = RD_CONF_UNSET;
    return c;
}

const char *
rd_rbac_init_main(rd_conf_t *cf, void *conf)
{
    rd_rbac_conf_t *c = conf;
    (void)cf;
    if (c->max_auth_failures == RD_CONF_UNSET) {
        c->max_auth_failures = 10;
    }
    return NULL;
}

void *
rd_rbac_create_db(rd_conf_t *cf)
{
    return rd_palloc(cf->pool, sizeof(rd_rbac_db_conf_t));
}

rd_rbac_db_conf_t *
rd_rbac_db_conf(const rd_database_t *db)
{
    return db->ctx[rd_rbac_module.index];
}

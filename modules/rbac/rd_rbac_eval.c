/*
 * rd_rbac_eval.c - the rbac module's evaluation: may an identity reach a
 * database as a database user (rd_rbac_check_db), may it run a command
 * there (rd_rbac_check_command), and the listings redoubtctl shows. The
 * rules are in rd_rbac.h; the compiled configuration in rd_rbac_int.h.
 * What a command is (its row, the keys it touches) comes from the core's
 * classification of the request (rd_session.h), so the server, redoubtctl
 * and the unit tests decide on the same facts.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_command.h"
#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_log.h"
#include "rd_match.h"
#include "rd_rbac.h"
#include "rd_rbac_int.h"
#include "rd_session.h"

/* --- evaluation ------------------------------------------------------- */

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

/* What a request touches, as far as the command table can tell: read
 * from the core's facts (r->cmd, rd_request_touched()), with what the
 * rules need on top. */
typedef struct {
    const rd_command_t *cmd;
    const size_t       *idx;           /* the touched keys' positions */
    int                 nkeys;         /* 0 when they cannot be named */
    const char         *unverifiable;  /* why redoubt cannot tell what the
                                          command does, or NULL */
    const char         *keys_unknown;  /* why its keys cannot be named */
    int                 has_channels;
    size_t              chan_from, chan_to;
    int                 chan_patterns;
} rd_rbac_req_t;

static void
rd_rbac_req_init(rd_rbac_req_t *q, rd_request_t *r)
{
    const rd_command_t *cmd = r->cmd;

    memset(q, 0, sizeof(*q));
    q->cmd = cmd;
    if (cmd == NULL) {
        q->unverifiable = "unknown command";
        return;
    }
    int n = rd_request_touched(r, &q->idx);
    q->nkeys = n < 0 || n > RD_RBAC_MAX_KEYS ? 0 : n;
    q->has_channels = rd_rbac_channels(cmd, r->argc, &q->chan_from,
                                       &q->chan_to, &q->chan_patterns);

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
               && rd_rbac_sort_patterns(r->argc, r->argv))
    {
        q->keys_unknown = "key patterns";
    }
    if (q->unverifiable == NULL) {
        q->unverifiable = q->keys_unknown;
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
 * The request is read as the core classified it, never parsed again.
 */
int
rd_rbac_check_command(rd_cycle_t *cycle, const rd_identity_t *id,
                      const rd_database_t *db, const char *db_user,
                      rd_request_t *req, rd_rbac_decision_t *d)
{
    rd_rbac_conf_t *c = rd_main_conf(cycle, rd_rbac_module);
    const rd_role_t *roles[RD_RBAC_MAX_ROLES];
    size_t n = rd_rbac_known_roles(c, id, roles, RD_RBAC_MAX_ROLES);
    const rd_str_t *argv = req->argv;
    char name[80], what[80];
    rd_rbac_req_t q;
    ssize_t at;

    memset(d, 0, sizeof(*d));
    rd_rbac_printable(name, sizeof(name), argv[0]);
    for (char *p = name; *p; p++) {
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    }
    rd_rbac_req_init(&q, req);
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
        return d->allowed;
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
        /* This allow's own channel rule: its list, or none at all when
         * it has other rules (Redis's resetchannels); a rule without
         * any reaches every channel. */
        if (rd_rbac_rule_restricts(r) && q.has_channels
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

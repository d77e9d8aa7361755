/*
 * rd_audit_redact.c - the audit module's redaction plan: which arguments
 * of a request are secrets, and their removal from quoted error texts.
 *
 * Secrets (rd_audit_plan) are replaced with "(redacted)", in "args", in
 * "keys" and inside "error" texts that quote them: at least every argument
 * redis-server 7.0 redacts from SLOWLOG and MONITOR, found the way Redis
 * finds them, and more where Redis gives up early:
 *   AUTH           every argument (session.auth: none is written);
 *   HELLO          the user and password of every AUTH option, walking the
 *                  options as Redis does (rd_hello_next); from an option
 *                  Redis refuses (or a version that is no integer) on,
 *                  every argument;
 *   ACL SETUSER    every argument after SETUSER, the user name too (Redis
 *                  redacts them all: rules carry passwords, >pw <pw #hash
 *                  !hash);
 *   CONFIG SET     the value of every pair whose parameter (any case) is
 *                  one Redis marks SENSITIVE_CONFIG (requirepass,
 *                  masterauth, masteruser), a TLS key passphrase
 *                  (tls-key-file-pass, tls-client-key-file-pass), any
 *                  name containing "pass", "auth" or "secret", or a
 *                  module's parameter (a name with a '.', which may be
 *                  sensitive: redoubt cannot know);
 *   MIGRATE        the password after AUTH, the user and password after
 *                  AUTH2, walking the options from argv[6] as Redis does
 *                  (KEYS ends them); after an option Redis refuses, every
 *                  argument;
 *   a command the table does not know as Redis would run it (no row: a
 *                  mistyped or a module's command; a container with an
 *                  unknown subcommand; the wrong number of arguments,
 *                  which Redis refuses unread): every argument, so that
 *                  only the name and the count are written.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_audit.h"
#include "rd_audit_int.h"
#include "rd_command.h"
#include "rd_conncmd.h"
#include "rd_json.h"
#include "rd_session.h"

static void
rd_audit_redact_from(rd_audit_redact_t *rp, size_t i)
{
    if (rp->from == 0 || i < rp->from) {
        rp->from = i;
    }
}

static void
rd_audit_redact_at(rd_audit_redact_t *rp, size_t i)
{
    if (rp->from != 0 && i >= rp->from) {
        return;
    }
    if (rp->nat < RD_AUDIT_SECRET_AT) {
        rp->at[rp->nat++] = i;
        return;
    }
    rd_audit_redact_from(rp, i);    /* too many to list: all from here */
}

/* Does the value of this CONFIG SET parameter hide a secret? Redis 7.0's
 * SENSITIVE_CONFIG parameters, the TLS key passphrases (not marked in
 * 7.0), names that say so, and every module parameter ("module.name"),
 * which its module may have registered as sensitive. */
static bool
rd_audit_config_secret(rd_str_t name)
{
    static const char *const known[] = {
        "requirepass", "masterauth", "masteruser",
        "tls-key-file-pass", "tls-client-key-file-pass", NULL
    };
    for (const char *const *k = known; *k; k++) {
        if (rd_str_eq_ci(name, *k)) {
            return true;
        }
    }
    if (memchr(name.data, '.', name.len)) {
        return true;
    }
    static const char *const words[] = { "pass", "auth", "secret", NULL };
    for (const char *const *w = words; *w; w++) {
        size_t wl = strlen(*w);
        for (size_t k = 0; k + wl <= name.len; k++) {
            rd_str_t sub = { name.data + k, wl };
            if (rd_str_eq_ci(sub, *w)) {
                return true;
            }
        }
    }
    return false;
}

/* HELLO [protover [AUTH user pass] [SETNAME name] ...]: Redis's option
 * walk (rd_hello_next), every AUTH option. Redis 7.0 redacts only the
 * options it walked before a failed AUTH or a bad option; here every
 * AUTH is found, and from a bad option on everything is hidden (the
 * error text quotes it, and what follows may be misplaced credentials). */
static void
rd_audit_plan_hello(rd_audit_redact_t *rp, const rd_request_t *r)
{
    if (r->conncmd.error == RD_CONN_ERR_PROTOVER) {
        rd_audit_redact_from(rp, 1);    /* Redis reads nothing after it */
        return;
    }
    size_t pos = 2;
    for (;;) {
        size_t at = pos;
        switch (rd_hello_next(r->argc, r->argv, &pos)) {
        case RD_HELLO_END:
            return;
        case RD_HELLO_AUTH:
            rd_audit_redact_at(rp, at + 1);
            rd_audit_redact_at(rp, at + 2);
            break;
        case RD_HELLO_SETNAME:
            break;
        case RD_HELLO_BAD:
            rd_audit_redact_from(rp, at);
            return;
        }
    }
}

/* MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH password |
 * AUTH2 username password] [KEYS key ...]: the options from argv[6], as
 * Redis's migrateCommand walks them. */
static void
rd_audit_plan_migrate(rd_audit_redact_t *rp, const rd_request_t *r)
{
    for (size_t j = 6; j < r->argc; j++) {
        rd_str_t o = r->argv[j];
        size_t more = r->argc - 1 - j;
        if (rd_str_eq_ci(o, "copy") || rd_str_eq_ci(o, "replace")) {
            continue;
        }
        if (rd_str_eq_ci(o, "auth")) {
            if (more < 1) {
                return;
            }
            rd_audit_redact_at(rp, ++j);
        } else if (rd_str_eq_ci(o, "auth2")) {
            if (more < 2) {
                rd_audit_redact_from(rp, j + 1);
                return;
            }
            rd_audit_redact_at(rp, ++j);
            rd_audit_redact_at(rp, ++j);
        } else if (rd_str_eq_ci(o, "keys")) {
            return;                     /* the rest are keys */
        } else {
            rd_audit_redact_from(rp, j);    /* Redis: syntax error */
            return;
        }
    }
}

/* Is r->cmd (the table's row for r, or NULL) the command Redis will run?
 * Not when there is no row, when a container's subcommand is unknown, or
 * when the number of arguments is wrong: then nothing about its
 * arguments can be known. */
static bool
rd_audit_known(const rd_request_t *r)
{
    const rd_command_t *cmd = r->cmd;
    return cmd != NULL && cmd->subcommands == 0
           && rd_command_arity_ok(cmd, r->argc);
}

/* r's secrets, from the core's facts: r->conncmd, then r->cmd. */
void
rd_audit_plan(rd_audit_redact_t *rp, const rd_request_t *r)
{
    rp->from = 0;
    rp->nat = 0;
    rp->config_set = 0;

    switch (r->conncmd.kind) {
    case RD_CONN_AUTH:
        rd_audit_redact_from(rp, 1);
        return;
    case RD_CONN_HELLO:
        rd_audit_plan_hello(rp, r);
        return;
    default:
        break;
    }
    if (!rd_audit_known(r)) {
        rd_audit_redact_from(rp, 1);
    } else if (r->cmd == rd_aw.acl_setuser) {
        rd_audit_redact_from(rp, 2);    /* as Redis: the user name too */
    } else if (r->cmd == rd_aw.config_set) {
        rp->config_set = 1;
    } else if (r->cmd == rd_aw.migrate) {
        rd_audit_plan_migrate(rp, r);
    }
}

/* Is argv[i] a secret? */
bool
rd_audit_secret(const rd_audit_redact_t *rp, const rd_request_t *r, size_t i)
{
    if (rp->from != 0 && i >= rp->from) {
        return true;
    }
    for (size_t k = 0; k < rp->nat; k++) {
        if (rp->at[k] == i) {
            return true;
        }
    }
    /* CONFIG SET name value [name value ...]: values at 3, 5, ... */
    return rp->config_set && i >= 3 && (i - 3) % 2 == 0
           && rd_audit_config_secret(r->argv[i - 1]);
}

/* How many bytes of p (n of them) are the secret a, or (the text being
 * cut at its end) a's beginning? Redis writes CR and LF of an argument
 * it quotes in an error as spaces. */
static size_t
rd_audit_secret_at(const char *p, size_t n, rd_str_t a, bool cut)
{
    if (a.len == 0 || (a.len > n && !cut)) {
        return 0;
    }
    size_t m = a.len < n ? a.len : n;
    for (size_t k = 0; k < m; k++) {
        char x = a.data[k];
        if (x == '\r' || x == '\n') {
            x = ' ';
        }
        if (p[k] != x) {
            return 0;
        }
    }
    return m;
}

/* Write an error text with every secret argument of r it quotes replaced
 * ("unknown command 'x', with args beginning with: ...", "Error in ACL
 * SETUSER modifier '>pw'", "Syntax error in HELLO option '...'"). cut:
 * the text is the beginning of a longer line, so it may end inside one. */
void
rd_audit_error_text(rd_buf_t *b, const char *msg, size_t len, bool cut,
                    const rd_audit_redact_t *rp, const rd_request_t *r)
{
    if (rp == NULL || (rp->from == 0 && rp->nat == 0 && !rp->config_set)) {
        rd_json_str(b, msg, len);
        return;
    }
    size_t last = r->argc < RD_AUDIT_MAX_LIST + 1 ? r->argc
                                                  : RD_AUDIT_MAX_LIST + 1;
    char out[sizeof(r->reply_head) * sizeof(RD_AUDIT_REDACTED)];
    size_t n = 0;

    for (size_t p = 0; p < len && n + sizeof(RD_AUDIT_REDACTED) < sizeof(out);) {
        size_t best = 0;
        for (size_t i = 1; i < last; i++) {
            if (rd_audit_secret(rp, r, i)) {
                size_t m = rd_audit_secret_at(msg + p, len - p, r->argv[i],
                                              cut);
                if (m > best) {
                    best = m;
                }
            }
        }
        if (best > 0) {
            memcpy(out + n, RD_AUDIT_REDACTED, sizeof(RD_AUDIT_REDACTED) - 1);
            n += sizeof(RD_AUDIT_REDACTED) - 1;
            p += best;
        } else {
            out[n++] = msg[p++];
        }
    }
    rd_json_str(b, out, n);
}

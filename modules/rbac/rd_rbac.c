/*
 * rd_rbac.c - the rbac module: roles, database labels, AUTH handling and
 * command and key rules. See rd_rbac.h for the rules in short and
 * redoubt.conf(5) for the long form. The configuration is read and
 * compiled in rd_rbac_conf.c, evaluated in rd_rbac_eval.c; this file
 * holds the phases and the per-session state.
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

#include "rd_command.h"
#include "rd_conncmd.h"
#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_log.h"
#include "rd_rbac.h"
#include "rd_rbac_int.h"
#include "rd_session.h"
#include "rd_stats.h"
#include "rd_worker.h"

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

/* --- phases --------------------------------------------------------------- */

/* What the session's state holds (the core frees the state itself). */
static void
rd_rbac_session_cleanup(rd_session_t *s, void *data)
{
    rd_rbac_session_t *rs = data;
    rd_timer_del(&s->worker->loop.timers, &rs->resume);
    free(rs->db_user);
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

static void
rd_rbac_session_init(rd_session_t *s, void *ctx)
{
    rd_rbac_session_t *rs = ctx;
    rs->session = s;
    rs->resume.handler = rd_rbac_resume;
    rs->resume.data = rs;
}

static rd_rbac_session_t *
rd_rbac_session(rd_session_t *s)
{
    return rd_session_ctx_get(s, &rd_rbac_module, sizeof(rd_rbac_session_t),
                              rd_rbac_session_init, rd_rbac_session_cleanup);
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

    /* The strictest session limits of the granting roles. The session
     * ends at whichever comes first, this or the certificate's end. */
    if (lim.max_session_ttl > 0) {
        rd_session_end_at(s, s->worker->loop.now + lim.max_session_ttl,
                          "max_session_ttl reached");
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
    if (cc->kind == RD_CONN_HELLO || cc->kind == RD_CONN_AUTH
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
        if (r->cmd == NULL || !(r->cmd->flags & RD_CMD_NO_AUTH)) {
            rd_stats_refusal(RD_REFUSAL_NOPERM);
            rd_request_error(r, "NOAUTH Authentication required.");
            return RD_DONE;
        }
    }

    rd_rbac_decision_t d;
    if (!rd_rbac_check_command(s->cycle, s->identity, s->database,
                               s->db_user, r, &d))
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
    if (rs->auths_inflight > 0 || rs->parked_head) {
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

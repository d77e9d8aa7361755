/*
 * rd_resp_module.c - the resp module: RESP limits and the decode phase.
 *
 * The codec itself (rd_resp_codec.c) knows nothing about sessions; this
 * file holds the per-session parser and turns a parsed request into the
 * session's request, or a protocol error into "-ERR Protocol error: ..."
 * followed by closing the connection, as redis-server does.
 */
#include "config.h"

#include <stddef.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_resp.h"
#include "rd_session.h"

rd_module_t rd_resp_module;

typedef struct {
    int64_t          max_bulk;
    int64_t          max_array;
    int64_t          max_inline;
    int64_t          max_depth;      /* accepted, no effect (see below) */
    rd_resp_limits_t limits;         /* for client requests */
    rd_resp_limits_t reply_limits;   /* for replies from Redis */
} rd_resp_conf_t;

static const rd_conf_range_t rd_resp_bulk_range = { 1, 4LL << 30 };
static const rd_conf_range_t rd_resp_array_range = { 1, 1LL << 31 };
static const rd_conf_range_t rd_resp_inline_range = { 16, 1LL << 30 };
static const rd_conf_range_t rd_resp_depth_range = { 1, 128 };

#define C(field) offsetof(rd_resp_conf_t, field)

static const rd_directive_t rd_resp_directives[] = {
    { "limits.max_bulk_length", RD_CONF_MAIN, rd_conf_set_size,
      C(max_bulk), &rd_resp_bulk_range },
    { "limits.max_array_length", RD_CONF_MAIN, rd_conf_set_num,
      C(max_array), &rd_resp_array_range },
    { "limits.max_inline_length", RD_CONF_MAIN, rd_conf_set_size,
      C(max_inline), &rd_resp_inline_range },
    { "limits.max_nesting_depth", RD_CONF_MAIN, rd_conf_set_num,
      C(max_depth), &rd_resp_depth_range },
    rd_null_directive
};

static void *
rd_resp_create_main(rd_conf_t *cf)
{
    rd_resp_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->max_bulk = RD_CONF_UNSET;
    c->max_array = RD_CONF_UNSET;
    c->max_inline = RD_CONF_UNSET;
    c->max_depth = RD_CONF_UNSET;
    return c;
}

static const char *
rd_resp_init_main(rd_conf_t *cf, void *conf)
{
    rd_resp_conf_t *c = conf;
    if (c->max_bulk == RD_CONF_UNSET) {
        c->max_bulk = 512LL * 1024 * 1024;
    }
    if (c->max_array == RD_CONF_UNSET) {
        c->max_array = 1048576;
    }
    if (c->max_inline == RD_CONF_UNSET) {
        c->max_inline = 64 * 1024;
    }
    /* limits.max_nesting_depth once bounded the nesting of replies; the
     * reply scanner now frames any depth in constant memory, and client
     * commands are flat arrays that cannot nest. The directive is still
     * read, with its old range, so that existing configurations load,
     * and ignored with a warning. */
    if (c->max_depth != RD_CONF_UNSET) {
        rd_log_warn("limits.max_nesting_depth is obsolete and ignored: "
                    "replies are passed on at any depth");
    }
    c->limits.max_bulk = (uint64_t)c->max_bulk;
    c->limits.max_array = (uint64_t)c->max_array;
    c->limits.max_inline = (uint64_t)c->max_inline;

    /* Replies are scanned as they stream through, never held whole, so
     * their size and depth cost no memory here: what Redis produced is
     * passed on whatever the client-side limits (a status line is not
     * kept either: max_inline is set for completeness only). */
    c->reply_limits.max_bulk = (uint64_t)INT64_MAX - 2;
    c->reply_limits.max_array = (uint64_t)INT64_MAX;
    c->reply_limits.max_inline = c->limits.max_inline;
    return NULL;
}

/* The session's request parser, made on its first bytes. */
static void
rd_resp_session_init(rd_session_t *s, void *data)
{
    rd_resp_req_init(data);
}

/* What the parser holds (the core frees the parser itself). */
static void
rd_resp_session_cleanup(rd_session_t *s, void *data)
{
    rd_resp_req_free(data);
}

static int
rd_resp_decode(rd_session_t *s, rd_request_t *r)
{
    rd_resp_req_parser_t *p = rd_session_ctx_get(s, &rd_resp_module,
        sizeof(rd_resp_req_parser_t), rd_resp_session_init,
        rd_resp_session_cleanup);

    rd_resp_conf_t *c = rd_main_conf(s->cycle, rd_resp_module);
    const char *err = NULL;
    rd_resp_status_t st = rd_resp_parse_request(p, rd_buf_rpos(&s->in),
        rd_buf_used(&s->in), &c->limits, &err);

    switch (st) {
    case RD_RESP_OK:
        rd_request_set_command(r, p->argc, p->argv);
        rd_buf_consume(&s->in, p->consumed);
        rd_resp_req_reset(p);
        return RD_OK;

    case RD_RESP_EMPTY:
        rd_buf_consume(&s->in, p->consumed);
        rd_resp_req_reset(p);
        r->argc = 0;
        return RD_OK;

    case RD_RESP_AGAIN:
        return RD_AGAIN;

    default:
        rd_session_log(s, RD_LOG_INFO, "%s, closing", err);
        rd_request_error(r, "ERR %s", err);
        r->close_after = 1;
        rd_buf_reset(&s->in);
        rd_resp_req_reset(p);
        return RD_DONE;
    }
}

/*
 * redoubt speaks RESP2 to clients. "HELLO 3" gets -NOPROTO, as from a
 * server that does not know RESP3, so that modern clients fall back to
 * RESP2; HELLO without a version or with version 2 goes on to Redis.
 * (Malformed versions and options are answered by the core with Redis's
 * own errors: r->conncmd.)
 */
static int
rd_resp_intercept(rd_session_t *s, rd_request_t *r)
{
    (void)s;
    if (r->conncmd.kind != RD_CONN_HELLO || r->conncmd.protover != 3) {
        return RD_DECLINED;
    }
    rd_request_error(r, "NOPROTO unsupported protocol version");
    return RD_DONE;
}

static int
rd_resp_postconfiguration(rd_cycle_t *cycle)
{
    rd_resp_conf_t *c = rd_main_conf(cycle, rd_resp_module);

    /* Replies from Redis are scanned by the core's upstream connections
     * (rd_upstream.c) with these. */
    cycle->reply_limits = &c->reply_limits;
    rd_phase_add(cycle, RD_PHASE_DECODE, rd_resp_decode);
    return rd_phase_add(cycle, RD_PHASE_INTERCEPT, rd_resp_intercept);
}

rd_module_t rd_resp_module = {
    .name = "resp",
    .directives = rd_resp_directives,
    .create_conf = { rd_resp_create_main, NULL, NULL },
    .init_conf = { rd_resp_init_main, NULL, NULL },
    .postconfiguration = rd_resp_postconfiguration,
};

/*
 * rd_txn.c - the session's transaction as Redis sees it (rd_txn_state_t in
 * rd_session.h): the session engine calls these as each request leaves
 * the filter and intercept phases, when redoubt answers a request before
 * it reaches Redis, and when a reply is complete.
 */
#include "config.h"

#include "rd_resp.h"
#include "rd_session.h"
#include "rd_txn.h"

#define RD_EXECABORT "EXECABORT Transaction discarded because of previous " \
                     "errors."

/*
 * r leaves the filter and intercept phases for Redis. Returns 1 when the
 * core answers it instead (a command of a refused transaction, an AUTH
 * inside MULTI).
 */
int
rd_session_txn_route(rd_session_t *s, rd_request_t *r)
{
    rd_conn_kind_t k = r->conncmd.kind;

    r->txn_seen = 1;
    switch (s->txn) {
    case RD_TXN_NONE:
        if (k == RD_CONN_MULTI) {
            s->txn = RD_TXN_OPEN;
            r->txn_opens = 1;
            r->txn_id = ++s->txn_id;
        }
        return 0;

    case RD_TXN_OPEN:
    case RD_TXN_DIRTY:
        if (k == RD_CONN_AUTH || k == RD_CONN_HELLO) {
            s->txn = RD_TXN_DIRTY;
            rd_request_error(r, "ERR redoubt: AUTH and HELLO are not "
                             "allowed inside MULTI");
            return 1;
        }
        if (k == RD_CONN_EXEC && s->txn == RD_TXN_DIRTY) {
            static const rd_str_t discard[1] = { RD_STR("DISCARD") };
            rd_request_set_command(r, 1, discard);
            r->exec_abort = 1;
            r->buffer_reply = 1;
        }
        if (k == RD_CONN_EXEC || k == RD_CONN_DISCARD || k == RD_CONN_RESET) {
            s->txn = RD_TXN_NONE;
        }
        return 0;

    case RD_TXN_REFUSED:
        switch (k) {
        case RD_CONN_RESET:
        case RD_CONN_QUIT:
            s->txn = k == RD_CONN_RESET ? RD_TXN_NONE : s->txn;
            return 0;
        case RD_CONN_EXEC:
        case RD_CONN_DISCARD: {
            /* Redis's EXEC and DISCARD also drop the WATCHes: UNWATCH
             * goes in their place, answered as the client's EXEC or
             * DISCARD whatever Redis says (rd_session_txn_reply). */
            static const rd_str_t unwatch[1] = { RD_STR("UNWATCH") };
            s->txn = RD_TXN_NONE;
            r->txn_answer = k == RD_CONN_EXEC ? RD_TXN_ANSWER_EXECABORT
                                              : RD_TXN_ANSWER_OK;
            rd_request_set_command(r, 1, unwatch);
            r->buffer_reply = 1;
            return 0;
        }
        case RD_CONN_MULTI:
            rd_request_error(r, "ERR MULTI calls can not be nested");
            return 1;
        default:
            rd_request_error(r, "ERR redoubt: not run: the MULTI of this "
                             "transaction was refused");
            return 1;
        }
    }
    return 0;
}

/* r was answered by redoubt before it reached Redis. A refusal inside a
 * transaction aborts it, as Redis aborts one with a rejected command. */
void
rd_session_txn_answered(rd_session_t *s, rd_request_t *r)
{
    r->txn_seen = 1;
    if (r->reply_type != '-' || s->conn->closed) {
        return;
    }
    rd_conn_kind_t k = r->conncmd.kind;
    if (s->txn == RD_TXN_NONE && k == RD_CONN_MULTI) {
        s->txn = RD_TXN_REFUSED;
    } else if (s->txn == RD_TXN_REFUSED
               && (k == RD_CONN_EXEC || k == RD_CONN_DISCARD
                   || k == RD_CONN_RESET)) {
        s->txn = RD_TXN_NONE;   /* refused too: the client's try is over */
    } else if (s->txn == RD_TXN_OPEN) {
        s->txn = RD_TXN_DIRTY;
    }
}

/* The reply of r is complete: what it says about the transaction. */
void
rd_session_txn_reply(rd_session_t *s, rd_request_t *r)
{
    if (r->txn_opens && r->reply_type == '-' && r->txn_id == s->txn_id
        && (s->txn == RD_TXN_OPEN || s->txn == RD_TXN_DIRTY))
    {
        /* Redis refused the MULTI itself (NOAUTH, its own ACL): it is not
         * queueing what follows. */
        s->txn = RD_TXN_NONE;
    }
    if (r->txn_answer != RD_TXN_ANSWER_NONE) {
        unsigned a = r->txn_answer;
        r->txn_answer = RD_TXN_ANSWER_NONE;
        s->buffered -= rd_buf_used(&r->reply);
        rd_buf_reset(&r->reply);
        r->reply_type = 0;
        r->reply_head_len = 0;
        rd_buf_t b = { 0 };
        if (a == RD_TXN_ANSWER_EXECABORT) {
            rd_resp_encode_error(&b, RD_EXECABORT);
        } else {
            rd_buf_append(&b, "+OK\r\n", 5);
        }
        rd_request_reply_append(r, rd_buf_rpos(&b), rd_buf_used(&b));
        rd_buf_free(&b);
    }
    if (r->exec_abort) {
        r->exec_abort = 0;
        if (r->reply_type == '+') {
            /* DISCARD's +OK becomes the EXEC's answer. */
            s->buffered -= rd_buf_used(&r->reply);
            rd_buf_reset(&r->reply);
            r->reply_type = 0;
            r->reply_head_len = 0;
            rd_buf_t b = { 0 };
            rd_resp_encode_error(&b, RD_EXECABORT);
            rd_request_reply_append(r, rd_buf_rpos(&b), rd_buf_used(&b));
            rd_buf_free(&b);
        }
    }
}

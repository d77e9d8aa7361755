/*
 * rd_txn.h - the session's transaction as Redis sees it, for the session
 * engine (rd_session.c). See rd_txn_state_t in rd_session.h.
 */
#ifndef RD_TXN_H
#define RD_TXN_H

#include "rd_session.h"

/* r leaves the filter and intercept phases for Redis: 1 when the core
 * answered it instead (a command of a refused transaction, an AUTH inside
 * MULTI), after rewriting an EXEC of a dirty transaction as DISCARD. */
int rd_session_txn_route(rd_session_t *s, rd_request_t *r);
/* r was answered by redoubt before it reached Redis. */
void rd_session_txn_answered(rd_session_t *s, rd_request_t *r);
/* The reply of r is complete: a MULTI Redis refused, an EXEC's answer. */
void rd_session_txn_reply(rd_session_t *s, rd_request_t *r);

#endif

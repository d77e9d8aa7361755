/*
 * rd_resp_module.h - what other modules use of the resp module.
 */
#ifndef RD_RESP_MODULE_H
#define RD_RESP_MODULE_H

#include "rd_resp.h"

extern rd_module_t rd_resp_module;

/* The limits for client requests (limits.max_bulk_length, ...). */
const rd_resp_limits_t *rd_resp_limits(rd_cycle_t *cycle);
/* The limits for replies from Redis: only nesting depth and status line
 * length; bulk and array sizes are not limited because replies stream. */
const rd_resp_limits_t *rd_resp_reply_limits(rd_cycle_t *cycle);

#endif

/*
 * rd_resp_module.h - what other modules use of the resp module.
 */
#ifndef RD_RESP_MODULE_H
#define RD_RESP_MODULE_H

#include "rd_resp.h"

extern rd_module_t rd_resp_module;

/* The RESP limits of a cycle (limits.max_bulk_length, ...). */
const rd_resp_limits_t *rd_resp_limits(rd_cycle_t *cycle);

#endif

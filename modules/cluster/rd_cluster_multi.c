/*
 * rd_cluster_multi.c - (being written: see rd_cluster_int.h)
 */
#include "config.h"

#include "rd_cluster_int.h"

int
rd_cmulti_route(rd_csess_t *cs, rd_request_t *r)
{
    (void)cs;
    (void)r;
    return RD_DECLINED;
}

void
rd_cmulti_free(rd_csess_t *cs)
{
    (void)cs;
}

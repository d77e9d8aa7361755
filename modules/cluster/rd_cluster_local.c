/*
 * rd_cluster_local.c - (being written: see rd_cluster_int.h)
 */
#include "config.h"

#include "rd_cluster_int.h"

int
rd_clocal_route(rd_csess_t *cs, rd_request_t *r)
{
    (void)cs;
    (void)r;
    return RD_DECLINED;
}

void
rd_clocal_free(rd_csess_t *cs)
{
    (void)cs;
}

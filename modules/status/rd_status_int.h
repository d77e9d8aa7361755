/*
 * rd_status_int.h - shared between the status module's files.
 */
#ifndef RD_STATUS_INT_H
#define RD_STATUS_INT_H

#include "rd_buf.h"

/* "# HELP name help" and "# TYPE name type". */
void rd_status_family(rd_buf_t *b, const char *name, const char *type,
                      const char *help);
/* The process_* families for the master, workers and status process. */
void rd_status_process_metrics(rd_buf_t *b);

#endif

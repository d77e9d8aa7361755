/*
 * rd_process.h - the master process cycle.
 */
#ifndef RD_PROCESS_H
#define RD_PROCESS_H

#include <sys/types.h>

#include "rd_core.h"

/* Supervise workers for cycle until told to stop; returns the exit code. */
int rd_master_run(rd_cycle_t *cycle);

/* The pid in a pid file, or -1. */
pid_t rd_pid_file_read(const char *path);

/* Signal mask used by the master (and blocked in workers). */
void rd_process_block_signals(void);

#endif

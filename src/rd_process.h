/*
 * rd_process.h - the master process cycle.
 */
#ifndef RD_PROCESS_H
#define RD_PROCESS_H

#include <signal.h>
#include <sys/types.h>

#include "rd_core.h"

/* Supervise workers for cycle until told to stop; returns the exit code. */
int rd_master_run(rd_cycle_t *cycle);

/* The pid in a pid file, or -1. */
pid_t rd_pid_file_read(const char *path);

/* The signals the master acts on; workers and the status process take
 * the same ones through a signalfd. */
void rd_process_signal_set(sigset_t *set);
void rd_process_block_signals(void);
/* Block the set and return a non-blocking signalfd for it, or -1. */
int  rd_process_signalfd(void);

#endif

/*
 * rd_proctitle.h - process titles, as ps(1) and /proc/PID/cmdline show
 * them, the way nginx sets them:
 *
 *   redoubt: master process /usr/sbin/redoubt -c /etc/redoubt/redoubt.conf
 *   redoubt: worker process
 *   redoubt: status process
 *
 * The kernel shows the memory that held the command line, from argv[0] to
 * the end of the environment strings placed right after it.
 * rd_proctitle_init() copies the environment elsewhere (environ and
 * getenv() keep working, on the copies), so the whole area can be
 * overwritten. Titles longer than the area are cut. /proc/PID/comm is
 * not changed here (the status process names itself "redoubt-status").
 */
#ifndef RD_PROCTITLE_H
#define RD_PROCTITLE_H

#include "rd_core.h"

/* In main(), before anything keeps a pointer into the environment
 * strings. argv's strings stay valid until the first rd_proctitle_set(). */
void rd_proctitle_init(int argc, char **argv);
/* "redoubt: " and the formatted title. Does nothing before init. */
void rd_proctitle_set(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* The command line redoubt was started with, its arguments joined by
 * spaces ("" before init). */
const char *rd_proctitle_cmdline(void);

#endif

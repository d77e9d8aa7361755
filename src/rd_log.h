/*
 * rd_log.h - the error log.
 *
 * One log per process. Each line is written with a single write(2) on a
 * descriptor opened with O_APPEND, so lines from the master and all workers
 * never interleave:
 *
 *   2026-11-24T16:40:01.123456Z [info] 12345: message
 *
 * Until rd_log_open() succeeds, lines go to stderr.
 */
#ifndef RD_LOG_H
#define RD_LOG_H

#include "rd_core.h"

enum {
    RD_LOG_ERROR = 0,
    RD_LOG_WARN,
    RD_LOG_NOTICE,
    RD_LOG_INFO,
    RD_LOG_DEBUG
};

extern int rd_log_level;

/* Parse a level name ("error", "warn", "notice", "info", "debug"). */
int rd_log_level_parse(const char *name);

/* Open (or switch to) the log at path ("stderr" means standard error).
 * On failure returns -1 and leaves the previous log in place. */
int rd_log_open(const char *path, int level);
/* Reopen the current file (SIGUSR1, logrotate). */
int rd_log_reopen(void);
/* The log's descriptor, so that a daemon can point stderr at it. */
int rd_log_fd(void);

/* "redoubt -t": lines on stderr read "redoubt: [warn] message", as
 * nginx -t prints them, without the time and pid of a log line. */
void rd_log_plain(const char *prefix);

void rd_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define rd_log(level, ...)                                              \
    do {                                                                \
        if ((level) <= rd_log_level) {                                  \
            rd_log_write((level), __VA_ARGS__);                         \
        }                                                               \
    } while (0)

#define rd_log_error(...)  rd_log(RD_LOG_ERROR, __VA_ARGS__)
#define rd_log_warn(...)   rd_log(RD_LOG_WARN, __VA_ARGS__)
#define rd_log_notice(...) rd_log(RD_LOG_NOTICE, __VA_ARGS__)
#define rd_log_info(...)   rd_log(RD_LOG_INFO, __VA_ARGS__)
#define rd_log_debug(...)  rd_log(RD_LOG_DEBUG, __VA_ARGS__)

#endif

/*
 * rd_log.c - the error log; see rd_log.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "rd_log.h"

int rd_log_level = RD_LOG_INFO;

static int   rd_log_fd_ = STDERR_FILENO;
static char *rd_log_path_;
static const char *rd_log_prefix_;     /* rd_log_plain() */

static const char *rd_log_names[] = {
    "error", "warn", "notice", "info", "debug"
};

int
rd_log_level_parse(const char *name)
{
    for (size_t i = 0; i < rd_countof(rd_log_names); i++) {
        if (strcmp(name, rd_log_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int
rd_log_open_path(const char *path)
{
    if (strcmp(path, "stderr") == 0) {
        return STDERR_FILENO;
    }
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int
rd_log_open(const char *path, int level)
{
    int fd = rd_log_open_path(path);
    if (fd < 0) {
        return -1;
    }
    if (rd_log_fd_ != STDERR_FILENO && rd_log_fd_ != fd) {
        close(rd_log_fd_);
    }
    rd_log_fd_ = fd;
    free(rd_log_path_);
    rd_log_path_ = rd_strdup(path);
    rd_log_level = level;
    return 0;
}

int
rd_log_reopen(void)
{
    if (rd_log_path_ == NULL || rd_log_fd_ == STDERR_FILENO) {
        return 0;
    }
    int fd = rd_log_open_path(rd_log_path_);
    if (fd < 0) {
        int err = errno;
        rd_log_error("cannot reopen error log \"%s\": %s", rd_log_path_,
                     strerror(err));
        return -1;
    }
    dup2(fd, rd_log_fd_);
    close(fd);
    return 0;
}

int
rd_log_fd(void)
{
    return rd_log_fd_;
}

void
rd_log_plain(const char *prefix)
{
    rd_log_prefix_ = prefix;
}

void
rd_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    int saved = errno;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);

    size_t n;
    if (rd_log_prefix_) {
        n = (size_t)snprintf(line, sizeof(line), "%s: [%s] ", rd_log_prefix_,
                             rd_log_names[level]);
    } else {
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%06ldZ [%s] %d: ",
                              (long)tv.tv_usec, rd_log_names[level],
                              (int)getpid());
    }

    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        m = 0;
    }
    n += (size_t)m;
    if (n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    /* A log line is one line: control bytes from hostile input are
     * replaced so that nobody can forge a second entry. */
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)line[i] < 0x20) {
            line[i] = ' ';
        }
    }
    line[n++] = '\n';

    ssize_t w = write(rd_log_fd_, line, n);
    (void)w;
    errno = saved;
}

/*
 * rd_notify.c - the sd_notify(3) protocol without libsystemd.
 *
 * The whole protocol is one sendto(2) of a datagram to the unix socket in
 * $NOTIFY_SOCKET; a name starting with '@' is in the abstract namespace.
 * The socket is opened for each message (the master sends a handful in
 * its lifetime), with SOCK_CLOEXEC so that nothing leaks into workers.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rd_log.h"
#include "rd_notify.h"

int
rd_notify(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0') {
        return 0;
    }

    struct sockaddr_un addr;
    size_t len = strlen(path);
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(addr.sun_path)) {
        rd_log_debug("sd_notify: NOTIFY_SOCKET \"%s\" is not a unix socket "
                     "path", path);
        return -1;
    }
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@') {
        addr.sun_path[0] = '\0';         /* abstract: no terminating NUL */
    }
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path)
                                 + len + (path[0] == '/'));

    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(msg)) {
        return -1;
    }

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rd_log_debug("sd_notify: socket: %s", strerror(errno));
        return -1;
    }
    ssize_t sent = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL,
                          (struct sockaddr *)&addr, alen);
    int saved = errno;
    close(fd);
    if (sent != (ssize_t)n) {
        rd_log_debug("sd_notify: sendto %s: %s", path,
                     sent < 0 ? strerror(saved) : "short write");
        return -1;
    }
    return 1;
}

int
rd_notify_ready(void)
{
    return rd_notify("READY=1\nMAINPID=%ld\nSTATUS=serving", (long)getpid());
}

int
rd_notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return rd_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                     (unsigned long long)ts.tv_sec * 1000000ULL
                     + (unsigned long long)ts.tv_nsec / 1000ULL);
}

int
rd_notify_stopping(void)
{
    return rd_notify("STOPPING=1\nSTATUS=stopping");
}

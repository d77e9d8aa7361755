/*
 * rd_notify.h - tell systemd how the master is doing (sd_notify(3)).
 *
 * The service manager's protocol, implemented here without libsystemd:
 * when NOTIFY_SOCKET names a unix datagram socket (a path, or "@name" in
 * the abstract namespace), each call sends one datagram of
 * newline-separated VAR=VALUE lines to it. Without NOTIFY_SOCKET (not
 * started by systemd with Type=notify) every call does nothing.
 */
#ifndef RD_NOTIFY_H
#define RD_NOTIFY_H

/* Send state ("READY=1", "STOPPING=1", ...; printf format). Returns 1 if
 * sent, 0 if there is no NOTIFY_SOCKET, -1 on error (logged at debug). */
int rd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "READY=1" with this process's pid as MAINPID (the master is the main
 * process also when it has become a daemon without -g). */
int rd_notify_ready(void);
/* "RELOADING=1" with the CLOCK_MONOTONIC time that systemd >= 253 wants
 * with it; READY=1 must follow when the reload is over, done or not. */
int rd_notify_reloading(void);
/* "STOPPING=1": a graceful or fast stop has begun. */
int rd_notify_stopping(void);

#endif

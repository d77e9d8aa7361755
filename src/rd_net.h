/*
 * rd_net.h - small socket helpers.
 */
#ifndef RD_NET_H
#define RD_NET_H

#include <sys/socket.h>

#include "rd_core.h"

/* "ip:port" or "[ip6]:port" of a socket address. */
void rd_sockaddr_text(const struct sockaddr *sa, char *buf, size_t n);
/* Start a non-blocking connect; returns the descriptor or -1 (errno). */
int  rd_net_connect(const struct sockaddr *sa, socklen_t len);
/* The pending error of a socket after a non-blocking connect (0 = ok). */
int  rd_net_socket_error(int fd);
void rd_net_nodelay(int fd);

#endif

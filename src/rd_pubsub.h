/*
 * rd_pubsub.h - Pub/Sub as Redis speaks it, for the routing modules: the
 * subscribe-family commands and a reader of the frames a subscribed
 * connection receives (RESP2 arrays, RESP3 pushes).
 *
 * A frame is one of
 *   a message     "message" channel payload, "pmessage" pattern channel
 *                 payload, "smessage" channel payload: kind says which
 *                 subscription it is for (channel, pattern, shard
 *                 channel), sub names it (the pattern for a pmessage)
 *   a confirmation "subscribe" ... "sunsubscribe", the channel (nil for
 *                 an UNSUBSCRIBE of nothing) and the count Redis keeps
 *   anything else (a reply: an error, PING's "pong" array, +RESET)
 * Redis counts channels and patterns together and shard channels apart.
 */
#ifndef RD_PUBSUB_H
#define RD_PUBSUB_H

#include "rd_core.h"

enum { RD_SUB_CHANNEL = 0, RD_SUB_PATTERN, RD_SUB_SHARD };

typedef struct {
    const char *name;       /* lower case, as in a confirmation */
    int         kind;       /* RD_SUB_* */
    int         add;        /* subscribe (1) or unsubscribe (0) */
} rd_pubsub_cmd_t;

extern const rd_pubsub_cmd_t rd_pubsub_cmds[6];

/* The index in rd_pubsub_cmds of a command's name, or -1. */
int rd_pubsub_cmd(rd_str_t name);

enum {
    RD_PSF_OTHER = 0,
    RD_PSF_MESSAGE,
    RD_PSF_CONFIRM
};

typedef struct {
    int         what;       /* RD_PSF_* */
    char        type;       /* '*' or '>' (RESP3 push), whatever the
                                   frame is; else 0 */
    int         kind;       /* a message's or a confirmation's RD_SUB_* */
    int         cmd;        /* a confirmation: index in rd_pubsub_cmds */
    rd_str_t    sub;        /* the channel or pattern; data NULL: nil */
    int64_t     count;      /* a confirmation's count */
} rd_pubsub_frame_t;

/* Read the whole frame p[0..n) (as rd_upconn_t hands it over). */
void rd_pubsub_frame(const char *p, size_t n, rd_pubsub_frame_t *f);

/* A channel or pattern of keyspace or keyevent notifications
 * ("__keyspace@...", "__keyevent@..."), which Redis Cluster publishes on
 * the node where the key lives only. */
int rd_pubsub_is_notification(const char *p, size_t n);

#endif

/*
 * rd_timer.h - timers in a binary min-heap keyed by expiry.
 *
 * A timer is embedded in the object it belongs to (a session, an upstream
 * connection), so arming and disarming never allocate. Adding, removing
 * and re-arming are O(log n); finding the next expiry is O(1).
 */
#ifndef RD_TIMER_H
#define RD_TIMER_H

#include "rd_core.h"

typedef struct rd_timer_s rd_timer_t;
typedef void (*rd_timer_handler_pt)(rd_timer_t *t);

struct rd_timer_s {
    rd_msec_t            when;      /* absolute, monotonic milliseconds */
    size_t               index;     /* position in the heap; 0 = not armed */
    rd_timer_handler_pt  handler;
    void                *data;
};

typedef struct {
    rd_timer_t **heap;      /* heap[1..n] */
    size_t       n;
    size_t       cap;
} rd_timers_t;

/* Monotonic time in milliseconds. */
rd_msec_t rd_msec_now(void);
/* Monotonic time in microseconds. */
int64_t   rd_usec_now(void);

void rd_timers_init(rd_timers_t *ts);
void rd_timers_free(rd_timers_t *ts);

static inline bool rd_timer_armed(const rd_timer_t *t) { return t->index != 0; }

/* Arm (or re-arm) t to fire at now + after. */
void rd_timer_add(rd_timers_t *ts, rd_timer_t *t, rd_msec_t now,
                  rd_msec_t after);
void rd_timer_del(rd_timers_t *ts, rd_timer_t *t);
/* Milliseconds until the next timer (0 if due), or -1 when none. */
rd_msec_t rd_timers_next(const rd_timers_t *ts, rd_msec_t now);
/* Remove and run every timer due at now. */
void rd_timers_expire(rd_timers_t *ts, rd_msec_t now);

#endif

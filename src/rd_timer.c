/*
 * rd_timer.c - binary min-heap of timers; see rd_timer.h.
 */
#include "config.h"

#include <stdlib.h>
#include <time.h>

#include "rd_timer.h"

rd_msec_t
rd_msec_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (rd_msec_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
rd_usec_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
rd_timers_init(rd_timers_t *ts)
{
    ts->heap = NULL;
    ts->n = 0;
    ts->cap = 0;
}

void
rd_timers_free(rd_timers_t *ts)
{
    for (size_t i = 1; i <= ts->n; i++) {
        ts->heap[i]->index = 0;
    }
    free(ts->heap);
    rd_timers_init(ts);
}

static void
rd_heap_set(rd_timers_t *ts, size_t i, rd_timer_t *t)
{
    ts->heap[i] = t;
    t->index = i;
}

static void
rd_heap_up(rd_timers_t *ts, size_t i)
{
    rd_timer_t *t = ts->heap[i];
    while (i > 1 && ts->heap[i / 2]->when > t->when) {
        rd_heap_set(ts, i, ts->heap[i / 2]);
        i /= 2;
    }
    rd_heap_set(ts, i, t);
}

static void
rd_heap_down(rd_timers_t *ts, size_t i)
{
    rd_timer_t *t = ts->heap[i];
    for (;;) {
        size_t c = i * 2;
        if (c > ts->n) {
            break;
        }
        if (c + 1 <= ts->n && ts->heap[c + 1]->when < ts->heap[c]->when) {
            c++;
        }
        if (ts->heap[c]->when >= t->when) {
            break;
        }
        rd_heap_set(ts, i, ts->heap[c]);
        i = c;
    }
    rd_heap_set(ts, i, t);
}

void
rd_timer_add(rd_timers_t *ts, rd_timer_t *t, rd_msec_t now, rd_msec_t after)
{
    if (rd_timer_armed(t)) {
        rd_timer_del(ts, t);
    }
    t->when = now + after;
    if (ts->n + 1 >= ts->cap) {
        ts->cap = ts->cap ? ts->cap * 2 : 64;
        ts->heap = rd_realloc(ts->heap, ts->cap * sizeof(rd_timer_t *));
    }
    ts->n++;
    rd_heap_set(ts, ts->n, t);
    rd_heap_up(ts, ts->n);
}

void
rd_timer_del(rd_timers_t *ts, rd_timer_t *t)
{
    size_t i = t->index;
    if (i == 0) {
        return;
    }
    t->index = 0;
    rd_timer_t *last = ts->heap[ts->n--];
    if (i <= ts->n) {
        rd_heap_set(ts, i, last);
        rd_heap_up(ts, i);
        rd_heap_down(ts, last->index);
    }
}

rd_msec_t
rd_timers_next(const rd_timers_t *ts, rd_msec_t now)
{
    if (ts->n == 0) {
        return -1;
    }
    rd_msec_t d = ts->heap[1]->when - now;
    return d > 0 ? d : 0;
}

void
rd_timers_expire(rd_timers_t *ts, rd_msec_t now)
{
    /* A handler may add or delete timers, including re-arming itself for
     * later; take the root afresh each time. */
    while (ts->n > 0 && ts->heap[1]->when <= now) {
        rd_timer_t *t = ts->heap[1];
        rd_timer_del(ts, t);
        t->handler(t);
    }
}

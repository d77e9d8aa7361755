/*
 * rd_buf.c - growable byte buffer; see rd_buf.h for the contract.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_buf.h"

#define RD_BUF_MIN 64

void
rd_buf_reserve(rd_buf_t *b, size_t n)
{
    if (rd_buf_room(b) >= n) {
        return;
    }

    size_t used = rd_buf_used(b);

    /* Compacting is cheaper than growing when the unread part is small
     * compared with what has been consumed already. */
    if (b->pos > 0 && b->cap - used >= n && used <= b->pos) {
        memmove(b->data, b->data + b->pos, used);
        b->pos = 0;
        b->len = used;
        return;
    }

    size_t want = used + n;
    size_t cap = b->cap ? b->cap : (want > RD_BUF_MIN ? want : RD_BUF_MIN);
    while (cap < want) {
        cap = cap < ((size_t)1 << 30) ? cap * 2 : cap + ((size_t)1 << 30);
    }

    if (b->pos > 0) {
        char *d = rd_alloc(cap);
        memcpy(d, b->data + b->pos, used);
        free(b->data);
        b->data = d;
    } else {
        b->data = rd_realloc(b->data, cap);
    }
    b->pos = 0;
    b->len = used;
    b->cap = cap;
}

void
rd_buf_append(rd_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    rd_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void
rd_buf_append_str(rd_buf_t *b, const char *s)
{
    rd_buf_append(b, s, strlen(s));
}

void
rd_buf_appendf(rd_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(small)) {
        rd_buf_append(b, small, (size_t)n);
        return;
    }
    rd_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
rd_buf_consume(rd_buf_t *b, size_t n)
{
    b->pos += n;
    if (b->pos >= b->len) {
        b->pos = 0;
        b->len = 0;
    }
}

void
rd_buf_reset(rd_buf_t *b)
{
    b->pos = 0;
    b->len = 0;
}

void
rd_buf_free(rd_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->pos = b->len = b->cap = 0;
}

void
rd_buf_shrink(rd_buf_t *b, size_t keep)
{
    if (rd_buf_used(b) == 0 && b->cap > keep) {
        rd_buf_free(b);
    }
}

void
rd_buf_swap(rd_buf_t *a, rd_buf_t *b)
{
    rd_buf_t t = *a;
    *a = *b;
    *b = t;
}

void
rd_buf_wipe(rd_buf_t *b)
{
    if (b->data) {
        explicit_bzero(b->data, b->cap);
    }
    rd_buf_free(b);
}

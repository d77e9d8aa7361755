/*
 * rd_alloc.c - allocation wrappers and small string helpers.
 *
 * Out of memory is not recoverable inside an event loop that holds many
 * sessions half-way through a reply; the worker aborts and the master
 * starts a new one, as Redis does in zmalloc's out-of-memory handler.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_core.h"

static void
rd_oom(size_t n)
{
    fprintf(stderr, "redoubt: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
rd_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        rd_oom(n);
    }
    return p;
}

void *
rd_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        rd_oom(n * size);
    }
    return p;
}

void *
rd_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        rd_oom(n);
    }
    return q;
}

char *
rd_strdup(const char *s)
{
    return rd_strndup(s, strlen(s));
}

char *
rd_strndup(const char *s, size_t n)
{
    char *d = rd_alloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

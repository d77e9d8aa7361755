/*
 * rd_test_edge.h - for unit tests of parsers: input that ends exactly
 * where an unreadable page starts, so that reading one byte past it
 * crashes the (forked) test instead of passing unnoticed.
 */
#ifndef RD_TEST_EDGE_H
#define RD_TEST_EDGE_H

#include <check.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    char  *map;
    size_t map_len;
    char  *p;            /* the copy of the input */
} edge_t;

/* Copies n bytes of s so that they end where a PROT_NONE page starts. */
static inline void
edge_make(edge_t *e, const char *s, size_t n)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + ps - 1) / ps + 1;

    e->map_len = pages * ps;
    e->map = mmap(NULL, e->map_len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(e->map, MAP_FAILED);
    ck_assert_int_eq(mprotect(e->map + (pages - 1) * ps, ps, PROT_NONE), 0);
    e->p = e->map + (pages - 1) * ps - n;
    if (n > 0) {
        memcpy(e->p, s, n);
    }
}

static inline void
edge_free(edge_t *e)
{
    munmap(e->map, e->map_len);
}

#endif

/*
 * rd_core.h - the types every part of redoubt shares.
 *
 * Return codes follow nginx's: a phase handler answers RD_OK ("go on"),
 * RD_DONE ("a reply was produced, skip to the reply phase"), RD_AGAIN
 * ("waiting for I/O, call me again") or RD_ERROR.
 */
#ifndef RD_CORE_H
#define RD_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#define RD_OK       0
#define RD_ERROR   -1
#define RD_AGAIN   -2
#define RD_DONE    -3
#define RD_DECLINED -4

typedef intptr_t rd_int_t;
typedef int64_t  rd_msec_t;

/* A counted string that does not own its bytes. */
typedef struct {
    const char *data;
    size_t      len;
} rd_str_t;

#define RD_STR(s) ((rd_str_t){ (s), sizeof(s) - 1 })

typedef struct rd_cycle_s    rd_cycle_t;
typedef struct rd_worker_s   rd_worker_t;
typedef struct rd_session_s  rd_session_t;
typedef struct rd_request_s  rd_request_t;
typedef struct rd_module_s   rd_module_t;
typedef struct rd_database_s rd_database_t;
typedef struct rd_listener_s rd_listener_t;

#define rd_countof(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation that never returns NULL: out of memory aborts the process
 * (a worker is restarted by the master), as Redis's zmalloc does. */
void *rd_alloc(size_t n);
void *rd_calloc(size_t n, size_t size);
void *rd_realloc(void *p, size_t n);
char *rd_strdup(const char *s);
char *rd_strndup(const char *s, size_t n);

/* Case-insensitive comparison of a counted string with a C string
 * (inline so that the length of a literal is known at compile time). */
static inline bool
rd_str_eq_ci(rd_str_t s, const char *lit)
{
    size_t n = __builtin_strlen(lit);
    if (s.len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + ('a' - 'A'));
        }
        if (c != (unsigned char)lit[i]) {
            return false;
        }
    }
    return true;
}

#endif

/*
 * rd_buf.h - a growable byte buffer with a read cursor.
 *
 * Bytes live in data[pos .. len). Readers consume from pos; writers append
 * at len. The buffer grows on demand; callers that must stay bounded check
 * rd_buf_used() against their own limit before appending (the buffer itself
 * has no policy). Compaction moves the unread bytes to the front only when
 * that frees a useful amount of room, so a stream of small reads stays O(n).
 *
 * Pointers into data are invalidated by any append or reserve; code that
 * must keep a position across those keeps an offset relative to pos.
 */
#ifndef RD_BUF_H
#define RD_BUF_H

#include "rd_core.h"

typedef struct {
    char   *data;
    size_t  pos;   /* first unread byte */
    size_t  len;   /* one past the last written byte */
    size_t  cap;
} rd_buf_t;

static inline size_t rd_buf_used(const rd_buf_t *b) { return b->len - b->pos; }
static inline char  *rd_buf_rpos(const rd_buf_t *b) { return b->data + b->pos; }
static inline char  *rd_buf_wpos(const rd_buf_t *b) { return b->data + b->len; }
static inline size_t rd_buf_room(const rd_buf_t *b) { return b->cap - b->len; }

/* Make room for at least n more bytes after len (may compact or grow). */
void rd_buf_reserve(rd_buf_t *b, size_t n);
void rd_buf_append(rd_buf_t *b, const void *p, size_t n);
void rd_buf_append_str(rd_buf_t *b, const char *s);
void rd_buf_appendf(rd_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Mark n bytes as written after writing them at rd_buf_wpos(). */
static inline void rd_buf_produce(rd_buf_t *b, size_t n) { b->len += n; }
/* Drop n bytes from the front. Resets the cursor when the buffer empties. */
void rd_buf_consume(rd_buf_t *b, size_t n);
void rd_buf_reset(rd_buf_t *b);
/* Release memory; the buffer is empty and reusable afterwards. */
void rd_buf_free(rd_buf_t *b);
/* Zero the memory (secrets: passwords in AUTH commands), then free. */
void rd_buf_wipe(rd_buf_t *b);
/* Give memory back when a big buffer has drained (idle sessions stay small). */
void rd_buf_shrink(rd_buf_t *b, size_t keep);
void rd_buf_swap(rd_buf_t *a, rd_buf_t *b);

#endif

/*
 * rd_resp_value.c - whole RESP values: the reader of complete replies
 * (fan-out merges, CLUSTER SLOTS) and the encoder; see rd_resp.h for the
 * contract. The streaming parsers are in rd_resp_codec.c.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "rd_resp.h"

/* ------------------------------------------------------------------------
 * Reader
 * --------------------------------------------------------------------- */

void
rd_resp_reader_init(rd_resp_reader_t *rd, const char *p, size_t n)
{
    rd->p = p;
    rd->end = p != NULL ? p + n : p;    /* no arithmetic on NULL */
}

/* The line at rd->p up to its first CRLF, which rd->p is moved past. */
static bool
rd_resp_read_line(rd_resp_reader_t *rd, const char **s, size_t *n)
{
    const char *q = rd->p;

    while (q < rd->end) {
        const char *cr = memchr(q, '\r', (size_t)(rd->end - q));

        if (cr == NULL || rd->end - cr < 2) {
            return false;
        }
        if (cr[1] == '\n') {
            *s = rd->p;
            *n = (size_t)(cr - rd->p);
            rd->p = cr + 2;
            return true;
        }
        q = cr + 1;
    }
    return false;
}

int
rd_resp_read(rd_resp_reader_t *rd, rd_resp_value_t *v)
{
    const char *s;
    size_t      n, left;
    int64_t     num;

    if (rd->p == NULL || rd->p >= rd->end) {
        return -1;
    }
    char t = *rd->p++;
    if (t != '+' && t != '-' && t != ':' && t != '$' && t != '*') {
        return -1;
    }
    if (!rd_resp_read_line(rd, &s, &n)) {
        return -1;
    }

    v->type = t;
    v->n = 0;
    v->str = NULL;
    v->len = 0;

    if (t == '+' || t == '-') {
        v->str = s;
        v->len = n;
        return 0;
    }
    if (!rd_resp_string2ll(s, n, &num)) {
        return -1;
    }
    v->n = num;
    if (t == ':' || num == -1) {
        return 0;
    }
    if (num < -1) {
        return -1;
    }

    left = (size_t)(rd->end - rd->p);
    if (t == '*') {
        return (uint64_t)num <= left / 3 ? 0 : -1;
    }

    /* A bulk: its bytes, then CRLF. */
    if ((uint64_t)num > left || left - (size_t)num < 2
        || rd->p[num] != '\r' || rd->p[num + 1] != '\n')
    {
        return -1;
    }
    v->str = rd->p;
    v->len = (size_t)num;
    rd->p += num + 2;
    return 0;
}

/* Iterative and at any depth, as the scanner: one count of the elements
 * still expected, where an array stands for its n elements. rd_resp_read()
 * refuses a count the bytes left could not hold, so the sum stays below
 * the buffer's length. */
int
rd_resp_skip(rd_resp_reader_t *rd)
{
    uint64_t        expect = 1;
    rd_resp_value_t v;

    while (expect > 0) {
        if (rd_resp_read(rd, &v) != 0) {
            return -1;
        }
        expect--;
        if (v.type == '*' && v.n > 0) {
            expect += (uint64_t)v.n;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Encoder
 * --------------------------------------------------------------------- */

/* Appends text that must stay on one protocol line: CR and LF become
 * spaces, as addReplyErrorFormat() does, so it cannot end the line early
 * or inject another reply. */
static void
rd_resp_append_line(rd_buf_t *b, const char *s, size_t n)
{
    rd_buf_reserve(b, n);
    char *w = rd_buf_wpos(b);
    for (size_t i = 0; i < n; i++) {
        w[i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    }
    rd_buf_produce(b, n);
}

static void
rd_resp_encode_line(rd_buf_t *b, char prefix, const char *s, size_t n)
{
    rd_buf_append(b, &prefix, 1);
    rd_resp_append_line(b, s, n);
    rd_buf_append(b, "\r\n", 2);
}

void
rd_resp_encode_simple(rd_buf_t *b, const char *s)
{
    rd_resp_encode_line(b, '+', s, strlen(s));
}

void
rd_resp_encode_error(rd_buf_t *b, const char *msg)
{
    rd_resp_encode_line(b, '-', msg, strlen(msg));
}

void
rd_resp_encode_errorf(rd_buf_t *b, const char *fmt, ...)
{
    char    small[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(small)) {
        rd_resp_encode_line(b, '-', small, (size_t)n);
        return;
    }

    char *big = rd_alloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rd_resp_encode_line(b, '-', big, (size_t)n);
    free(big);
}

/* "<type><number>\r\n" without printf: headers are written for every
 * argument forwarded, so this is on the hot path. */
static void
rd_resp_put_header(rd_buf_t *b, char type, int64_t v)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    char *p = end;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    *--p = '\n';
    *--p = '\r';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--p = '-';
    }
    *--p = type;
    rd_buf_append(b, p, (size_t)(end - p));
}

void
rd_resp_encode_integer(rd_buf_t *b, int64_t v)
{
    rd_resp_put_header(b, ':', v);
}

void
rd_resp_encode_bulk(rd_buf_t *b, const void *p, size_t len)
{
    rd_resp_put_header(b, '$', (int64_t)len);
    rd_buf_append(b, p, len);
    rd_buf_append(b, "\r\n", 2);
}

void
rd_resp_encode_null(rd_buf_t *b)
{
    rd_buf_append(b, "$-1\r\n", 5);
}

void
rd_resp_encode_array(rd_buf_t *b, int64_t n)
{
    rd_resp_put_header(b, '*', n);
}

void
rd_resp_encode_command(rd_buf_t *b, size_t argc, const rd_str_t *argv)
{
    rd_resp_put_header(b, '*', (int64_t)argc);
    for (size_t i = 0; i < argc; i++) {
        rd_resp_encode_bulk(b, argv[i].data, argv[i].len);
    }
}

/*
 * rd_json.c - the JSON writer; see rd_json.h for the escaping rules.
 */
#include "config.h"

#include <string.h>

#include "rd_json.h"

static const char rd_json_hex[] = "0123456789abcdef";

/* rd_buf_append without a call when there is room (the hot path). */
static inline void
rd_json_put(rd_buf_t *b, const void *p, size_t n)
{
    if (rd_buf_room(b) < n) {
        rd_buf_reserve(b, n);
    }
    memcpy(rd_buf_wpos(b), p, n);
    rd_buf_produce(b, n);
}

/* 1: the byte is written as is (printable ASCII other than " and \). */
static const unsigned char rd_json_plain[256] = {
    [0x20] = 1, [0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1,
};

size_t
rd_utf8_char_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
            return 0;
        }
        if (c == 0xe0 && p[1] < 0xa0) {
            return 0;               /* overlong */
        }
        if (c == 0xed && p[1] > 0x9f) {
            return 0;               /* a surrogate, U+D800..U+DFFF */
        }
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
            || (p[3] & 0xc0) != 0x80)
        {
            return 0;
        }
        if (c == 0xf0 && p[1] < 0x90) {
            return 0;               /* overlong */
        }
        if (c == 0xf4 && p[1] > 0x8f) {
            return 0;               /* above U+10FFFF */
        }
        return 4;
    }
    return 0;                       /* 0x80..0xc1 (continuation, overlong
                                       lead), 0xf5..0xff */
}

static unsigned char *
rd_json_escape_byte(unsigned char *o, unsigned c)
{
    *o++ = '\\';
    switch (c) {
    case '"':  *o++ = '"'; return o;
    case '\\': *o++ = '\\'; return o;
    case '\b': *o++ = 'b'; return o;
    case '\f': *o++ = 'f'; return o;
    case '\n': *o++ = 'n'; return o;
    case '\r': *o++ = 'r'; return o;
    case '\t': *o++ = 't'; return o;
    default:
        break;
    }
    *o++ = 'u';
    *o++ = '0';
    *o++ = '0';
    *o++ = (unsigned char)rd_json_hex[c >> 4];
    *o++ = (unsigned char)rd_json_hex[c & 0xf];
    return o;
}

/* The escaped bytes of s, without quotes. Works in chunks so that the
 * buffer never reserves six times a big input at once. */
static void
rd_json_body(rd_buf_t *b, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;

    while (p < end) {
        size_t chunk = (size_t)(end - p);
        if (chunk > 4096) {
            chunk = 4096;
        }
        /* A character started in the chunk may run 3 bytes past it. */
        size_t need = (chunk + 3) * 6;
        if (rd_buf_room(b) < need) {
            rd_buf_reserve(b, need);
        }
        unsigned char *o = (unsigned char *)rd_buf_wpos(b);
        unsigned char *o0 = o;
        const unsigned char *stop = p + chunk;

        while (p < stop) {
            unsigned c = *p;
            if (rd_json_plain[c]) {
                *o++ = (unsigned char)c;
                p++;
                continue;
            }
            if (c < 0x80) {
                o = rd_json_escape_byte(o, c);
                p++;
                continue;
            }
            size_t k = rd_utf8_char_len(p, (size_t)(end - p));
            if (k == 0) {
                o = rd_json_escape_byte(o, c);
                p++;
                continue;
            }
            memcpy(o, p, k);
            o += k;
            p += k;
        }
        rd_buf_produce(b, (size_t)(o - o0));
    }
}

void
rd_json_str(rd_buf_t *b, const char *s, size_t n)
{
    /* Room for the quotes and the first chunk at once. */
    size_t need = ((n < 4096 ? n : 4096) + 3) * 6 + 2;
    if (rd_buf_room(b) < need) {
        rd_buf_reserve(b, need);
    }
    b->data[b->len++] = '"';
    rd_json_body(b, (const unsigned char *)s, n);
    rd_json_put(b, "\"", 1);
}

void
rd_json_cstr(rd_buf_t *b, const char *s)
{
    if (s == NULL) {
        rd_json_null(b);
        return;
    }
    rd_json_str(b, s, strlen(s));
}

size_t
rd_json_str_cut(rd_buf_t *b, const char *s, size_t n, size_t max)
{
    if (max == 0 || n <= max) {
        rd_json_str(b, s, n);
        return 0;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t k = max;
    /* A well-formed character that straddles the cut is left out whole:
     * going back from the cut, the first byte that is not a continuation
     * byte leads it (at most three bytes back). */
    if ((p[max] & 0xc0) == 0x80) {
        for (size_t back = 1; back <= 3 && back <= max; back++) {
            size_t at = max - back;
            if ((p[at] & 0xc0) != 0x80) {
                if (rd_utf8_char_len(p + at, n - at) > back) {
                    k = at;
                }
                break;
            }
        }
    }

    rd_json_put(b, "\"", 1);
    rd_json_body(b, p, k);
    rd_buf_appendf(b, RD_JSON_CUT_MARK "%zu bytes)\"", n - k);
    return n - k;
}

void
rd_json_sep(rd_buf_t *b)
{
    if (rd_buf_used(b) == 0) {
        return;
    }
    char last = b->data[b->len - 1];
    if (last != '{' && last != '[' && last != ':') {
        rd_json_put(b, ",", 1);
    }
}

void
rd_json_key(rd_buf_t *b, const char *key)
{
    size_t n = strlen(key);
    rd_json_sep(b);
    rd_buf_reserve(b, n + 3);
    char *o = rd_buf_wpos(b);
    o[0] = '"';
    memcpy(o + 1, key, n);
    o[n + 1] = '"';
    o[n + 2] = ':';
    rd_buf_produce(b, n + 3);
}

void
rd_json_uint(rd_buf_t *b, uint64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    rd_json_put(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void
rd_json_int(rd_buf_t *b, int64_t v)
{
    if (v < 0) {
        rd_json_put(b, "-", 1);
        rd_json_uint(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    rd_json_uint(b, (uint64_t)v);
}

void
rd_json_null(rd_buf_t *b)
{
    rd_json_put(b, "null", 4);
}

void
rd_json_bool(rd_buf_t *b, bool v)
{
    if (v) {
        rd_buf_append(b, "true", 4);
    } else {
        rd_buf_append(b, "false", 5);
    }
}

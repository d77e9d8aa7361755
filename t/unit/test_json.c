/*
 * test_json.c - the JSON writer: every byte value alone and in sequences,
 * well-formed and broken UTF-8, cut strings, members and numbers.
 *
 * The output is checked twice: by a strict JSON validator written here
 * (RFC 8259 grammar, raw bytes must be well-formed UTF-8, no raw control
 * bytes), and by decoding it back with the writer's documented inverse
 * (\u0080..\u00ff stand for one raw byte, everything else for its code
 * point in UTF-8): that must give the input again, byte for byte.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_buf.h"
#include "rd_json.h"

/* --- a reference UTF-8 decoder, independent of the writer's ---------------- */

/* The code point at p (n bytes available) and its length in *len, or -1
 * when the bytes there are not well-formed UTF-8. */
static long
ref_utf8(const unsigned char *p, size_t n, size_t *len)
{
    unsigned c = p[0];
    long cp, min;
    size_t k;

    if (c < 0x80) {
        *len = 1;
        return c;
    } else if ((c & 0xe0) == 0xc0) {
        k = 2; cp = c & 0x1f; min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        k = 3; cp = c & 0x0f; min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        k = 4; cp = c & 0x07; min = 0x10000;
    } else {
        return -1;
    }
    if (n < k) {
        return -1;
    }
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return -1;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return -1;
    }
    *len = k;
    return cp;
}

static void
put_utf8(rd_buf_t *out, long cp)
{
    unsigned char u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp; k = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3f)); k = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f)); k = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f)); k = 4;
    }
    rd_buf_append(out, u, k);
}

/* --- a strict JSON validator -------------------------------------------- */

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    const char          *err;
} vj_t;

static int vj_value(vj_t *v, rd_buf_t *decoded, int depth);

static int
vj_fail(vj_t *v, const char *why)
{
    if (v->err == NULL) {
        v->err = why;
    }
    return -1;
}

static int
vj_hex4(vj_t *v, long *out)
{
    long x = 0;
    if (v->end - v->p < 4) {
        return vj_fail(v, "short \\u escape");
    }
    for (int i = 0; i < 4; i++) {
        unsigned c = v->p[i];
        x <<= 4;
        if (c >= '0' && c <= '9') {
            x |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            x |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            x |= c - 'A' + 10;
        } else {
            return vj_fail(v, "bad hex digit in \\u escape");
        }
    }
    v->p += 4;
    *out = x;
    return 0;
}

/* A string token; decoded (may be NULL) gets the bytes it stands for. */
static int
vj_string(vj_t *v, rd_buf_t *decoded)
{
    if (v->p >= v->end || *v->p != '"') {
        return vj_fail(v, "string expected");
    }
    v->p++;
    while (v->p < v->end) {
        unsigned c = *v->p;
        if (c == '"') {
            v->p++;
            return 0;
        }
        if (c < 0x20) {
            return vj_fail(v, "raw control byte in a string");
        }
        if (c == '\\') {
            v->p++;
            if (v->p >= v->end) {
                return vj_fail(v, "escape at the end");
            }
            unsigned e = *v->p++;
            char one;
            switch (e) {
            case '"': one = '"'; break;
            case '\\': one = '\\'; break;
            case '/': one = '/'; break;
            case 'b': one = '\b'; break;
            case 'f': one = '\f'; break;
            case 'n': one = '\n'; break;
            case 'r': one = '\r'; break;
            case 't': one = '\t'; break;
            case 'u': {
                long cp;
                if (vj_hex4(v, &cp) != 0) {
                    return -1;
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    long lo;
                    if (v->end - v->p < 6 || v->p[0] != '\\' || v->p[1] != 'u') {
                        return vj_fail(v, "lone high surrogate");
                    }
                    v->p += 2;
                    if (vj_hex4(v, &lo) != 0) {
                        return -1;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        return vj_fail(v, "bad low surrogate");
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return vj_fail(v, "lone low surrogate");
                }
                if (decoded) {
                    if (cp >= 0x80 && cp <= 0xff) {
                        /* The writer's inverse: one raw byte. */
                        unsigned char raw = (unsigned char)cp;
                        rd_buf_append(decoded, &raw, 1);
                    } else {
                        put_utf8(decoded, cp);
                    }
                }
                continue;
            }
            default:
                return vj_fail(v, "unknown escape");
            }
            if (decoded) {
                rd_buf_append(decoded, &one, 1);
            }
            continue;
        }
        size_t len;
        if (ref_utf8(v->p, (size_t)(v->end - v->p), &len) < 0) {
            return vj_fail(v, "raw bytes that are not well-formed UTF-8");
        }
        if (decoded) {
            rd_buf_append(decoded, v->p, len);
        }
        v->p += len;
    }
    return vj_fail(v, "unterminated string");
}

static void
vj_ws(vj_t *v)
{
    while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n'
                             || *v->p == '\r')) {
        v->p++;
    }
}

static int
vj_number(vj_t *v)
{
    const unsigned char *s = v->p;
    if (v->p < v->end && *v->p == '-') {
        v->p++;
    }
    if (v->p >= v->end) {
        return vj_fail(v, "bad number");
    }
    if (*v->p == '0') {
        v->p++;
    } else if (*v->p >= '1' && *v->p <= '9') {
        while (v->p < v->end && *v->p >= '0' && *v->p <= '9') {
            v->p++;
        }
    } else {
        return vj_fail(v, "bad number");
    }
    if (v->p < v->end && *v->p == '.') {
        v->p++;
        if (v->p >= v->end || *v->p < '0' || *v->p > '9') {
            return vj_fail(v, "bad fraction");
        }
        while (v->p < v->end && *v->p >= '0' && *v->p <= '9') {
            v->p++;
        }
    }
    return v->p > s ? 0 : vj_fail(v, "bad number");
}

static int
vj_lit(vj_t *v, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(v->end - v->p) < n || memcmp(v->p, lit, n) != 0) {
        return vj_fail(v, "unexpected byte");
    }
    v->p += n;
    return 0;
}

static int
vj_value(vj_t *v, rd_buf_t *decoded, int depth)
{
    if (depth > 32) {
        return vj_fail(v, "too deep");
    }
    vj_ws(v);
    if (v->p >= v->end) {
        return vj_fail(v, "value expected");
    }
    switch (*v->p) {
    case '"':
        return vj_string(v, decoded);
    case '{':
        v->p++;
        vj_ws(v);
        if (v->p < v->end && *v->p == '}') {
            v->p++;
            return 0;
        }
        for (;;) {
            vj_ws(v);
            if (vj_string(v, NULL) != 0) {
                return -1;
            }
            vj_ws(v);
            if (v->p >= v->end || *v->p++ != ':') {
                return vj_fail(v, "':' expected");
            }
            if (vj_value(v, NULL, depth + 1) != 0) {
                return -1;
            }
            vj_ws(v);
            if (v->p < v->end && *v->p == ',') {
                v->p++;
                continue;
            }
            if (v->p < v->end && *v->p == '}') {
                v->p++;
                return 0;
            }
            return vj_fail(v, "',' or '}' expected");
        }
    case '[':
        v->p++;
        vj_ws(v);
        if (v->p < v->end && *v->p == ']') {
            v->p++;
            return 0;
        }
        for (;;) {
            if (vj_value(v, NULL, depth + 1) != 0) {
                return -1;
            }
            vj_ws(v);
            if (v->p < v->end && *v->p == ',') {
                v->p++;
                continue;
            }
            if (v->p < v->end && *v->p == ']') {
                v->p++;
                return 0;
            }
            return vj_fail(v, "',' or ']' expected");
        }
    case 't':
        return vj_lit(v, "true");
    case 'f':
        return vj_lit(v, "false");
    case 'n':
        return vj_lit(v, "null");
    default:
        return vj_number(v);
    }
}

/* The whole of b is exactly one JSON value; decoded gets a string's bytes. */
static const char *
valid_json(const rd_buf_t *b, rd_buf_t *decoded)
{
    vj_t v = { (const unsigned char *)rd_buf_rpos(b),
               (const unsigned char *)rd_buf_rpos(b) + rd_buf_used(b), NULL };
    if (vj_value(&v, decoded, 0) != 0) {
        return v.err;
    }
    vj_ws(&v);
    if (v.p != v.end) {
        return "bytes after the value";
    }
    for (const unsigned char *q = (const unsigned char *)rd_buf_rpos(b);
         q < v.end; q++) {
        if (*q == '\n' || *q == '\r') {
            return "a line break in the output";
        }
    }
    return NULL;
}

static char *
show(const void *p, size_t n)
{
    static char out[4096];
    size_t k = 0;
    const unsigned char *s = p;
    for (size_t i = 0; i < n && k + 5 < sizeof(out); i++) {
        k += (size_t)snprintf(out + k, sizeof(out) - k,
                              s[i] >= 0x20 && s[i] < 0x7f ? "%c" : "<%02x>",
                              s[i]);
    }
    out[k] = '\0';
    return out;
}

/* Write s as a JSON string: valid, and decodes back to s. */
static void
roundtrip(const void *s, size_t n)
{
    rd_buf_t b = { 0 }, d = { 0 };
    rd_json_str(&b, s, n);
    const char *err = valid_json(&b, &d);
    ck_assert_msg(err == NULL, "input %s: output %s is not valid JSON: %s",
                  show(s, n), show(rd_buf_rpos(&b), rd_buf_used(&b)), err);
    ck_assert_msg(rd_buf_used(&d) == n
                  && (n == 0 || memcmp(rd_buf_rpos(&d), s, n) == 0),
                  "input %s does not decode back (output %s)", show(s, n),
                  show(rd_buf_rpos(&b), rd_buf_used(&b)));
    rd_buf_free(&b);
    rd_buf_free(&d);
}

/* Write s (n bytes) and compare with the expected JSON text. */
static void
expect(const char *s, size_t n, const char *want)
{
    rd_buf_t b = { 0 };
    rd_json_str(&b, s, n);
    ck_assert_msg(rd_buf_used(&b) == strlen(want)
                  && memcmp(rd_buf_rpos(&b), want, strlen(want)) == 0,
                  "input %s: got %s, want %s", show(s, n),
                  show(rd_buf_rpos(&b), rd_buf_used(&b)), want);
    ck_assert_ptr_null(valid_json(&b, NULL));
    rd_buf_free(&b);
    roundtrip(s, n);
}

#define EXPECT(lit, want) expect(lit, sizeof(lit) - 1, want)

/* --- tests ---------------------------------------------------------------- */

START_TEST(test_every_byte_alone)
{
    for (unsigned c = 0; c < 256; c++) {
        char in = (char)c;
        char want[16];
        if (c == '"') {
            strcpy(want, "\"\\\"\"");
        } else if (c == '\\') {
            strcpy(want, "\"\\\\\"");
        } else if (c == '\n') {
            strcpy(want, "\"\\n\"");
        } else if (c == '\r') {
            strcpy(want, "\"\\r\"");
        } else if (c == '\t') {
            strcpy(want, "\"\\t\"");
        } else if (c == '\b') {
            strcpy(want, "\"\\b\"");
        } else if (c == '\f') {
            strcpy(want, "\"\\f\"");
        } else if (c < 0x20 || c >= 0x7f) {
            /* Controls, DEL, and bytes that alone are no UTF-8. */
            snprintf(want, sizeof(want), "\"\\u00%02x\"", c);
        } else {
            snprintf(want, sizeof(want), "\"%c\"", c);
        }
        expect(&in, 1, want);
    }
}
END_TEST

START_TEST(test_every_pair_of_bytes)
{
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned c = 0; c < 256; c++) {
            char in[2] = { (char)a, (char)c };
            roundtrip(in, 2);
        }
    }
}
END_TEST

START_TEST(test_every_byte_in_sequences)
{
    /* Each byte between, before and after the kinds of neighbours that
     * matter: ASCII, a lead byte, a continuation byte, a whole character. */
    static const char *const ctx[] = {
        "a", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\x80", "\xc3\xa9", "\"",
        "\\", "\xe2\x80\xa8", "",
    };
    for (unsigned c = 0; c < 256; c++) {
        for (size_t i = 0; i < rd_countof(ctx); i++) {
            for (size_t j = 0; j < rd_countof(ctx); j++) {
                char in[32];
                size_t n = 0;
                memcpy(in + n, ctx[i], strlen(ctx[i]));
                n += strlen(ctx[i]);
                in[n++] = (char)c;
                memcpy(in + n, ctx[j], strlen(ctx[j]));
                n += strlen(ctx[j]);
                in[n++] = (char)c;
                roundtrip(in, n);
            }
        }
    }

    /* Random strings biased towards UTF-8 structure. */
    srand(12345);
    static const unsigned char pick[] = {
        0x00, 0x0a, 0x1f, 0x22, 0x5c, 0x41, 0x7f, 0x80, 0x8f, 0x9f, 0xa0,
        0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0,
        0xf1, 0xf4, 0xf5, 0xff,
    };
    for (int t = 0; t < 200000; t++) {
        unsigned char in[12];
        size_t n = (size_t)(rand() % (int)sizeof(in)) + 1;
        for (size_t i = 0; i < n; i++) {
            in[i] = (rand() & 1) ? pick[rand() % (int)sizeof(pick)]
                                 : (unsigned char)rand();
        }
        roundtrip(in, n);
    }
}
END_TEST

START_TEST(test_utf8_valid_passes_through)
{
    EXPECT("", "\"\"");
    EXPECT("hello world", "\"hello world\"");
    EXPECT("caf\xc3\xa9", "\"caf\xc3\xa9\"");                /* é */
    EXPECT("\xc2\x80", "\"\xc2\x80\"");                     /* U+0080 */
    EXPECT("\xdf\xbf", "\"\xdf\xbf\"");                     /* U+07FF */
    EXPECT("\xe0\xa0\x80", "\"\xe0\xa0\x80\"");             /* U+0800 */
    EXPECT("\xe2\x82\xac", "\"\xe2\x82\xac\"");             /* € */
    EXPECT("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");             /* U+D7FF */
    EXPECT("\xee\x80\x80", "\"\xee\x80\x80\"");             /* U+E000 */
    EXPECT("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");             /* U+FFFF */
    EXPECT("\xe2\x80\xa8\xe2\x80\xa9", "\"\xe2\x80\xa8\xe2\x80\xa9\"");
    EXPECT("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\"");     /* U+10000 */
    EXPECT("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");     /* 😀 */
    EXPECT("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");     /* U+10FFFF */
}
END_TEST

START_TEST(test_utf8_broken_is_escaped)
{
    /* Truncated sequences. */
    EXPECT("\xc3", "\"\\u00c3\"");
    EXPECT("\xe2\x82", "\"\\u00e2\\u0082\"");
    EXPECT("\xf0\x9f\x98", "\"\\u00f0\\u009f\\u0098\"");
    EXPECT("\xe2\x82z", "\"\\u00e2\\u0082z\"");
    EXPECT("\xf0\x9f\x98\xc3\xa9", "\"\\u00f0\\u009f\\u0098\xc3\xa9\"");
    /* Lone continuation bytes. */
    EXPECT("\x80", "\"\\u0080\"");
    EXPECT("a\xbf" "b", "\"a\\u00bfb\"");
    EXPECT("\xc3\xa9\xa9", "\"\xc3\xa9\\u00a9\"");
    /* Overlong forms. */
    EXPECT("\xc0\xaf", "\"\\u00c0\\u00af\"");
    EXPECT("\xc1\xbf", "\"\\u00c1\\u00bf\"");
    EXPECT("\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\"");
    EXPECT("\xe0\x9f\xbf", "\"\\u00e0\\u009f\\u00bf\"");
    EXPECT("\xf0\x80\x80\xaf", "\"\\u00f0\\u0080\\u0080\\u00af\"");
    EXPECT("\xf0\x8f\xbf\xbf", "\"\\u00f0\\u008f\\u00bf\\u00bf\"");
    /* Surrogates, encoded directly (CESU-8 style). */
    EXPECT("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"");
    EXPECT("\xed\xbf\xbf", "\"\\u00ed\\u00bf\\u00bf\"");
    EXPECT("\xed\xa0\xbd\xed\xb8\x80",
           "\"\\u00ed\\u00a0\\u00bd\\u00ed\\u00b8\\u0080\"");
    /* Above U+10FFFF and bytes never used. */
    EXPECT("\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\"");
    EXPECT("\xf5\x80\x80\x80", "\"\\u00f5\\u0080\\u0080\\u0080\"");
    EXPECT("\xf8\x88\x80\x80\x80", "\"\\u00f8\\u0088\\u0080\\u0080\\u0080\"");
    EXPECT("\xfe\xff", "\"\\u00fe\\u00ff\"");
    /* A NUL inside. */
    EXPECT("a\0b", "\"a\\u0000b\"");
}
END_TEST

START_TEST(test_big_string_chunks)
{
    /* Characters across the writer's internal 4096-byte chunks. */
    size_t n = 1 << 20;
    unsigned char *in = malloc(n);
    srand(7);
    for (size_t i = 0; i < n;) {
        static const char *const parts[] = {
            "\xf0\x9f\x98\x80", "\xe2\x82\xac", "\xc3\xa9", "a", "\x01",
            "\xff", "\"",
        };
        const char *p = parts[rand() % (int)rd_countof(parts)];
        size_t k = strlen(p);
        if (i + k > n) {
            k = n - i;
        }
        memcpy(in + i, p, k);
        i += k;
    }
    roundtrip(in, n);
    for (size_t off = 4090; off < 4100; off++) {
        roundtrip(in + off - 4090, 4096 + (off - 4090));
    }
    free(in);
}
END_TEST

static void
expect_cut(const char *s, size_t n, size_t max, const char *want,
           size_t want_left)
{
    rd_buf_t b = { 0 };
    size_t left = rd_json_str_cut(&b, s, n, max);
    ck_assert_msg(rd_buf_used(&b) == strlen(want)
                  && memcmp(rd_buf_rpos(&b), want, strlen(want)) == 0,
                  "cut %s at %zu: got %s, want %s", show(s, n), max,
                  show(rd_buf_rpos(&b), rd_buf_used(&b)), show(want, strlen(want)));
    ck_assert_uint_eq(left, want_left);
    ck_assert_ptr_null(valid_json(&b, NULL));
    rd_buf_free(&b);
}

START_TEST(test_cut)
{
    expect_cut("hello", 5, 0, "\"hello\"", 0);
    expect_cut("hello", 5, 5, "\"hello\"", 0);
    expect_cut("hello", 5, 3, "\"hel\xe2\x80\xa6(+2 bytes)\"", 2);
    /* é is c3 a9: a cut between its bytes leaves it out whole. */
    expect_cut("ab\xc3\xa9z", 5, 3, "\"ab\xe2\x80\xa6(+3 bytes)\"", 3);
    expect_cut("ab\xc3\xa9z", 5, 4, "\"ab\xc3\xa9\xe2\x80\xa6(+1 bytes)\"", 1);
    /* 😀 is f0 9f 98 80. */
    expect_cut("\xf0\x9f\x98\x80!", 5, 1, "\"\xe2\x80\xa6(+5 bytes)\"", 5);
    expect_cut("\xf0\x9f\x98\x80!", 5, 2, "\"\xe2\x80\xa6(+5 bytes)\"", 5);
    expect_cut("\xf0\x9f\x98\x80!", 5, 3, "\"\xe2\x80\xa6(+5 bytes)\"", 5);
    expect_cut("\xf0\x9f\x98\x80!", 5, 4, "\"\xf0\x9f\x98\x80\xe2\x80\xa6(+1 bytes)\"", 1);
    /* Not UTF-8: cut exactly at max, the bytes escaped. */
    expect_cut("\x80\x80\x80\x80\x80", 5, 2, "\"\\u0080\\u0080\xe2\x80\xa6(+3 bytes)\"", 3);
    expect_cut("\xe2\x82\xe2\x82\xac", 5, 3, "\"\\u00e2\\u0082\xe2\x80\xa6(+3 bytes)\"", 3);
    /* A big value cut small. */
    size_t n = 1 << 20;
    char *big = malloc(n);
    memset(big, 'x', n);
    char want[64];
    snprintf(want, sizeof(want), "\"xxxx\xe2\x80\xa6(+%zu bytes)\"", n - 4);
    expect_cut(big, n, 4, want, n - 4);
    free(big);

    /* Every byte pair and triple cut at every place stays valid JSON. */
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned c = 0; c < 256; c += 3) {
            unsigned char in[4] = { (unsigned char)a, (unsigned char)c, 0x80, 0xa9 };
            for (size_t max = 1; max < 4; max++) {
                rd_buf_t b = { 0 };
                rd_json_str_cut(&b, (const char *)in, 4, max);
                const char *err = valid_json(&b, NULL);
                ck_assert_msg(err == NULL, "cut %s at %zu: %s", show(in, 4), max, err);
                rd_buf_free(&b);
            }
        }
    }
}
END_TEST

START_TEST(test_members_and_numbers)
{
    rd_buf_t b = { 0 };
    rd_buf_append(&b, "{", 1);
    rd_json_key(&b, "s");
    rd_json_cstr(&b, "x\"y");
    rd_json_key(&b, "n");
    rd_json_cstr(&b, NULL);
    rd_json_key(&b, "i");
    rd_json_int(&b, -42);
    rd_json_key(&b, "min");
    rd_json_int(&b, INT64_MIN);
    rd_json_key(&b, "max");
    rd_json_uint(&b, UINT64_MAX);
    rd_json_key(&b, "zero");
    rd_json_uint(&b, 0);
    rd_json_key(&b, "a");
    rd_buf_append(&b, "[", 1);
    rd_json_sep(&b);
    rd_json_cstr(&b, "one");
    rd_json_sep(&b);
    rd_json_int(&b, 2);
    rd_json_sep(&b);
    rd_json_bool(&b, true);
    rd_json_sep(&b);
    rd_json_bool(&b, false);
    rd_buf_append(&b, "]", 1);
    rd_json_key(&b, "e");
    rd_buf_append(&b, "[]", 2);
    rd_buf_append(&b, "}", 1);

    const char *want = "{\"s\":\"x\\\"y\",\"n\":null,\"i\":-42,"
        "\"min\":-9223372036854775808,\"max\":18446744073709551615,"
        "\"zero\":0,\"a\":[\"one\",2,true,false],\"e\":[]}";
    ck_assert_msg(rd_buf_used(&b) == strlen(want)
                  && memcmp(rd_buf_rpos(&b), want, strlen(want)) == 0,
                  "got %s", show(rd_buf_rpos(&b), rd_buf_used(&b)));
    ck_assert_ptr_null(valid_json(&b, NULL));
    rd_buf_free(&b);
}
END_TEST

START_TEST(test_validator_catches_bad_json)
{
    /* The checker itself must reject what the writer must never write. */
    static const char *const bad[] = {
        "\"a\nb\"", "\"\x01\"", "\"\\x\"", "\"\xc3\"", "\"\xed\xa0\x80\"",
        "\"\\ud800\"", "\"abc", "{\"a\" 1}", "[1,]", "\"\xc0\xaf\"",
    };
    for (size_t i = 0; i < rd_countof(bad); i++) {
        rd_buf_t b = { 0 };
        rd_buf_append_str(&b, bad[i]);
        ck_assert_msg(valid_json(&b, NULL) != NULL, "accepted %s",
                      show(bad[i], strlen(bad[i])));
        rd_buf_free(&b);
    }
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_validator_catches_bad_json);
    tcase_add_test(tc, test_every_byte_alone);
    tcase_add_test(tc, test_every_pair_of_bytes);
    tcase_add_test(tc, test_every_byte_in_sequences);
    tcase_add_test(tc, test_utf8_valid_passes_through);
    tcase_add_test(tc, test_utf8_broken_is_escaped);
    tcase_add_test(tc, test_big_string_chunks);
    tcase_add_test(tc, test_cut);
    tcase_add_test(tc, test_members_and_numbers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * fuzz_resp_request.c - libFuzzer target for the RESP request parser.
 *
 * Input layout: byte 0 picks the limits (bit 0: tiny limits, so that every
 * limit is easy to reach), byte 1 seeds the chunk sizes, the rest is what
 * a client sends. The bytes are parsed as a connection would: whole, then
 * in chunks chosen by the seed with the buffer moved to a new allocation
 * before every call, and (for short inputs) one byte at a time. All runs
 * must describe the same requests. Every complete request must also
 * survive re-encoding: the encoder's output parses back to the same
 * arguments and scans as exactly one reply. Inline commands are compared
 * with a plain reimplementation of Redis's sdssplitargs().
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_resp.h"

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

static const rd_resp_limits_t fuzz_lim_redis = {
    .max_bulk = 512ULL * 1024 * 1024,
    .max_array = 1024 * 1024,
    .max_inline = 64 * 1024,
};

static const rd_resp_limits_t fuzz_lim_tiny = {
    .max_bulk = 40,
    .max_array = 6,
    .max_inline = 24,
};

/* The encoder's output for a parsed request must parse back to the same
 * request, and scan as one whole reply. */
static void
fuzz_roundtrip(const rd_resp_req_parser_t *p, const rd_resp_limits_t *lim)
{
    rd_buf_t b = {0};
    rd_resp_req_parser_t q;
    rd_resp_reply_scanner_t s;
    const char *err;
    size_t used;

    if (p->argc > lim->max_array) {
        return;
    }
    for (size_t i = 0; i < p->argc; i++) {
        if (p->argv[i].len > lim->max_bulk) {
            return;
        }
    }

    rd_resp_encode_command(&b, p->argc, p->argv);

    rd_resp_req_init(&q);
    CHECK(rd_resp_parse_request(&q, b.data, b.len, lim, &err) == RD_RESP_OK);
    CHECK(q.consumed == b.len);
    CHECK(q.argc == p->argc);
    for (size_t i = 0; i < q.argc; i++) {
        CHECK(q.argv[i].len == p->argv[i].len);
        CHECK(memcmp(q.argv[i].data, p->argv[i].data, q.argv[i].len) == 0);
    }
    rd_resp_req_free(&q);

    rd_resp_reply_init(&s);
    CHECK(rd_resp_scan_reply(&s, b.data, b.len, lim, &used, &err)
          == RD_RESP_OK);
    CHECK(used == b.len);
    CHECK(s.type == '*');
    rd_buf_free(&b);
}

/*
 * A reference for inline commands: sdssplitargs() written as Redis has
 * it, walking a NUL-terminated copy of the line with isspace(). Returns
 * the number of tokens (written to out as len=bytes;) or -1 for
 * unbalanced quotes.
 */
static int
fuzz_ref_splitargs(const char *line, rd_buf_t *out)
{
    const char *q = line;
    int         argc = 0;

    for (;;) {
        while (*q && isspace((unsigned char)*q)) {
            q++;
        }
        if (*q == '\0') {
            return argc;
        }

        rd_buf_t tok = {0};
        int inq = 0, insq = 0, done = 0;
        while (!done) {
            if (inq) {
                if (q[0] == '\\' && q[1] == 'x'
                    && isxdigit((unsigned char)q[2])
                    && isxdigit((unsigned char)q[3]))
                {
                    char hex[3] = { q[2], q[3], 0 };
                    char c = (char)strtol(hex, NULL, 16);
                    rd_buf_append(&tok, &c, 1);
                    q += 3;
                } else if (q[0] == '\\' && q[1]) {
                    char c;
                    q++;
                    switch (*q) {
                    case 'n': c = '\n'; break;
                    case 'r': c = '\r'; break;
                    case 't': c = '\t'; break;
                    case 'b': c = '\b'; break;
                    case 'a': c = '\a'; break;
                    default: c = *q; break;
                    }
                    rd_buf_append(&tok, &c, 1);
                } else if (*q == '"') {
                    if (q[1] && !isspace((unsigned char)q[1])) {
                        rd_buf_free(&tok);
                        return -1;
                    }
                    done = 1;
                } else if (!*q) {
                    rd_buf_free(&tok);
                    return -1;
                } else {
                    rd_buf_append(&tok, q, 1);
                }
            } else if (insq) {
                if (q[0] == '\\' && q[1] == '\'') {
                    q++;
                    rd_buf_append(&tok, "'", 1);
                } else if (*q == '\'') {
                    if (q[1] && !isspace((unsigned char)q[1])) {
                        rd_buf_free(&tok);
                        return -1;
                    }
                    done = 1;
                } else if (!*q) {
                    rd_buf_free(&tok);
                    return -1;
                } else {
                    rd_buf_append(&tok, q, 1);
                }
            } else {
                switch (*q) {
                case ' ': case '\n': case '\r': case '\t': case '\0':
                    done = 1;
                    break;
                case '"':
                    inq = 1;
                    break;
                case '\'':
                    insq = 1;
                    break;
                default:
                    rd_buf_append(&tok, q, 1);
                    break;
                }
            }
            if (*q) {
                q++;
            }
        }
        rd_buf_appendf(out, "%zu=", tok.len);
        rd_buf_append(out, tok.data, tok.len);
        rd_buf_append_str(out, ";");
        rd_buf_free(&tok);
        argc++;
    }
}

/* Compares an inline request's outcome with the reference. `conn` starts
 * with the request; `ok` says whether the parser accepted it. */
static void
fuzz_check_inline(const rd_resp_req_parser_t *p, const char *conn,
    size_t clen, int ok)
{
    const char *nl = memchr(conn, '\n', clen);
    rd_buf_t    want = {0}, got = {0};

    CHECK(nl != NULL);
    size_t n = (size_t)(nl - conn);
    if (n > 0 && conn[n - 1] == '\r') {
        n--;
    }
    CHECK(memchr(conn, '\0', n) == NULL);
    char *line = malloc(n + 1);
    memcpy(line, conn, n);
    line[n] = '\0';

    int argc = fuzz_ref_splitargs(line, &want);
    if (!ok) {
        CHECK(argc == -1);
    } else {
        CHECK(argc >= 0 && (size_t)argc == p->argc);
        for (size_t i = 0; i < p->argc; i++) {
            rd_buf_appendf(&got, "%zu=", p->argv[i].len);
            rd_buf_append(&got, p->argv[i].data, p->argv[i].len);
            rd_buf_append_str(&got, ";");
        }
        CHECK(want.len == got.len
              && (want.len == 0
                  || memcmp(want.data, got.data, want.len) == 0));
    }
    free(line);
    rd_buf_free(&want);
    rd_buf_free(&got);
}

static void
fuzz_check_argv(const rd_resp_req_parser_t *p, const char *buf)
{
    CHECK(p->argc >= 1);
    for (size_t i = 0; i < p->argc; i++) {
        const char *d = p->argv[i].data;
        size_t      l = p->argv[i].len;
        int in_buf = d >= buf && d + l <= buf + p->consumed;
        int in_scratch = p->scratch.data != NULL && d >= p->scratch.data
                         && d + l <= p->scratch.data + p->scratch.len;
        CHECK(in_buf || in_scratch);
    }
}

/* Feeds `in` to a parser as a connection would, in chunks picked by
 * `mode`, and appends a transcript of what was parsed to `tx`. */
static void
fuzz_run(const char *in, size_t n, const rd_resp_limits_t *lim,
    unsigned seed, int mode, rd_buf_t *tx)
{
    rd_resp_req_parser_t p;
    char    *conn = NULL;
    size_t   clen = 0, fed = 0;
    unsigned x = seed * 2654435761u + 1;

    rd_resp_req_init(&p);
    do {
        size_t step;

        /* mode 0: everything at once; 1: chunks of 1..64 bytes chosen by
         * the seed; 2: one byte at a time. */
        if (mode == 0) {
            step = n - fed;
        } else if (mode == 1) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            step = 1 + x % 64;
        } else {
            step = 1;
        }
        if (step > n - fed) {
            step = n - fed;
        }

        char *moved = malloc(clen + step + 1);
        if (clen > 0) {
            memcpy(moved, conn, clen);
        }
        if (step > 0) {
            memcpy(moved + clen, in + fed, step);
        }
        free(conn);
        conn = moved;
        clen += step;
        fed += step;

        for (;;) {
            const char *err = NULL;
            rd_resp_status_t st = rd_resp_parse_request(&p, conn, clen, lim,
                                                        &err);
            if (st == RD_RESP_AGAIN) {
                break;
            }
            if (st == RD_RESP_ERROR) {
                CHECK(err != NULL);
                CHECK(strncmp(err, "Protocol error: ", 16) == 0);
                if (mode == 0 && strcmp(err, "Protocol error: unbalanced "
                                            "quotes in request") == 0)
                {
                    fuzz_check_inline(&p, conn, clen, 0);
                }
                rd_buf_appendf(tx, "E:%s;", err);
                goto done;
            }
            CHECK(p.consumed > 0 && p.consumed <= clen);
            if (st == RD_RESP_EMPTY) {
                CHECK(p.argc == 0);
                rd_buf_append_str(tx, "0;");
            } else {
                CHECK(st == RD_RESP_OK);
                fuzz_check_argv(&p, conn);
                if (mode == 0) {
                    fuzz_roundtrip(&p, lim);
                    if (conn[0] != '*') {
                        fuzz_check_inline(&p, conn, clen, 1);
                    }
                }
                rd_buf_appendf(tx, "%zu/%zu:", p.consumed, p.argc);
                for (size_t i = 0; i < p.argc; i++) {
                    rd_buf_appendf(tx, "%zu=", p.argv[i].len);
                    rd_buf_append(tx, p.argv[i].data, p.argv[i].len);
                }
                rd_buf_append_str(tx, ";");
            }
            memmove(conn, conn + p.consumed, clen - p.consumed);
            clen -= p.consumed;
            rd_resp_req_reset(&p);
        }
    } while (fed < n);
    rd_buf_appendf(tx, "P%zu", clen);
done:
    free(conn);
    rd_resp_req_free(&p);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    rd_buf_t whole = {0}, split = {0};

    if (size < 2) {
        return 0;
    }
    const rd_resp_limits_t *lim = (data[0] & 1) ? &fuzz_lim_tiny
                                                : &fuzz_lim_redis;
    const char *in = (const char *)data + 2;
    size_t      n = size - 2;

    fuzz_run(in, n, lim, data[1], 0, &whole);
    fuzz_run(in, n, lim, data[1], 1, &split);
    CHECK(whole.len == split.len
          && memcmp(whole.data, split.data, whole.len) == 0);
    if (n <= 512) {
        rd_buf_reset(&split);
        fuzz_run(in, n, lim, data[1], 2, &split);
        CHECK(whole.len == split.len
              && memcmp(whole.data, split.data, whole.len) == 0);
    }
    rd_buf_free(&whole);
    rd_buf_free(&split);
    return 0;
}

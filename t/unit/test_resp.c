/*
 * test_resp.c - unit tests of the RESP2 codec (modules/resp).
 *
 * Most tests describe what a connection would see as a transcript string
 * and compare it with the expected one. The same input is then fed again
 * split at every byte position, one byte at a time and in uneven chunks,
 * with the buffer copied to a new allocation before every call, and each
 * of those runs must give the very same transcript.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_test_edge.h"
#include "rd_resp.h"

static const rd_resp_limits_t lim_redis = {
    .max_bulk = 512ULL * 1024 * 1024,
    .max_array = 1024 * 1024,
    .max_inline = 64 * 1024,
};

/* ------------------------------------------------------------------------
 * Transcripts
 * --------------------------------------------------------------------- */

/* Appends bytes in a readable form: printable ASCII as is, anything else
 * and the characters used as delimiters as \xHH. */
static void
tx_escaped(rd_buf_t *tx, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            rd_buf_appendf(tx, "\\x%02x", c);
        } else {
            rd_buf_append(tx, &s[i], 1);
        }
    }
}

static char *
tx_finish(rd_buf_t *tx)
{
    rd_buf_append(tx, "", 1);
    return tx->data;
}

/* Asserts that every argument lies inside the request's bytes or inside
 * the parser's scratch storage, which is what the contract promises. */
static void
check_argv_inside(const rd_resp_req_parser_t *p, const char *buf)
{
    ck_assert_uint_ge(p->argc, 1);
    for (size_t i = 0; i < p->argc; i++) {
        const char *d = p->argv[i].data;
        size_t      l = p->argv[i].len;
        bool in_buf = d >= buf && d + l <= buf + p->consumed;
        bool in_scratch = p->scratch.data != NULL && d >= p->scratch.data
                          && d + l <= p->scratch.data + p->scratch.len;
        ck_assert_msg(in_buf || in_scratch, "argv[%zu] points outside", i);
    }
}

/*
 * Simulates a client connection: the bytes of `in` arrive in chunks ending
 * at cuts[0], cuts[1], ... and n; after each chunk every complete request
 * is parsed and dropped from the front of the connection's buffer. The
 * buffer is copied to a fresh allocation before every parser call.
 */
static char *
run_requests(const char *in, size_t n, const size_t *cuts, size_t ncuts,
    const rd_resp_limits_t *lim)
{
    rd_resp_req_parser_t p;
    rd_buf_t             tx = {0};
    char                *conn = NULL;
    size_t               clen = 0, fed = 0;
    bool                 failed = false;

    rd_resp_req_init(&p);
    for (size_t c = 0; c <= ncuts && !failed; c++) {
        size_t upto = c < ncuts ? cuts[c] : n;

        for (;;) {
            char *moved = malloc(clen + (upto - fed) + 1);
            if (clen > 0) {
                memcpy(moved, conn, clen);
            }
            if (upto > fed) {
                memcpy(moved + clen, in + fed, upto - fed);
            }
            free(conn);
            conn = moved;
            clen += upto - fed;
            fed = upto;

            const char *err = NULL;
            rd_resp_status_t st = rd_resp_parse_request(&p, conn, clen, lim,
                                                        &err);
            if (st == RD_RESP_AGAIN) {
                break;
            }
            if (st == RD_RESP_ERROR) {
                ck_assert_ptr_nonnull(err);
                rd_buf_appendf(&tx, "ERR(%s);", err);
                failed = true;
                break;
            }
            ck_assert_uint_le(p.consumed, clen);
            ck_assert_uint_gt(p.consumed, 0);
            if (st == RD_RESP_OK) {
                check_argv_inside(&p, conn);
                rd_buf_append_str(&tx, "[");
                for (size_t i = 0; i < p.argc; i++) {
                    rd_buf_append_str(&tx, i ? " \"" : "\"");
                    tx_escaped(&tx, p.argv[i].data, p.argv[i].len);
                    rd_buf_append_str(&tx, "\"");
                }
                rd_buf_append_str(&tx, "];");
            } else {
                ck_assert_int_eq(st, RD_RESP_EMPTY);
                ck_assert_uint_eq(p.argc, 0);
                rd_buf_append_str(&tx, "EMPTY;");
            }
            memmove(conn, conn + p.consumed, clen - p.consumed);
            clen -= p.consumed;
            rd_resp_req_reset(&p);
        }
    }
    if (!failed && clen > 0) {
        rd_buf_appendf(&tx, "PENDING(%zu);", clen);
    }
    free(conn);
    rd_resp_req_free(&p);
    return tx_finish(&tx);
}

/*
 * Simulates the backend side: the reply bytes arrive in chunks, each
 * copied to its own allocation, and the scanner reports where each reply
 * ends. The transcript lists each reply's type and length.
 */
static char *
run_replies(const char *in, size_t n, const size_t *cuts, size_t ncuts,
    const rd_resp_limits_t *lim)
{
    rd_resp_reply_scanner_t s;
    rd_buf_t                tx = {0};
    size_t                  fed = 0, cur = 0;
    bool                    failed = false;

    rd_resp_reply_init(&s);
    for (size_t c = 0; c <= ncuts && !failed; c++) {
        size_t upto = c < ncuts ? cuts[c] : n;
        size_t len = upto - fed;
        char  *chunk = malloc(len + 1);
        size_t off = 0;

        if (len > 0) {
            memcpy(chunk, in + fed, len);
        }
        fed = upto;
        for (;;) {
            const char *err = NULL;
            size_t      used = (size_t)-1;
            rd_resp_status_t st = rd_resp_scan_reply(&s, chunk + off,
                                                     len - off, lim, &used,
                                                     &err);
            if (st == RD_RESP_ERROR) {
                ck_assert_ptr_nonnull(err);
                rd_buf_appendf(&tx, "ERR(%s);", err);
                failed = true;
                break;
            }
            ck_assert_uint_le(used, len - off);
            cur += used;
            off += used;
            if (st == RD_RESP_AGAIN) {
                ck_assert_uint_eq(off, len);
                break;
            }
            ck_assert_int_eq(st, RD_RESP_OK);
            ck_assert_uint_gt(used, 0);
            rd_buf_appendf(&tx, "%c%zu;", s.type, cur);
            cur = 0;
        }
        free(chunk);
    }
    if (!failed && cur > 0) {
        rd_buf_appendf(&tx, "PENDING(%zu);", cur);
    }
    return tx_finish(&tx);
}

typedef char *(*runner_pt)(const char *in, size_t n, const size_t *cuts,
    size_t ncuts, const rd_resp_limits_t *lim);

/*
 * Runs `in` whole and asserts the transcript, then split in every way
 * listed at the top of this file. Splits at every byte are O(n^2) in
 * copying, so callers keep such inputs small.
 */
static void
check_all_splits(runner_pt run, const char *in, size_t n,
    const rd_resp_limits_t *lim, const char *want)
{
    char  *got = run(in, n, NULL, 0, lim);
    size_t cuts[3];

    ck_assert_str_eq(got, want);
    free(got);

    for (size_t k = 1; k < n; k++) {
        cuts[0] = k;
        got = run(in, n, cuts, 1, lim);
        ck_assert_msg(strcmp(got, want) == 0,
                      "split at %zu: got %s, want %s", k, got, want);
        free(got);
    }

    size_t *every = malloc((n + 1) * sizeof(size_t));
    for (size_t k = 1; k < n; k++) {
        every[k - 1] = k;
    }
    got = run(in, n, every, n > 0 ? n - 1 : 0, lim);
    ck_assert_msg(strcmp(got, want) == 0,
                  "byte at a time: got %s, want %s", got, want);
    free(got);
    free(every);

    for (size_t a = 1; a + 2 < n; a += 3) {
        cuts[0] = a;
        cuts[1] = a + (n - a) / 2;
        cuts[2] = n - 1;
        got = run(in, n, cuts, 3, lim);
        ck_assert_msg(strcmp(got, want) == 0,
                      "three cuts at %zu: got %s, want %s", a, got, want);
        free(got);
    }
}

static void
req(const char *in, const char *want)
{
    check_all_splits(run_requests, in, strlen(in), &lim_redis, want);
}

static void
req_lim(const char *in, const rd_resp_limits_t *lim, const char *want)
{
    check_all_splits(run_requests, in, strlen(in), lim, want);
}

static void
rep(const char *in, const char *want)
{
    check_all_splits(run_replies, in, strlen(in), &lim_redis, want);
}

static void
rep_lim(const char *in, const rd_resp_limits_t *lim, const char *want)
{
    check_all_splits(run_replies, in, strlen(in), lim, want);
}

/* Only whole and in a few pieces, for inputs too big to split everywhere. */
static void
check_few_splits(runner_pt run, const char *in, size_t n,
    const rd_resp_limits_t *lim, const char *want)
{
    size_t cuts[] = { 1, n / 3, n / 2, n - 1 };
    char  *got = run(in, n, NULL, 0, lim);

    ck_assert_str_eq(got, want);
    free(got);
    got = run(in, n, cuts, rd_countof(cuts), lim);
    ck_assert_str_eq(got, want);
    free(got);
}

/* ------------------------------------------------------------------------
 * Request parser: well-formed input
 * --------------------------------------------------------------------- */

START_TEST(test_request_multibulk)
{
    req("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n",
        "[\"SET\" \"k\" \"hello\"];");
    req("*1\r\n$0\r\n\r\n", "[\"\"];");
    req("*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n",
        "[\"ECHO\" \"a\\x0d\\x0ab\"];");
}
END_TEST

START_TEST(test_request_split_at_every_byte)
{
    req("*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n"
        "PING\r\n"
        "*0\r\n"
        "set \"a b\" 'c'\n"
        "*1\r\n$4\r\nQUIT\r\n",
        "[\"LLEN\" \"mylist\"];[\"PING\"];EMPTY;[\"set\" \"a b\" \"c\"];"
        "[\"QUIT\"];");
}
END_TEST

START_TEST(test_request_pipeline_in_one_buffer)
{
    rd_resp_req_parser_t p;
    const char *err;
    const char  buf[] = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
                        "ECHO x\r\n*1\r\n$4\r\nPI";
    size_t      off = 0, len = sizeof(buf) - 1;

    rd_resp_req_init(&p);
    ck_assert_int_eq(rd_resp_parse_request(&p, buf, len, NULL, &err),
                     RD_RESP_OK);
    ck_assert_uint_eq(p.consumed, 14);
    ck_assert_uint_eq(p.argc, 1);
    off += p.consumed;
    rd_resp_req_reset(&p);

    ck_assert_int_eq(rd_resp_parse_request(&p, buf + off, len - off, NULL,
                                           &err), RD_RESP_OK);
    ck_assert_uint_eq(p.argc, 2);
    ck_assert_ptr_eq(p.argv[1].data, buf + off + 17);
    off += p.consumed;
    rd_resp_req_reset(&p);

    ck_assert_int_eq(rd_resp_parse_request(&p, buf + off, len - off, NULL,
                                           &err), RD_RESP_OK);
    ck_assert_uint_eq(p.consumed, 8);
    ck_assert_uint_eq(p.argc, 2);
    off += p.consumed;
    rd_resp_req_reset(&p);

    ck_assert_int_eq(rd_resp_parse_request(&p, buf + off, len - off, NULL,
                                           &err), RD_RESP_AGAIN);
    rd_resp_req_free(&p);
}
END_TEST

START_TEST(test_request_buffer_moves_between_calls)
{
    rd_resp_req_parser_t p;
    const char *err;
    const char  req1[] = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    size_t      n = sizeof(req1) - 1;
    char       *a = malloc(n), *b;

    /* The first call sees all but the last bulk; the second call gets the
     * bytes at a different address, and argv must point there. */
    memcpy(a, req1, n - 4);
    rd_resp_req_init(&p);
    ck_assert_int_eq(rd_resp_parse_request(&p, a, n - 4, NULL, &err),
                     RD_RESP_AGAIN);
    b = malloc(n);
    memcpy(b, a, n - 4);
    free(a);
    memcpy(b + n - 4, req1 + n - 4, 4);
    ck_assert_int_eq(rd_resp_parse_request(&p, b, n, NULL, &err),
                     RD_RESP_OK);
    ck_assert_ptr_eq(p.argv[0].data, b + 8);
    ck_assert_ptr_eq(p.argv[1].data, b + 17);
    ck_assert_int_eq(memcmp(p.argv[1].data, "key", 3), 0);

    /* Asked again without a reset, it answers the same for the new place. */
    a = malloc(n);
    memcpy(a, b, n);
    free(b);
    ck_assert_int_eq(rd_resp_parse_request(&p, a, n, NULL, &err),
                     RD_RESP_OK);
    ck_assert_ptr_eq(p.argv[1].data, a + 17);
    free(a);
    rd_resp_req_free(&p);
}
END_TEST

START_TEST(test_request_binary_bulk_all_bytes)
{
    char   in[512];
    char   want[2048];
    size_t n = 0;
    rd_buf_t w = {0};

    n += (size_t)sprintf(in, "*2\r\n$3\r\nSET\r\n$256\r\n");
    for (int c = 0; c < 256; c++) {
        in[n++] = (char)c;
    }
    in[n++] = '\r';
    in[n++] = '\n';

    rd_buf_append_str(&w, "[\"SET\" \"");
    tx_escaped(&w, in + n - 258, 256);
    rd_buf_append_str(&w, "\"];");
    rd_buf_append(&w, "", 1);
    snprintf(want, sizeof(want), "%s", w.data);
    rd_buf_free(&w);

    check_all_splits(run_requests, in, n, &lim_redis, want);
}
END_TEST

START_TEST(test_request_empty_multibulk_is_skipped)
{
    /* Redis treats a count of zero or less as a request to ignore. */
    req("*0\r\n", "EMPTY;");
    req("*-1\r\n", "EMPTY;");
    req("*-10\r\n*1\r\n$4\r\nPING\r\n", "EMPTY;[\"PING\"];");
    req("*-9223372036854775808\r\n", "EMPTY;");
}
END_TEST

START_TEST(test_request_empty_inline_line_is_skipped)
{
    req("\r\n", "EMPTY;");
    req("\n", "EMPTY;");
    req("   \t \r\n", "EMPTY;");
    req("\r\n\r\nPING\r\n", "EMPTY;EMPTY;[\"PING\"];");
}
END_TEST

/* ------------------------------------------------------------------------
 * Request parser: inline commands
 * --------------------------------------------------------------------- */

START_TEST(test_inline_splits_on_blanks)
{
    req("SET  k\tv\r\n", "[\"SET\" \"k\" \"v\"];");
    req("  PING  \n", "[\"PING\"];");
    /* Only one '\r' before the '\n' is line ending; another one is a blank. */
    req("PING\r\r\n", "[\"PING\"];");
    /* \v and \f are skipped between tokens but do not end one. */
    req("\va\vb\fc \f\n", "[\"a\\x0bb\\x0cc\"];");
    /* Bytes above 0x7f are ordinary characters. */
    req("GET \xff\xfe\n", "[\"GET\" \"\\xff\\xfe\"];");
    /* A lone '\r' ends a token. */
    req("a\rb\n", "[\"a\" \"b\"];");
}
END_TEST

START_TEST(test_inline_quotes_like_sdssplitargs)
{
    req("set \"a b\" 'c d'\r\n", "[\"set\" \"a b\" \"c d\"];");
    req("\"\" ''\n", "[\"\" \"\"];");
    req("\"\\x41\\x4a\\x7a\\xff\"\n", "[\"AJz\\xff\"];");
    req("\"\\n\\r\\t\\b\\a\\q\\\\\\\"\"\n",
        "[\"\\x0a\\x0d\\x09\\x08\\x07q\\x5c\\x22\"];");
    /* \x needs two hex digits, or it is x followed by the rest. */
    req("\"\\x4g\" \"\\x\"\n", "[\"x4g\" \"x\"];");
    /* Single quotes only know \'. */
    req("'it\\'s' 'a\\nb'\n", "[\"it's\" \"a\\x5cnb\"];");
    /* Quotes may start in the middle of a token. */
    req("a\"b c\" d'e f'\n", "[\"ab c\" \"de f\"];");
    /* A closing quote may be followed by any blank, even \v. */
    req("\"a\"\vb\n", "[\"a\" \"b\"];");
    /* Quoting lets an argument hold CR and LF and NUL. */
    req("\"\\r\\n\\x00\"\n", "[\"\\x0d\\x0a\\x00\"];");
}
END_TEST

START_TEST(test_inline_unbalanced_quotes_is_protocol_error)
{
    const char *e = "ERR(Protocol error: unbalanced quotes in request);";

    req("set \"a b\r\n", e);
    req("set 'a b\n", e);
    req("\"a\"b\n", e);
    req("'a'b\n", e);
    req("\"a\\\"\n", e);
    /* The '\r' of "\r\n" is not inside the quotes. */
    req("\"abc\r\n", e);
    req("PING\r\n\"x\n", "[\"PING\"];" "ERR(Protocol error: unbalanced "
        "quotes in request);");
}
END_TEST

START_TEST(test_inline_too_big_request)
{
    rd_resp_limits_t lim = lim_redis;

    lim.max_inline = 8;
    /* Eight bytes of line and then the newline is still fine... */
    req_lim("12345678\n", &lim, "[\"12345678\"];");
    req_lim("1234567\r\n", &lim, "[\"1234567\"];");
    /* ...nine bytes without a newline are not, however they arrive. */
    req_lim("123456789", &lim,
            "ERR(Protocol error: too big inline request);");
    req_lim("123456789\n", &lim,
            "ERR(Protocol error: too big inline request);");
    req_lim("12345678\r\n", &lim,
            "ERR(Protocol error: too big inline request);");
    /* The limit is per line, not per buffer. */
    req_lim("1234567\n1234567\n", &lim, "[\"1234567\"];[\"1234567\"];");
}
END_TEST

START_TEST(test_inline_too_big_request_default_limit)
{
    size_t n = 64 * 1024 + 2;
    char  *in = malloc(n);

    memset(in, 'a', n);
    check_few_splits(run_requests, in, 64 * 1024, &lim_redis,
                     "PENDING(65536);");
    check_few_splits(run_requests, in, 64 * 1024 + 1, &lim_redis,
                     "ERR(Protocol error: too big inline request);");
    free(in);
}
END_TEST

START_TEST(test_request_nul_in_line_waits_until_too_big)
{
    rd_resp_limits_t lim = lim_redis;
    char in[64];

    /* Redis's strchr() stops at a NUL, so the line never ends; this is
     * the "Protocol desync regression test" of Redis's protocol.tcl. */
    lim.max_inline = 16;
    memset(in, 'A', sizeof(in));
    in[0] = '\0';
    in[10] = '\n';
    check_all_splits(run_requests, in, 16, &lim, "PENDING(16);");
    check_all_splits(run_requests, in, 17, &lim,
                     "ERR(Protocol error: too big inline request);");

    memcpy(in, "*\0\r\n", 4);
    check_all_splits(run_requests, in, 17, &lim,
                     "ERR(Protocol error: too big mbulk count string);");

    memcpy(in, "*1\r\n$\0\r\n", 8);
    check_all_splits(run_requests, in, 20, &lim, "PENDING(20);");
    check_all_splits(run_requests, in, 21, &lim,
                     "ERR(Protocol error: too big bulk count string);");

    memcpy(in, "PING\n\0", 6);
    check_all_splits(run_requests, in, 22, &lim,
                     "[\"PING\"];ERR(Protocol error: too big inline "
                     "request);");
}
END_TEST

/* ------------------------------------------------------------------------
 * Request parser: malformed multibulk (after Redis's protocol.tcl)
 * --------------------------------------------------------------------- */

START_TEST(test_multibulk_count_over_limit_is_protocol_error)
{
    const char *e = "ERR(Protocol error: invalid multibulk length);";
    rd_resp_limits_t lim = lim_redis;

    req("*20000000\r\n", e);
    req("*3000000000\r\n", e);
    req("*1048577\r\n", e);
    req("*99999999999999999999\r\n", e);
    req("*1048576\r\n", "PENDING(10);");
    lim.max_array = 2;
    req_lim("*3\r\n", &lim, e);
    req_lim("*2\r\n$1\r\na\r\n$1\r\nb\r\n", &lim, "[\"a\" \"b\"];");
}
END_TEST

START_TEST(test_multibulk_count_must_be_a_number)
{
    const char *e = "ERR(Protocol error: invalid multibulk length);";

    req("*\r\n", e);
    req("*abc\r\n", e);
    req("*+1\r\n", e);
    req("*01\r\n", e);
    req("*-0\r\n", e);
    req("* 1\r\n", e);
    req("*1 \r\n", e);
    req("*-\r\n", e);
    /* The '\r' must be followed by '\n'. */
    req("*1\rX$4\r\nPING\r\n", e);
    req("*1\r\r\n", e);
}
END_TEST

START_TEST(test_multibulk_expects_dollar)
{
    req("*1\r\nfoo\r\n", "ERR(Protocol error: expected '$', got 'f');");
    req("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
        "ERR(Protocol error: expected '$', got 'f');");
    req("*1\r\n:1\r\n", "ERR(Protocol error: expected '$', got ':');");
    req("*1\r\n*1\r\n", "ERR(Protocol error: expected '$', got '*');");
    /* The line must be complete before its first byte is judged. */
    req("*1\r\nfoo", "PENDING(7);");
    /* An empty line: the CR is blanked so the message stays one line. */
    req("*1\r\n\r\n", "ERR(Protocol error: expected '$', got ' ');");
}
END_TEST

START_TEST(test_bulk_over_limit_is_protocol_error)
{
    const char *e = "ERR(Protocol error: invalid bulk length);";
    rd_resp_limits_t lim = lim_redis;

    req("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", e);
    req("*1\r\n$536870913\r\n", e);
    req("*1\r\n$536870912\r\n", "PENDING(16);");
    lim.max_bulk = 4;
    req_lim("*1\r\n$5\r\nhello\r\n", &lim, e);
    req_lim("*1\r\n$4\r\nhell\r\n", &lim, "[\"hell\"];");
}
END_TEST

START_TEST(test_bulk_length_must_be_a_number)
{
    const char *e = "ERR(Protocol error: invalid bulk length);";

    req("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", e);
    req("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", e);
    req("*1\r\n$-1\r\n", e);
    req("*1\r\n$\r\n", e);
    req("*1\r\n$01\r\nx\r\n", e);
    req("*1\r\n$1x\r\n", e);
    req("*1\r\n$1\rXa\r\n", e);
}
END_TEST

START_TEST(test_bulk_missing_crlf_is_protocol_error)
{
    const char *e = "ERR(Protocol error: expected CRLF after bulk data);";

    req("*1\r\n$3\r\nfooXY", e);
    req("*1\r\n$3\r\nfoo\rX", e);
    req("*1\r\n$3\r\nfoo\n\r", e);
    req("*2\r\n$3\r\nfoobar\r\n$1\r\na\r\n", e);
    req("*1\r\n$3\r\nfoo\r", "PENDING(12);");
}
END_TEST

START_TEST(test_request_too_big_count_strings)
{
    rd_resp_limits_t lim = lim_redis;

    lim.max_inline = 8;
    req_lim("*000000000", &lim,
            "ERR(Protocol error: too big mbulk count string);");
    req_lim("*1\r\n$000000000", &lim,
            "ERR(Protocol error: too big bulk count string);");
    req_lim("*1\r\n$0000000", &lim, "PENDING(12);");
}
END_TEST

START_TEST(test_request_error_is_sticky)
{
    rd_resp_req_parser_t p;
    const char *err = NULL;

    rd_resp_req_init(&p);
    ck_assert_int_eq(rd_resp_parse_request(&p, "*1\r\nx\r\n", 7, NULL, &err),
                     RD_RESP_ERROR);
    ck_assert_str_eq(err, "Protocol error: expected '$', got 'x'");
    err = NULL;
    ck_assert_int_eq(rd_resp_parse_request(&p, "*1\r\nx\r\nAB", 9, NULL,
                                           &err), RD_RESP_ERROR);
    ck_assert_str_eq(err, "Protocol error: expected '$', got 'x'");

    /* After a reset the parser is as new. */
    rd_resp_req_reset(&p);
    ck_assert_int_eq(rd_resp_parse_request(&p, "PING\n", 5, NULL, &err),
                     RD_RESP_OK);
    rd_resp_req_free(&p);
}
END_TEST

START_TEST(test_request_many_arguments)
{
    rd_buf_t in = {0};
    rd_buf_t want = {0};

    rd_buf_appendf(&in, "*1000\r\n");
    rd_buf_append_str(&want, "[");
    for (int i = 0; i < 1000; i++) {
        char a[16];
        int  n = snprintf(a, sizeof(a), "%d", i);
        rd_buf_appendf(&in, "$%d\r\n%s\r\n", n, a);
        rd_buf_appendf(&want, "%s\"%s\"", i ? " " : "", a);
    }
    rd_buf_append_str(&want, "];");
    rd_buf_append(&want, "", 1);
    check_few_splits(run_requests, in.data, in.len, &lim_redis, want.data);
    rd_buf_free(&in);
    rd_buf_free(&want);
}
END_TEST

/* A 16 MiB bulk arriving in 4 KiB pieces: with one look per call this is
 * instant; rescanning from the start would take minutes. */
START_TEST(test_request_large_bulk_in_small_chunks)
{
    rd_resp_req_parser_t p;
    const char *err;
    size_t body = 16 * 1024 * 1024;
    size_t hdr, total, len;
    char  *buf = malloc(body + 64);

    hdr = (size_t)sprintf(buf, "*2\r\n$3\r\nSET\r\n$%zu\r\n", body);
    memset(buf + hdr, '\n', body);
    memcpy(buf + hdr + body, "\r\n", 2);
    total = hdr + body + 2;

    rd_resp_req_init(&p);
    for (len = 4096; len < total; len += 4096) {
        ck_assert_int_eq(rd_resp_parse_request(&p, buf, len, NULL, &err),
                         RD_RESP_AGAIN);
    }
    ck_assert_int_eq(rd_resp_parse_request(&p, buf, total, NULL, &err),
                     RD_RESP_OK);
    ck_assert_uint_eq(p.consumed, total);
    ck_assert_uint_eq(p.argv[1].len, body);
    ck_assert_ptr_eq(p.argv[1].data, buf + hdr);
    rd_resp_req_free(&p);
    free(buf);
}
END_TEST

/*
 * Lays out `head`, then `body_pages` pages of body, then `tail`, so that
 * the body fills pages that are then made unreadable. A parser that looks
 * at a single byte of the body crashes the (forked) test.
 */
typedef struct {
    char  *map;
    size_t map_len;
    char  *start;    /* first byte of head */
    char  *body;
    size_t body_len;
    size_t total;    /* head + body + tail */
} guarded_t;

static void
guarded_make(guarded_t *g, const char *head_fmt, size_t body_pages,
    const char *tail)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    char   head[128];
    int    hn;

    g->body_len = body_pages * ps;
    hn = snprintf(head, sizeof(head), head_fmt, g->body_len);
    g->map_len = (body_pages + 2) * ps;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(g->map, MAP_FAILED);
    g->body = g->map + ps;
    g->start = g->body - hn;
    memcpy(g->start, head, (size_t)hn);
    memset(g->body, 'B', g->body_len);
    memcpy(g->body + g->body_len, tail, strlen(tail));
    g->total = (size_t)hn + g->body_len + strlen(tail);
    ck_assert_int_eq(mprotect(g->body, g->body_len, PROT_NONE), 0);
}

START_TEST(test_request_bulk_body_is_never_read)
{
    rd_resp_req_parser_t p;
    guarded_t   g;
    const char *err;
    size_t      hl;

    guarded_make(&g, "*1\r\n$%zu\r\n", 4, "\r\n");
    hl = (size_t)(g.body - g.start);
    rd_resp_req_init(&p);
    ck_assert_int_eq(rd_resp_parse_request(&p, g.start, hl, NULL, &err),
                     RD_RESP_AGAIN);
    ck_assert_int_eq(rd_resp_parse_request(&p, g.start, hl + 100, NULL,
                                           &err), RD_RESP_AGAIN);
    ck_assert_int_eq(rd_resp_parse_request(&p, g.start, g.total - 1, NULL,
                                           &err), RD_RESP_AGAIN);
    ck_assert_int_eq(rd_resp_parse_request(&p, g.start, g.total, NULL,
                                           &err), RD_RESP_OK);
    ck_assert_ptr_eq(p.argv[0].data, g.body);
    ck_assert_uint_eq(p.argv[0].len, g.body_len);
    rd_resp_req_free(&p);
    munmap(g.map, g.map_len);
}
END_TEST

/* ------------------------------------------------------------------------
 * Reply scanner
 * --------------------------------------------------------------------- */

START_TEST(test_reply_simple_types)
{
    rep("+OK\r\n", "+5;");
    rep("-ERR unknown command 'x'\r\n", "-26;");
    rep(":1000\r\n", ":7;");
    rep(":0\r\n:-5\r\n", ":4;:5;");
    rep(":9223372036854775807\r\n:-9223372036854775808\r\n", ":22;:23;");
    rep("$3\r\nfoo\r\n", "$9;");
    rep("$0\r\n\r\n", "$6;");
    rep("+\r\n", "+3;");
}
END_TEST

START_TEST(test_reply_null_bulk_and_null_array)
{
    rep("$-1\r\n", "$5;");
    rep("*-1\r\n", "*5;");
    rep("*0\r\n", "*4;");
    rep("*3\r\n$-1\r\n*-1\r\n*0\r\n", "*18;");
}
END_TEST

START_TEST(test_reply_error_replies)
{
    rep("-ERR wrong number of arguments\r\n+OK\r\n", "-32;+5;");
    rep("-MOVED 3999 127.0.0.1:6381\r\n", "-28;");
    /* An error inside an array is an element, not the reply's type. */
    rep("*2\r\n-ERR x\r\n:1\r\n", "*16;");
}
END_TEST

START_TEST(test_reply_lone_cr_or_lf_is_line_text)
{
    /* As hiredis reads it, only CRLF ends a status or error line. */
    rep("+a\rb\nc\r\n", "+8;");
    rep("+a\r\r\n", "+5;");
    rep("-\n\r\r\n", "-5;");
}
END_TEST

START_TEST(test_reply_nested_arrays)
{
    rep("*2\r\n*2\r\n:1\r\n$1\r\na\r\n*0\r\n", "*23;");
    rep("*1\r\n*1\r\n*1\r\n*1\r\n+deep\r\n", "*23;");
    rep("*3\r\n*1\r\n*1\r\n:1\r\n:2\r\n*2\r\n$-1\r\n*-1\r\n:3\r\n",
        "*34;:4;");
    rep("*2\r\n*0\r\n*0\r\n+x\r\n", "*12;+4;");
}
END_TEST

START_TEST(test_reply_split_at_every_byte)
{
    rep("+OK\r\n"
        "-ERR no\r\n"
        ":42\r\n"
        "$5\r\nhello\r\n"
        "$-1\r\n"
        "*2\r\n$1\r\na\r\n*1\r\n:7\r\n"
        "*-1\r\n"
        "$2\r\n\r\n\r\n",
        "+5;-9;:5;$11;$5;*19;*5;$8;");
}
END_TEST

START_TEST(test_reply_binary_bulk_all_bytes)
{
    static const char tail[] = "\r\n$3\r\n\r\n\0\r\n";
    char   in[600];
    size_t n = (size_t)sprintf(in, "*2\r\n$256\r\n");

    /* The second bulk holds CR, LF and NUL, which must not end it. */
    for (int c = 0; c < 256; c++) {
        in[n++] = (char)c;
    }
    memcpy(in + n, tail, sizeof(tail) - 1);
    n += sizeof(tail) - 1;

    check_all_splits(run_replies, in, n, &lim_redis, "*277;");
}
END_TEST

START_TEST(test_reply_scanner_streams_large_bulk)
{
    rd_resp_reply_scanner_t s;
    const char *err;
    size_t used;
    size_t body = 16 * 1024 * 1024;
    char   chunk[4096];
    char   hdr[32];
    int    hn = snprintf(hdr, sizeof(hdr), "$%zu\r\n", body);

    /* Only a 4 KiB chunk is ever in memory; the body bytes look like
     * replies to make sure they are not parsed. */
    memset(chunk, '\n', sizeof(chunk));
    memcpy(chunk, "*1\r\n", 4);
    rd_resp_reply_init(&s);
    ck_assert_int_eq(rd_resp_scan_reply(&s, hdr, (size_t)hn, NULL, &used,
                                        &err), RD_RESP_AGAIN);
    ck_assert_int_eq(s.type, '$');
    for (size_t left = body; left > 0; left -= sizeof(chunk)) {
        ck_assert_int_eq(rd_resp_scan_reply(&s, chunk, sizeof(chunk), NULL,
                                            &used, &err), RD_RESP_AGAIN);
        ck_assert_uint_eq(used, sizeof(chunk));
    }
    ck_assert_int_eq(rd_resp_scan_reply(&s, "\r\n+OK\r\n", 7, NULL, &used,
                                        &err), RD_RESP_OK);
    ck_assert_uint_eq(used, 2);
    ck_assert_int_eq(s.type, '$');
    ck_assert_int_eq(rd_resp_scan_reply(&s, "+OK\r\n", 5, NULL, &used,
                                        &err), RD_RESP_OK);
    ck_assert_int_eq(s.type, '+');
}
END_TEST

START_TEST(test_reply_bulk_body_is_never_read)
{
    rd_resp_reply_scanner_t s;
    guarded_t   g;
    const char *err;
    size_t      used, hl;

    guarded_make(&g, "*2\r\n$%zu\r\n", 4, "\r\n:1\r\n");
    hl = (size_t)(g.body - g.start);
    rd_resp_reply_init(&s);
    ck_assert_int_eq(rd_resp_scan_reply(&s, g.start, hl + 10, NULL, &used,
                                        &err), RD_RESP_AGAIN);
    ck_assert_int_eq(rd_resp_scan_reply(&s, g.start + hl + 10,
                                        g.body_len - 10, NULL, &used, &err),
                     RD_RESP_AGAIN);
    ck_assert_int_eq(rd_resp_scan_reply(&s, g.body + g.body_len, 6, NULL,
                                        &used, &err), RD_RESP_OK);
    ck_assert_uint_eq(used, 6);

    rd_resp_reply_init(&s);
    ck_assert_int_eq(rd_resp_scan_reply(&s, g.start, g.total, NULL, &used,
                                        &err), RD_RESP_OK);
    ck_assert_uint_eq(used, g.total);
    munmap(g.map, g.map_len);
}
END_TEST

/*
 * Nesting is never refused: the scanner counts the elements still
 * expected, so depth costs nothing. Redis itself produces deep replies:
 * EVAL "local t = 1; for i = 1, 8000 do t = {t} end; return t" answers
 * 7995 "*1" levels ending in "-ERR reached lua stack limit" (Lua's stack
 * limit, LUAI_MAXCSTACK 8000), one reply; a module may go deeper still.
 */
START_TEST(test_reply_depth_is_not_limited)
{
    rd_buf_t in = {0};
    char     want[64];

    /* 100000 levels, the way a Lua table nested N deep comes back. */
    for (int i = 0; i < 100000; i++) {
        rd_buf_append_str(&in, "*1\r\n");
    }
    rd_buf_append_str(&in, ":1\r\n");
    snprintf(want, sizeof(want), "*%zu;", in.len);
    check_few_splits(run_replies, in.data, in.len, &lim_redis, want);

    /* Without its innermost element the reply is not over yet. */
    in.len -= 4;
    snprintf(want, sizeof(want), "PENDING(%zu);", in.len);
    check_few_splits(run_replies, in.data, in.len, &lim_redis, want);

    /* Redis's answer to a Lua table deeper than its stack: an error as
     * the innermost element; then the next reply is found exactly. */
    rd_buf_append_str(&in, "-ERR reached lua stack limit\r\n");
    size_t first = in.len;
    rd_buf_append_str(&in, "+OK\r\n");
    snprintf(want, sizeof(want), "*%zu;+5;", first);
    check_few_splits(run_replies, in.data, in.len, &lim_redis, want);

    /* Arrays of two, each holding a leaf and the next array: every level
     * stays open with one element left. */
    rd_buf_reset(&in);
    for (int i = 0; i < 20000; i++) {
        rd_buf_append_str(&in, "*2\r\n:1\r\n");
    }
    rd_buf_append_str(&in, "$1\r\nx\r\n");
    first = in.len;
    rd_buf_append_str(&in, ":7\r\n");
    snprintf(want, sizeof(want), "*%zu;:4;", first);
    check_few_splits(run_replies, in.data, in.len, &lim_redis, want);
    rd_buf_free(&in);

    /* Empty and null arrays are complete elements, at any depth. */
    rep("*1\r\n*2\r\n*0\r\n*-1\r\n", "*17;");
    rep("*3\r\n*1\r\n*0\r\n*-1\r\n*1\r\n*1\r\n:1\r\n+x\r\n",
        "*29;+4;");
}
END_TEST

/* The count of expected elements stays within INT64_MAX: a header that
 * would pass it is malformed (no real reply can reach it: each element
 * takes 3 bytes or more). */
START_TEST(test_reply_expected_count_is_capped)
{
    rd_resp_limits_t lim = lim_redis;

    lim.max_array = (uint64_t)INT64_MAX;
    rep_lim("*9223372036854775807\r\n*1\r\n:1\r\n", &lim, "PENDING(30);");
    rep_lim("*9223372036854775807\r\n*2\r\n", &lim,
            "ERR(Protocol error: invalid multibulk length);");
    rep_lim("*2\r\n*9223372036854775807\r\n", &lim,
            "ERR(Protocol error: invalid multibulk length);");
    rep_lim("*1\r\n*9223372036854775807\r\n", &lim, "PENDING(26);");
}
END_TEST

START_TEST(test_reply_unknown_type_is_protocol_error)
{
    const char *e = "ERR(Protocol error: unknown reply type);";

    rep("?x\r\n", e);
    rep("\r\n", e);
    rep("OK\r\n", e);
    rep("+OK\r\n!x\r\n", "+5;ERR(Protocol error: unknown reply type);");
    rep("*2\r\n:1\r\n%2\r\n", e);
}
END_TEST

START_TEST(test_reply_lengths_must_be_numbers)
{
    const char *eb = "ERR(Protocol error: invalid bulk length);";
    const char *ea = "ERR(Protocol error: invalid multibulk length);";
    const char *ei = "ERR(Protocol error: invalid integer reply);";

    rep("$abc\r\n", eb);
    rep("$\r\n", eb);
    rep("$-2\r\n", eb);
    rep("$-0\r\n", eb);
    rep("$01\r\n", eb);
    rep("$1 \r\n", eb);
    rep("$+1\r\n", eb);
    rep("$1\rXa\r\n", eb);
    rep("$99999999999999999999\r\n", eb);
    rep("*x\r\n", ea);
    rep("*-2\r\n", ea);
    rep("*1-\r\n", ea);
    rep("*1\n", ea);
    rep(":\r\n", ei);
    rep(":12a\r\n", ei);
    rep(":--1\r\n", ei);
    rep(":9223372036854775808\r\n", ei);
    rep(":-9223372036854775809\r\n", ei);
}
END_TEST

START_TEST(test_reply_bulk_and_array_over_limit)
{
    rd_resp_limits_t lim = lim_redis;

    lim.max_bulk = 4;
    lim.max_array = 3;
    rep_lim("$4\r\nabcd\r\n", &lim, "$10;");
    rep_lim("$5\r\nabcde\r\n", &lim,
            "ERR(Protocol error: invalid bulk length);");
    rep_lim("*3\r\n:1\r\n:2\r\n:3\r\n", &lim, "*16;");
    rep_lim("*4\r\n", &lim, "ERR(Protocol error: invalid multibulk length);");
    rep("$536870913\r\n", "ERR(Protocol error: invalid bulk length);");
    rep("*1048577\r\n", "ERR(Protocol error: invalid multibulk length);");
}
END_TEST

START_TEST(test_reply_bulk_missing_crlf_is_protocol_error)
{
    const char *e = "ERR(Protocol error: expected CRLF after bulk data);";

    rep("$3\r\nfooXY", e);
    rep("$3\r\nfoo\rX", e);
    rep("$3\r\nfoo\n\r", e);
    rep("$0\r\nX\r\n", e);
    rep("$3\r\nfoo\r", "PENDING(8);");
}
END_TEST

START_TEST(test_reply_type_and_error_are_kept)
{
    rd_resp_reply_scanner_t s;
    const char *err = NULL;
    size_t used;

    rd_resp_reply_init(&s);
    ck_assert_int_eq(s.type, 0);
    ck_assert_int_eq(rd_resp_scan_reply(&s, "-ERR x\r\n", 8, NULL, &used,
                                        &err), RD_RESP_OK);
    ck_assert_int_eq(s.type, '-');
    ck_assert_int_eq(rd_resp_scan_reply(&s, "", 0, NULL, &used, &err),
                     RD_RESP_AGAIN);
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(s.type, 0);
    ck_assert_int_eq(rd_resp_scan_reply(&s, "*", 1, NULL, &used, &err),
                     RD_RESP_AGAIN);
    ck_assert_int_eq(s.type, '*');
    ck_assert_int_eq(rd_resp_scan_reply(&s, "1\r\n+x\r\n", 7, NULL, &used,
                                        &err), RD_RESP_OK);
    ck_assert_int_eq(s.type, '*');

    ck_assert_int_eq(rd_resp_scan_reply(&s, "$x", 2, NULL, &used, &err),
                     RD_RESP_ERROR);
    ck_assert_str_eq(err, "Protocol error: invalid bulk length");
    err = NULL;
    ck_assert_int_eq(rd_resp_scan_reply(&s, "+OK\r\n", 5, NULL, &used,
                                        &err), RD_RESP_ERROR);
    ck_assert_str_eq(err, "Protocol error: invalid bulk length");

    rd_resp_reply_init(&s);
    ck_assert_int_eq(rd_resp_scan_reply(&s, "+OK\r\n", 5, NULL, &used,
                                        &err), RD_RESP_OK);
}
END_TEST

/* ------------------------------------------------------------------------
 * Encoder
 * --------------------------------------------------------------------- */

static void
assert_buf(rd_buf_t *b, const char *want, size_t n)
{
    ck_assert_uint_eq(rd_buf_used(b), n);
    ck_assert_int_eq(memcmp(rd_buf_rpos(b), want, n), 0);
    rd_buf_reset(b);
}

#define ASSERT_BUF(b, lit) assert_buf((b), (lit), sizeof(lit) - 1)

START_TEST(test_encoder_replies)
{
    rd_buf_t b = {0};

    rd_resp_encode_simple(&b, "OK");
    ASSERT_BUF(&b, "+OK\r\n");
    rd_resp_encode_integer(&b, 0);
    rd_resp_encode_integer(&b, -42);
    rd_resp_encode_integer(&b, INT64_MIN);
    ASSERT_BUF(&b, ":0\r\n:-42\r\n:-9223372036854775808\r\n");
    rd_resp_encode_bulk(&b, "a\0b", 3);
    rd_resp_encode_bulk(&b, "", 0);
    ASSERT_BUF(&b, "$3\r\na\0b\r\n$0\r\n\r\n");
    rd_resp_encode_null(&b);
    ASSERT_BUF(&b, "$-1\r\n");
    rd_resp_encode_array(&b, 2);
    rd_resp_encode_array(&b, 0);
    rd_resp_encode_array(&b, -1);
    ASSERT_BUF(&b, "*2\r\n*0\r\n*-1\r\n");
    rd_buf_free(&b);
}
END_TEST

START_TEST(test_encoder_error_strips_newlines)
{
    rd_buf_t b = {0};
    char     big[1000];

    rd_resp_encode_error(&b, "ERR redoubt: bad\r\n+OK");
    ASSERT_BUF(&b, "-ERR redoubt: bad  +OK\r\n");
    rd_resp_encode_errorf(&b, "ERR %s %d", "a\nb", 7);
    ASSERT_BUF(&b, "-ERR a b 7\r\n");
    rd_resp_encode_simple(&b, "a\r\nb");
    ASSERT_BUF(&b, "+a  b\r\n");

    /* Longer than the formatting fast path. */
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rd_resp_encode_errorf(&b, "ERR %s!", big);
    ck_assert_uint_eq(rd_buf_used(&b), 1 + 4 + 999 + 1 + 2);
    ck_assert_ptr_null(memchr(b.data, '\n', b.len - 1));
    ck_assert_ptr_null(memchr(b.data, '\r', b.len - 2));
    ck_assert_int_eq(memcmp(b.data + b.len - 3, "!\r\n", 3), 0);
    rd_buf_free(&b);
}
END_TEST

START_TEST(test_encoder_command_parses_back)
{
    rd_buf_t b = {0};
    char     bin[256];
    rd_str_t argv[3];
    rd_resp_req_parser_t p;
    const char *err;

    for (int i = 0; i < 256; i++) {
        bin[i] = (char)i;
    }
    argv[0] = RD_STR("SET");
    argv[1] = (rd_str_t){ "", 0 };
    argv[2] = (rd_str_t){ bin, sizeof(bin) };
    rd_resp_encode_command(&b, 3, argv);

    rd_resp_req_init(&p);
    ck_assert_int_eq(rd_resp_parse_request(&p, b.data, b.len, NULL, &err),
                     RD_RESP_OK);
    ck_assert_uint_eq(p.consumed, b.len);
    ck_assert_uint_eq(p.argc, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(p.argv[i].len, argv[i].len);
        ck_assert_int_eq(memcmp(p.argv[i].data, argv[i].data, argv[i].len),
                         0);
    }
    rd_resp_req_free(&p);
    rd_buf_free(&b);
}
END_TEST

START_TEST(test_encoder_output_scans_as_replies)
{
    rd_buf_t b = {0};
    char *got;

    rd_resp_encode_array(&b, 4);
    rd_resp_encode_simple(&b, "OK");
    rd_resp_encode_errorf(&b, "ERR %d\r\n", 1);
    rd_resp_encode_null(&b);
    rd_resp_encode_bulk(&b, "\r\n", 2);
    rd_resp_encode_integer(&b, 5);
    got = run_replies(b.data, b.len, NULL, 0, &lim_redis);
    ck_assert_str_eq(got, "*32;:4;");
    free(got);
    rd_buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------------------
 * Reader
 * --------------------------------------------------------------------- */

/* edge_t, edge_make(), edge_free(): rd_test_edge.h */

static void
expect_value(rd_resp_reader_t *rd, char type, int64_t n, const char *str,
    size_t len)
{
    rd_resp_value_t v;

    ck_assert_int_eq(rd_resp_read(rd, &v), 0);
    ck_assert_int_eq(v.type, type);
    ck_assert_int_eq(v.n, n);
    ck_assert_uint_eq(v.len, len);
    if (str == NULL) {
        ck_assert_ptr_null(v.str);
    } else {
        ck_assert_ptr_nonnull(v.str);
        ck_assert_int_eq(memcmp(v.str, str, len), 0);
    }
}

/* Reads one value of `in` (which must be all of it) and expects -1. */
static void
expect_read_fails(const char *in, size_t n)
{
    rd_resp_reader_t rd;
    rd_resp_value_t  v;
    edge_t           e;

    edge_make(&e, in, n);
    rd_resp_reader_init(&rd, e.p, n);
    ck_assert_msg(rd_resp_read(&rd, &v) == -1, "read accepted \"%.*s\"",
                  (int)n, in);
    rd_resp_reader_init(&rd, e.p, n);
    ck_assert_int_eq(rd_resp_skip(&rd), -1);
    edge_free(&e);
}

#define READ_FAILS(lit) expect_read_fails(lit, sizeof(lit) - 1)

START_TEST(test_reader_every_type)
{
    static const char in[] =
        "+OK\r\n" "-ERR bad thing\r\n" "+\r\n" ":0\r\n" ":-42\r\n"
        ":9223372036854775807\r\n" ":-9223372036854775808\r\n"
        "$3\r\nfoo\r\n" "$0\r\n\r\n" "$4\r\n\r\n\r\n\r\n" "$-1\r\n"
        "*-1\r\n" "*0\r\n" "*2\r\n:1\r\n$1\r\na\r\n" "+a\rb\nc\r\r\n";
    rd_resp_reader_t rd;
    rd_resp_value_t  v;
    edge_t           e;

    edge_make(&e, in, sizeof(in) - 1);
    rd_resp_reader_init(&rd, e.p, sizeof(in) - 1);
    expect_value(&rd, '+', 0, "OK", 2);
    expect_value(&rd, '-', 0, "ERR bad thing", 13);
    expect_value(&rd, '+', 0, "", 0);
    expect_value(&rd, ':', 0, NULL, 0);
    expect_value(&rd, ':', -42, NULL, 0);
    expect_value(&rd, ':', INT64_MAX, NULL, 0);
    expect_value(&rd, ':', INT64_MIN, NULL, 0);
    expect_value(&rd, '$', 3, "foo", 3);
    expect_value(&rd, '$', 0, "", 0);
    expect_value(&rd, '$', 4, "\r\n\r\n", 4);
    expect_value(&rd, '$', -1, NULL, 0);
    expect_value(&rd, '*', -1, NULL, 0);
    expect_value(&rd, '*', 0, NULL, 0);
    expect_value(&rd, '*', 2, NULL, 0);
    expect_value(&rd, ':', 1, NULL, 0);
    expect_value(&rd, '$', 1, "a", 1);
    /* A line ends at the first CRLF; a lone CR or LF is text. */
    expect_value(&rd, '+', 0, "a\rb\nc\r", 6);
    ck_assert_ptr_eq(rd.p, rd.end);
    ck_assert_int_eq(rd_resp_read(&rd, &v), -1);
    ck_assert_int_eq(rd_resp_skip(&rd), -1);
    edge_free(&e);

    /* Nothing at all. */
    rd_resp_reader_init(&rd, NULL, 0);
    ck_assert_int_eq(rd_resp_read(&rd, &v), -1);
    ck_assert_int_eq(rd_resp_skip(&rd), -1);
    READ_FAILS("");
}
END_TEST

START_TEST(test_reader_skip_nested)
{
    static const char in[] =
        "*4\r\n*2\r\n:1\r\n*0\r\n$-1\r\n*1\r\n*1\r\n+x\r\n*-1\r\n"
        ":9\r\n" "$2\r\nab\r\n" "*0\r\n" "*3\r\n*1\r\n*1\r\n*1\r\n:1\r\n"
        "+a\r\n-b\r\n" ":7\r\n";
    rd_resp_reader_t rd;
    edge_t           e;

    edge_make(&e, in, sizeof(in) - 1);
    rd_resp_reader_init(&rd, e.p, sizeof(in) - 1);
    ck_assert_int_eq(rd_resp_skip(&rd), 0);
    expect_value(&rd, ':', 9, NULL, 0);
    ck_assert_int_eq(rd_resp_skip(&rd), 0);      /* a bulk */
    ck_assert_int_eq(rd_resp_skip(&rd), 0);      /* an empty array */
    ck_assert_int_eq(rd_resp_skip(&rd), 0);      /* ends three levels */
    expect_value(&rd, ':', 7, NULL, 0);
    ck_assert_ptr_eq(rd.p, rd.end);
    edge_free(&e);
}
END_TEST

/* Any depth is skipped, as the scanner frames it; empty arrays at the
 * bottom are complete elements; a deep value cut short fails. */
START_TEST(test_reader_skip_any_depth)
{
    rd_buf_t         in = {0};
    rd_resp_reader_t rd;

    for (int i = 0; i < 100000; i++) {
        rd_buf_append_str(&in, "*1\r\n");
    }
    rd_buf_append_str(&in, "*0\r\n");
    rd_resp_reader_init(&rd, in.data, in.len);
    ck_assert_int_eq(rd_resp_skip(&rd), 0);
    ck_assert_ptr_eq(rd.p, rd.end);

    in.len -= 4;
    rd_buf_append_str(&in, "*2\r\n:1\r\n");
    rd_resp_reader_init(&rd, in.data, in.len);
    ck_assert_int_eq(rd_resp_skip(&rd), -1);

    rd_buf_append_str(&in, "$1\r\nx\r\n:5\r\n");
    rd_resp_reader_init(&rd, in.data, in.len);
    ck_assert_int_eq(rd_resp_skip(&rd), 0);
    expect_value(&rd, ':', 5, NULL, 0);
    ck_assert_ptr_eq(rd.p, rd.end);

    /* Deep and read value by value, without skip, is fine too. */
    rd_resp_value_t v;
    rd_resp_reader_init(&rd, in.data, in.len);
    for (int i = 0; i <= 100000; i++) {
        ck_assert_int_eq(rd_resp_read(&rd, &v), 0);
    }
    expect_value(&rd, ':', 1, NULL, 0);
    rd_buf_free(&in);
}
END_TEST

START_TEST(test_reader_integers)
{
    READ_FAILS(":9223372036854775808\r\n");
    READ_FAILS(":-9223372036854775809\r\n");
    READ_FAILS(":99999999999999999999\r\n");
    READ_FAILS(":18446744073709551616\r\n");
    READ_FAILS(":\r\n");
    READ_FAILS(":-\r\n");
    READ_FAILS(":01\r\n");
    READ_FAILS(":-0\r\n");
    READ_FAILS(":+1\r\n");
    READ_FAILS(": 1\r\n");
    READ_FAILS(":1 \r\n");
    READ_FAILS(":1a\r\n");
    READ_FAILS(":--1\r\n");
    READ_FAILS(":1\r2\r\n");
}
END_TEST

START_TEST(test_reader_bulk_and_array_lengths)
{
    READ_FAILS("$-2\r\n");
    READ_FAILS("$-9223372036854775808\r\n");
    READ_FAILS("$9223372036854775807\r\nab\r\n");
    READ_FAILS("$9223372036854775806\r\nab\r\n");
    READ_FAILS("$18446744073709551615\r\n\r\n");
    READ_FAILS("$x\r\nab\r\n");
    READ_FAILS("$\r\n\r\n");
    READ_FAILS("$3\r\nfo");
    READ_FAILS("$3\r\nfoo");
    READ_FAILS("$3\r\nfoo\r");
    READ_FAILS("$3\r\nfooXY");
    READ_FAILS("$3\r\nfoo\n\r");
    READ_FAILS("$3\r\nfoox\r\n");
    READ_FAILS("$4\r\nfoo\r\n");
    READ_FAILS("*-2\r\n");
    READ_FAILS("*x\r\n");
    READ_FAILS("*9223372036854775807\r\n:1\r\n");
    /* A count the remaining bytes cannot hold fails at the header. */
    READ_FAILS("*1\r\n");
    READ_FAILS("*2\r\n:1\r\n");
    READ_FAILS("*1000000\r\n+\r\n");
    READ_FAILS("!1\r\n");
    READ_FAILS("1\r\n");
}
END_TEST

START_TEST(test_reader_bad_crlf)
{
    READ_FAILS("+OK");
    READ_FAILS("+OK\r");
    READ_FAILS("+OK\n");
    READ_FAILS("+OK\n\r");
    READ_FAILS("-ERR\r");
    READ_FAILS(":1");
    READ_FAILS(":1\r");
    READ_FAILS(":1\n");
    READ_FAILS(":1\rX");
    READ_FAILS("$1\r\na\n\n");
    READ_FAILS("$1\na\r\n");
    READ_FAILS("*1\n:1\r\n");
    READ_FAILS("*1\r:1\r\n");
}
END_TEST

/* Every proper prefix of a reply is refused without reading past it. */
START_TEST(test_reader_truncated_at_every_byte)
{
    static const char in[] =
        "*5\r\n*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:30001\r\n"
        "$40\r\n09dbe9720cda62f7865eabc5fd8857c5d2678366\r\n*0\r\n"
        "+OK\r\n-ERR x\r\n$-1\r\n*2\r\n*-1\r\n$3\r\na\r\n\r\n";
    size_t n = sizeof(in) - 1;

    for (size_t k = 0; k <= n; k++) {
        rd_resp_reader_t rd;
        rd_resp_value_t  v;
        edge_t           e;

        edge_make(&e, in, k);
        rd_resp_reader_init(&rd, e.p, k);
        if (k < n) {
            ck_assert_msg(rd_resp_skip(&rd) == -1, "prefix %zu skipped", k);
        } else {
            ck_assert_int_eq(rd_resp_skip(&rd), 0);
            ck_assert_ptr_eq(rd.p, rd.end);
        }

        /* Value by value: whatever is read lies inside the prefix. */
        rd_resp_reader_init(&rd, e.p, k);
        while (rd_resp_read(&rd, &v) == 0) {
            ck_assert(rd.p <= rd.end);
            if (v.str != NULL) {
                ck_assert(v.str >= e.p && v.str + v.len <= e.p + k);
            }
        }
        edge_free(&e);
    }
}
END_TEST

/* Only the two bytes after a bulk's body are looked at. */
START_TEST(test_reader_bulk_body_is_never_read)
{
    rd_resp_reader_t rd;
    rd_resp_value_t  v;
    guarded_t        g;

    guarded_make(&g, "*2\r\n$%zu\r\n", 4, "\r\n:1\r\n");
    rd_resp_reader_init(&rd, g.start, g.total);
    expect_value(&rd, '*', 2, NULL, 0);
    ck_assert_int_eq(rd_resp_read(&rd, &v), 0);
    ck_assert_ptr_eq(v.str, g.body);
    ck_assert_uint_eq(v.len, g.body_len);
    expect_value(&rd, ':', 1, NULL, 0);

    rd_resp_reader_init(&rd, g.start, g.total);
    ck_assert_int_eq(rd_resp_skip(&rd), 0);
    ck_assert_ptr_eq(rd.p, rd.end);
    munmap(g.map, g.map_len);
}
END_TEST

static Suite *
resp_suite(void)
{
    Suite *s = suite_create("resp");
    TCase *tc;

    tc = tcase_create("request");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_request_multibulk);
    tcase_add_test(tc, test_request_split_at_every_byte);
    tcase_add_test(tc, test_request_pipeline_in_one_buffer);
    tcase_add_test(tc, test_request_buffer_moves_between_calls);
    tcase_add_test(tc, test_request_binary_bulk_all_bytes);
    tcase_add_test(tc, test_request_empty_multibulk_is_skipped);
    tcase_add_test(tc, test_request_empty_inline_line_is_skipped);
    tcase_add_test(tc, test_request_error_is_sticky);
    tcase_add_test(tc, test_request_many_arguments);
    tcase_add_test(tc, test_request_large_bulk_in_small_chunks);
    tcase_add_test(tc, test_request_bulk_body_is_never_read);
    suite_add_tcase(s, tc);

    tc = tcase_create("inline");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_inline_splits_on_blanks);
    tcase_add_test(tc, test_inline_quotes_like_sdssplitargs);
    tcase_add_test(tc, test_inline_unbalanced_quotes_is_protocol_error);
    tcase_add_test(tc, test_inline_too_big_request);
    tcase_add_test(tc, test_inline_too_big_request_default_limit);
    tcase_add_test(tc, test_request_nul_in_line_waits_until_too_big);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed_request");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_multibulk_count_over_limit_is_protocol_error);
    tcase_add_test(tc, test_multibulk_count_must_be_a_number);
    tcase_add_test(tc, test_multibulk_expects_dollar);
    tcase_add_test(tc, test_bulk_over_limit_is_protocol_error);
    tcase_add_test(tc, test_bulk_length_must_be_a_number);
    tcase_add_test(tc, test_bulk_missing_crlf_is_protocol_error);
    tcase_add_test(tc, test_request_too_big_count_strings);
    suite_add_tcase(s, tc);

    tc = tcase_create("reply");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reply_simple_types);
    tcase_add_test(tc, test_reply_null_bulk_and_null_array);
    tcase_add_test(tc, test_reply_error_replies);
    tcase_add_test(tc, test_reply_lone_cr_or_lf_is_line_text);
    tcase_add_test(tc, test_reply_nested_arrays);
    tcase_add_test(tc, test_reply_split_at_every_byte);
    tcase_add_test(tc, test_reply_binary_bulk_all_bytes);
    tcase_add_test(tc, test_reply_scanner_streams_large_bulk);
    tcase_add_test(tc, test_reply_bulk_body_is_never_read);
    tcase_add_test(tc, test_reply_depth_is_not_limited);
    tcase_add_test(tc, test_reply_expected_count_is_capped);
    tcase_add_test(tc, test_reply_unknown_type_is_protocol_error);
    tcase_add_test(tc, test_reply_lengths_must_be_numbers);
    tcase_add_test(tc, test_reply_bulk_and_array_over_limit);
    tcase_add_test(tc, test_reply_bulk_missing_crlf_is_protocol_error);
    tcase_add_test(tc, test_reply_type_and_error_are_kept);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoder");
    tcase_add_test(tc, test_encoder_replies);
    tcase_add_test(tc, test_encoder_error_strips_newlines);
    tcase_add_test(tc, test_encoder_command_parses_back);
    tcase_add_test(tc, test_encoder_output_scans_as_replies);
    suite_add_tcase(s, tc);

    tc = tcase_create("reader");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reader_every_type);
    tcase_add_test(tc, test_reader_skip_nested);
    tcase_add_test(tc, test_reader_skip_any_depth);
    tcase_add_test(tc, test_reader_integers);
    tcase_add_test(tc, test_reader_bulk_and_array_lengths);
    tcase_add_test(tc, test_reader_bad_crlf);
    tcase_add_test(tc, test_reader_truncated_at_every_byte);
    tcase_add_test(tc, test_reader_bulk_body_is_never_read);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(resp_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

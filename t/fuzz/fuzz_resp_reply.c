/*
 * fuzz_resp_reply.c - libFuzzer target for the RESP reply scanner.
 *
 * Input layout: byte 0 picks the limits (bit 0: tiny limits, so that every
 * limit is easy to reach), byte 1 seeds the chunk sizes, the rest is what
 * a backend sends. The bytes are scanned whole, in chunks chosen by the
 * seed (each copied to its own allocation), and for short inputs one byte
 * at a time; every run must find the same replies with the same types and
 * lengths, and the same error at the same offset.
 */
#include "config.h"

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

static void
fuzz_run(const char *in, size_t n, const rd_resp_limits_t *lim,
    unsigned seed, int mode, rd_buf_t *tx)
{
    rd_resp_reply_scanner_t s;
    size_t   fed = 0, cur = 0;
    unsigned x = seed * 2654435761u + 1;

    rd_resp_reply_init(&s);
    while (fed < n) {
        size_t step;

        /* mode 0: everything at once; 1: chunks of 1..64 bytes chosen by
         * the seed; 2: one byte at a time. */
        if (mode == 0) {
            step = n;
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

        char  *chunk = malloc(step);
        size_t off = 0;
        memcpy(chunk, in + fed, step);

        for (;;) {
            const char *err = NULL;
            size_t      used = (size_t)-1;
            rd_resp_status_t st = rd_resp_scan_reply(&s, chunk + off,
                                                     step - off, lim, &used,
                                                     &err);
            if (st == RD_RESP_ERROR) {
                CHECK(err != NULL);
                CHECK(strncmp(err, "Protocol error: ", 16) == 0);
                CHECK(used <= step - off);
                rd_buf_appendf(tx, "E@%zu:%s", fed + off + used, err);
                free(chunk);
                return;
            }
            CHECK(used <= step - off);
            off += used;
            cur += used;
            if (st == RD_RESP_AGAIN) {
                CHECK(off == step);
                CHECK(s.type == 0 || strchr("+-:$*", s.type) != NULL);
                break;
            }
            CHECK(st == RD_RESP_OK);
            CHECK(used > 0);
            CHECK(s.type != 0 && strchr("+-:$*", s.type) != NULL);
            if (mode == 0) {
                /* The in-memory reader frames the same reply, to the
                 * same byte, at any depth. */
                rd_resp_reader_t rd;

                rd_resp_reader_init(&rd, chunk + off - cur, cur);
                CHECK(rd_resp_skip(&rd) == 0 && rd.p == rd.end);
            }
            rd_buf_appendf(tx, "%c%zu;", s.type, cur);
            cur = 0;
        }
        fed += step;
        free(chunk);
    }
    rd_buf_appendf(tx, "P%zu", cur);
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

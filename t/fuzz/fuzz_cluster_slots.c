/*
 * fuzz_cluster_slots.c - libFuzzer target for the CLUSTER SLOTS parser,
 * the hash slot function and the RESP reader under them.
 *
 * The whole input is the reply and, separately, a key. Checks:
 *  - rd_cluster_parse_slots() either fails with -1, a message and no
 *    ranges, or returns ranges that keep every promise of the header
 *    (slots in order and below 16384, a port, a non-empty host that fits);
 *    without a default host it gives the same answer or the "no default
 *    host" error;
 *  - the reader agrees with the streaming reply scanner (limits opened up
 *    to the reader's): rd_resp_skip() succeeds exactly when the scanner
 *    finds a complete reply, and both end at the same byte; so a reply the
 *    parser accepts is one the scanner accepts whole;
 *  - rd_cluster_key_slot() equals a plain transcription of Redis's
 *    keyHashSlot() with a bit-by-bit CRC16.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_resp.h"
#include "rd_cluster_slots.h"

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

static const rd_resp_limits_t fuzz_lim_open = {
    .max_bulk = (uint64_t)INT64_MAX,
    .max_array = UINT64_MAX,
    .max_inline = 64 * 1024,
};

static unsigned
ref_crc16(const unsigned char *p, size_t n)
{
    unsigned crc = 0;

    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
            crc &= 0xffff;
        }
    }
    return crc;
}

/* cluster.c keyHashSlot(), as written there. */
static unsigned
ref_key_slot(const unsigned char *key, size_t keylen)
{
    size_t s, e;

    for (s = 0; s < keylen; s++) {
        if (key[s] == '{') {
            break;
        }
    }
    if (s == keylen) {
        return ref_crc16(key, keylen) & 0x3FFF;
    }
    for (e = s + 1; e < keylen; e++) {
        if (key[e] == '}') {
            break;
        }
    }
    if (e == keylen || e == s + 1) {
        return ref_crc16(key, keylen) & 0x3FFF;
    }
    return ref_crc16(key + s + 1, e - s - 1) & 0x3FFF;
}

static int
fuzz_parse(const char *in, size_t n, const char *dflt,
    rd_cluster_range_t **r, const char **err)
{
    int rc;

    *r = (rd_cluster_range_t *)err;     /* must be overwritten */
    *err = NULL;
    rc = rd_cluster_parse_slots(in, n, dflt, r, err);
    if (rc < 0) {
        CHECK(rc == -1);
        CHECK(*r == NULL);
        CHECK(*err != NULL && **err != '\0');
        return rc;
    }
    CHECK(rc == 0 ? *r == NULL : *r != NULL);
    for (int i = 0; i < rc; i++) {
        const rd_cluster_range_t *x = &(*r)[i];
        size_t hl = strnlen(x->host, RD_CLUSTER_HOST_MAX);

        CHECK(x->start <= x->end && x->end < RD_CLUSTER_SLOTS);
        CHECK(x->port >= 1);
        CHECK(hl > 0 && hl < RD_CLUSTER_HOST_MAX);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan sees any read past it. */
    char *in = malloc(size ? size : 1);
    memcpy(in, data, size);

    /* The key slot. */
    unsigned slot = rd_cluster_key_slot(in, size);
    CHECK(slot < RD_CLUSTER_SLOTS);
    CHECK(slot == ref_key_slot(data, size));

    /* The reader against the scanner. */
    rd_resp_reader_t        rd;
    rd_resp_reply_scanner_t sc;
    const char             *serr = NULL;
    size_t                  used = 0;

    rd_resp_reader_init(&rd, in, size);
    int skip = rd_resp_skip(&rd);
    rd_resp_reply_init(&sc);
    rd_resp_status_t st = rd_resp_scan_reply(&sc, in, size, &fuzz_lim_open,
                                             &used, &serr);
    if (skip == 0) {
        CHECK(st == RD_RESP_OK);
        CHECK(used == (size_t)(rd.p - in));
    } else {
        CHECK(st != RD_RESP_OK);
    }

    /* The parser, with and without a default host. */
    rd_cluster_range_t *r1, *r2;
    const char         *e1, *e2;
    int n1 = fuzz_parse(in, size, "seed", &r1, &e1);
    int n2 = fuzz_parse(in, size, NULL, &r2, &e2);

    if (n1 >= 0) {
        CHECK(st == RD_RESP_OK && used == size);
        CHECK(n2 == n1 || (n2 == -1
              && strcmp(e2, "unknown host and no default host") == 0));
        for (int i = 0; n2 == n1 && i < n1; i++) {
            CHECK(r1[i].start == r2[i].start && r1[i].end == r2[i].end
                  && r1[i].port == r2[i].port
                  && strcmp(r1[i].host, r2[i].host) == 0);
        }
    } else {
        CHECK(n2 == -1);
    }
    free(r1);
    free(r2);
    free(in);
    return 0;
}

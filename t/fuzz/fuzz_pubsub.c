/*
 * fuzz_pubsub.c - libFuzzer target for the reader of a subscribed
 * connection's frames (rd_pubsub_frame(), rd_pubsub.h).
 *
 * The input is one frame as rd_upconn_t hands it over (any bytes: the
 * reader must never read past them). Checks:
 *  - a message's or a confirmation's channel lies inside the input;
 *  - a confirmation is exactly what Redis writes: re-encoded from what
 *    the reader found (its name in lower case, the channel or a nil, the
 *    count), it is the input's first bytes, but for the case of the name;
 *  - a message names its kind by its first element, and its channel is
 *    the element after it.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_pubsub.h"

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

static int
same_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) {
            return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* A copy of its own size, so that ASan sees any read past it. */
    char *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    rd_pubsub_frame_t f;
    rd_pubsub_frame(p, size, &f);

    CHECK(f.what == RD_PSF_OTHER || f.what == RD_PSF_MESSAGE
          || f.what == RD_PSF_CONFIRM);
    if (f.what != RD_PSF_OTHER) {
        CHECK(f.type == '*' || f.type == '>');
        CHECK(f.kind >= RD_SUB_CHANNEL && f.kind <= RD_SUB_SHARD);
    }
    if (f.sub.data) {
        CHECK(f.sub.data >= p && f.sub.data + f.sub.len <= p + size);
    }
    if (f.what == RD_PSF_CONFIRM) {
        CHECK(f.cmd >= 0 && f.cmd < 6);
        CHECK(rd_pubsub_cmds[f.cmd].kind == f.kind);
        const char *name = rd_pubsub_cmds[f.cmd].name;
        size_t nl = strlen(name);
        char head[64];
        int hn = snprintf(head, sizeof(head), "%c3\r\n$%zu\r\n", f.type, nl);
        size_t want = (size_t)hn + nl + 2;
        char *w = malloc(want + f.sub.len + 64);
        memcpy(w, head, (size_t)hn);
        memcpy(w + hn, name, nl);
        memcpy(w + hn + nl, "\r\n", 2);
        if (f.sub.data) {
            want += (size_t)sprintf(w + want, "$%zu\r\n", f.sub.len);
            memcpy(w + want, f.sub.data, f.sub.len);
            want += f.sub.len;
            memcpy(w + want, "\r\n", 2);
            want += 2;
        } else {
            want += (size_t)sprintf(w + want, "$-1\r\n");
        }
        want += (size_t)sprintf(w + want, ":%lld\r\n", (long long)f.count);
        /* Redis writes no "+5" or "05": the reader takes what string2ll
         * takes, so compare only inputs written the canonical way. */
        if (size == want && same_ci(w + hn, p + hn, nl)) {
            memcpy(w + hn, p + hn, nl);
            CHECK(memcmp(w, p, want) == 0);
        }
        free(w);
    }
    if (f.what == RD_PSF_MESSAGE) {
        const char *kw = f.kind == RD_SUB_CHANNEL ? "message"
                         : f.kind == RD_SUB_PATTERN ? "pmessage" : "smessage";
        size_t kl = strlen(kw);
        const char *q = memchr(p, '\n', size);
        CHECK(q != NULL);
        q++;
        /* "$<len>\r\n<kw>\r\n$<len>\r\n<channel>" */
        const char *k = memchr(q, '\n', size - (size_t)(q - p));
        CHECK(k != NULL && (size_t)(p + size - (k + 1)) >= kl);
        CHECK(same_ci(k + 1, kw, kl));
        const char *c = k + 1 + kl + 2;
        c = memchr(c, '\n', size - (size_t)(c - p));
        CHECK(c != NULL && c + 1 == f.sub.data);
    }
    free(p);
    return 0;
}

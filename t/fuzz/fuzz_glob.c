/*
 * fuzz_glob.c - libFuzzer target for rd_glob_match() (rd_match.h).
 *
 * Input: byte 0 is the pattern's length (modulo what is left), then the
 * pattern, then the subject. rd_glob_match() is compared with a plain
 * transcription of Redis's recursive stringmatchlen() (src/util.c, with
 * its nesting limit), plus the lone-"*" rule of KEYS/SCAN/ACL that
 * rd_match.h documents; the two must agree on every input.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_match.h"

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

/* stringmatchlen_impl, as Redis writes it (case-sensitive). */
static int
ref_match(const char *pattern, int patternLen, const char *string,
          int stringLen, int *skipLongerMatches, int nesting)
{
    if (nesting > 1000) {
        return 0;
    }
    while (patternLen && stringLen) {
        switch (pattern[0]) {
        case '*':
            while (patternLen && pattern[1] == '*') {
                pattern++;
                patternLen--;
            }
            if (patternLen == 1) {
                return 1;
            }
            while (stringLen) {
                if (ref_match(pattern + 1, patternLen - 1, string, stringLen,
                              skipLongerMatches, nesting + 1)) {
                    return 1;
                }
                if (*skipLongerMatches) {
                    return 0;
                }
                string++;
                stringLen--;
            }
            *skipLongerMatches = 1;
            return 0;
        case '?':
            string++;
            stringLen--;
            break;
        case '[': {
            int not, match;
            pattern++;
            patternLen--;
            not = pattern[0] == '^';
            if (not) {
                pattern++;
                patternLen--;
            }
            match = 0;
            while (1) {
                if (pattern[0] == '\\' && patternLen >= 2) {
                    pattern++;
                    patternLen--;
                    if (pattern[0] == string[0]) {
                        match = 1;
                    }
                } else if (pattern[0] == ']') {
                    break;
                } else if (patternLen == 0) {
                    pattern--;
                    patternLen++;
                    break;
                } else if (patternLen >= 3 && pattern[1] == '-') {
                    int start = pattern[0];
                    int end = pattern[2];
                    int c = string[0];
                    if (start > end) {
                        int t = start;
                        start = end;
                        end = t;
                    }
                    pattern += 2;
                    patternLen -= 2;
                    if (c >= start && c <= end) {
                        match = 1;
                    }
                } else {
                    if (pattern[0] == string[0]) {
                        match = 1;
                    }
                }
                pattern++;
                patternLen--;
            }
            if (not) {
                match = !match;
            }
            if (!match) {
                return 0;
            }
            string++;
            stringLen--;
            break;
        }
        case '\\':
            if (patternLen >= 2) {
                pattern++;
                patternLen--;
            }
            /* fall through */
        default:
            if (pattern[0] != string[0]) {
                return 0;
            }
            string++;
            stringLen--;
            break;
        }
        pattern++;
        patternLen--;
        if (stringLen == 0) {
            while (*pattern == '*') {
                pattern++;
                patternLen--;
            }
            break;
        }
    }
    if (patternLen == 0 && stringLen == 0) {
        return 1;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1 || size > 4096) {
        return 0;
    }
    size_t plen = data[0] % size;
    /* NUL-terminated copies: Redis's code reads pattern[1] and *pattern
     * past the end, as it relies on sds strings' terminator. */
    char *pat = malloc(plen + 2);
    char *str = malloc(size - 1 - plen + 1);
    memcpy(pat, data + 1, plen);
    pat[plen] = pat[plen + 1] = '\0';
    size_t slen = size - 1 - plen;
    memcpy(str, data + 1 + plen, slen);
    str[slen] = '\0';

    int skip = 0;
    bool want;
    if (plen == 1 && pat[0] == '*') {
        want = true;           /* KEYS/SCAN/ACL: a lone "*" is every key */
    } else {
        want = ref_match(pat, (int)plen, str, (int)slen, &skip, 0) != 0;
    }
    bool got = rd_glob_match(pat, plen, str, slen);
    if (got != want) {
        fprintf(stderr, "pattern %zu bytes, subject %zu bytes: rd_glob_match "
                "%d, Redis %d\n", plen, slen, got, want);
    }
    CHECK(got == want);
    free(pat);
    free(str);
    return 0;
}

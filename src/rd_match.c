/*
 * rd_match.c - binary-safe globs (Redis's semantics) and whole-subject
 * regexes; see rd_match.h for the rules.
 *
 * The glob matcher is written from the semantics of Redis's
 * stringmatchlen(), not from its code: Redis backtracks by recursion at
 * every star (bounded at depth 1000 since CVE-2024-31228, pruned since
 * CVE-2022-36021); here only the last star is a backtrack point. That is
 * enough because every token other than a star matches exactly one byte,
 * so the tokens between two stars match a fixed number of bytes: when
 * they have matched at the earliest place after the first star, any
 * later place leaves less of the subject to the rest of the pattern, so
 * an earlier star never needs to take more bytes once a later one has
 * been reached. t/integration/t_match.sh checks the answers against a
 * real redis-server.
 */
#include "config.h"

#include "rd_match.h"

/* Redis compares range bounds as (signed, on x86-64) chars. Written out
 * so that the answer does not depend on this platform's char. */
static inline int
rd_match_sbyte(char ch)
{
    int b = (unsigned char)ch;
    return b < 0x80 ? b : b - 0x100;
}

/*
 * One token that is not a star, at pat[*pp], against the byte c. Moves
 * *pp past the token (an unclosed class takes the rest of the pattern)
 * and answers whether c matched it.
 */
static bool
rd_glob_token(const char *pat, size_t patlen, size_t *pp, char c)
{
    size_t p = *pp;
    bool   match;

    switch (pat[p]) {
    case '?':
        *pp = p + 1;
        return true;

    case '[': {
        bool neg;

        p++;
        neg = p < patlen && pat[p] == '^';
        if (neg) {
            p++;
        }
        match = false;
        for (;;) {
            if (p + 1 < patlen && pat[p] == '\\') {
                /* An escaped member; never a range bound. */
                p++;
                if (pat[p] == c) {
                    match = true;
                }
            } else if (p < patlen && pat[p] == ']') {
                break;
            } else if (p == patlen) {
                /* Unclosed: the class ends with the pattern. */
                p--;
                break;
            } else if (p + 2 < patlen && pat[p + 1] == '-') {
                int lo = rd_match_sbyte(pat[p]);
                int hi = rd_match_sbyte(pat[p + 2]);
                int b = rd_match_sbyte(c);
                if (lo > hi) {
                    int t = lo;
                    lo = hi;
                    hi = t;
                }
                if (b >= lo && b <= hi) {
                    match = true;
                }
                p += 2;
            } else if (pat[p] == c) {
                match = true;
            }
            p++;
        }
        *pp = p + 1;
        return neg ? !match : match;
    }

    case '\\':
        if (p + 1 < patlen) {
            p++;
        }
        /* fall through */
    default:
        *pp = p + 1;
        return pat[p] == c;
    }
}

bool
rd_glob_match(const char *pat, size_t patlen, const char *s, size_t len)
{
    size_t p = 0, i = 0;
    size_t star_p = 0, star_i = 0;  /* after the last star; where it began */
    bool   star = false;
    size_t runs = 0;                /* runs of stars passed */

    if (patlen == 1 && pat[0] == '*') {
        return true;                /* KEYS, SCAN and ACL: every key */
    }
    if (len == 0) {
        return patlen == 0;
    }

    for (;;) {
        if (i == len) {
            /* The subject is used up: only stars may be left. */
            while (p < patlen && pat[p] == '*') {
                p++;
            }
            if (p == patlen) {
                return true;
            }
        } else if (p < patlen && pat[p] == '*') {
            while (p < patlen && pat[p] == '*') {
                p++;
            }
            if (p == patlen) {
                return true;        /* a final star takes the rest */
            }
            if (++runs > 1000) {
                return false;       /* Redis's depth limit */
            }
            star = true;
            star_p = p;
            star_i = i;
            continue;
        } else if (p < patlen && rd_glob_token(pat, patlen, &p, s[i])) {
            i++;
            continue;
        }

        /* No match from here: let the last star take one more byte. The
         * part after it needs at least one byte, so it cannot start at
         * the end. */
        if (!star || star_i + 1 >= len) {
            return false;
        }
        star_i++;
        i = star_i;
        p = star_p;
    }
}

/*
 * Compile options for role regexes:
 *   PCRE2_DOTALL         "." matches every byte, newline included: a deny
 *                        rule "^private:.*$" covers "private:a\nb";
 *   PCRE2_DOLLAR_ENDONLY "$" is the end of the subject, not also the
 *                        place before a final newline;
 *   PCRE2_ANCHORED,      the match must start at the first byte and end
 *   PCRE2_ENDANCHORED    at the last: the rule is about the whole key.
 *                        "^a|b$" alone would be "starts with a, or ends
 *                        with b"; a role pattern "^X$" means the whole
 *                        subject matches X, as if written "^(?:X)$", so
 *                        "^a|b$" matches "a" and "b" only. Every
 *                        alternative must then cover the whole key, which
 *                        is how a rule written "^...$" reads.
 *   PCRE2_NEVER_UTF,     byte mode that a pattern cannot switch off with
 *   PCRE2_NEVER_UCP      (*UTF) or (*UCP): in UTF mode a subject that is
 *                        not valid UTF-8 is an error, not a match, and a
 *                        key with one stray byte would get past a deny.
 * No PCRE2_MULTILINE, PCRE2_CASELESS or PCRE2_EXTENDED: patterns mean
 * what they say, byte for byte; NUL is an ordinary byte because patterns
 * and subjects are passed with their lengths.
 */
int
rd_regex_flags(void)
{
    return (int)(PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY | PCRE2_ANCHORED
                 | PCRE2_ENDANCHORED | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP);
}

int
rd_regex_exec(const pcre2_code *re, const char *s, size_t len)
{
    /* One pair of offsets is enough to tell a match (rc 0 means "matched,
     * vector too small"); it does not depend on the pattern. */
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (md == NULL) {
        return -1;
    }
    /* The anchors again at match time: whole-subject even for a pattern
     * compiled without rd_regex_flags(). */
    int rc = pcre2_match(re, (PCRE2_SPTR)(len > 0 ? s : ""), len, 0,
                         PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, NULL);
    pcre2_match_data_free(md);
    if (rc >= 0) {
        return 1;
    }
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

bool
rd_regex_match(const pcre2_code *re, const char *s, size_t len)
{
    return rd_regex_exec(re, s, len) == 1;
}

/*
 * test_match.c - binary-safe role patterns (rd_match.h): Redis globs and
 * whole-subject regexes. Every glob case runs with the pattern and the
 * subject each ending where an unreadable page starts, so reading a byte
 * past either one crashes the test. The answers are Redis's (checked
 * against redis-server by t/integration/t_match.sh).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rd_match.h"
#include "rd_test_edge.h"

/* --- helpers ------------------------------------------------------------ */

static bool
glob_n(const char *pat, size_t patlen, const char *s, size_t len)
{
    edge_t ep, es;
    edge_make(&ep, pat, patlen);
    edge_make(&es, s, len);
    bool m = rd_glob_match(ep.p, patlen, es.p, len);
    edge_free(&ep);
    edge_free(&es);
    return m;
}

/* Literal arguments, NULs included (sizeof, not strlen). */
#define GLOB(p, s) glob_n((p), sizeof(p) - 1, (s), sizeof(s) - 1)
#define YES(p, s)                                                        \
    ck_assert_msg(GLOB(p, s), "glob \"%s\" should match \"%s\"", (p), (s))
#define NO(p, s)                                                         \
    ck_assert_msg(!GLOB(p, s), "glob \"%s\" should not match \"%s\"",   \
                  (p), (s))

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
repeat(const char *unit, size_t times, const char *tail, size_t *len)
{
    size_t u = strlen(unit), t = strlen(tail);
    char *b = malloc(u * times + t + 1);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < times; i++) {
        memcpy(b + i * u, unit, u);
    }
    memcpy(b + u * times, tail, t + 1);
    *len = u * times + t;
    return b;
}

static pcre2_code *
re_compile(const char *pat, size_t len, uint32_t flags)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, flags, &code,
                                   &off, NULL);
    ck_assert_msg(re != NULL, "regex \"%s\" does not compile (%d at %zu)",
                  pat, code, (size_t)off);
    return re;
}

#define RE(p) re_compile((p), sizeof(p) - 1, (uint32_t)rd_regex_flags())
#define RE_YES(re, s)                                                    \
    ck_assert_msg(rd_regex_match((re), (s), sizeof(s) - 1),             \
                  "regex should match \"%s\"", (s))
#define RE_NO(re, s)                                                     \
    ck_assert_msg(!rd_regex_match((re), (s), sizeof(s) - 1),            \
                  "regex should not match \"%s\"", (s))

/* --- globs --------------------------------------------------------------- */

START_TEST(glob_nul_in_key_is_an_ordinary_byte)
{
    /* The bypass: a deny rule secret:* and the key "secret:\0x". */
    YES("secret:*", "secret:\0x");
    YES("secret:*", "secret:\0");
    YES("*x", "secret:\0x");
    YES("secret:?x", "secret:\0x");
    YES("*:\0*", "secret:\0x");
    NO("secret:", "secret:\0x");           /* the NUL does not end the key */
    NO("secret:*y", "secret:\0x");
    /* NUL in the pattern: a literal, in a class and escaped. */
    YES("a\0b", "a\0b");
    NO("a\0b", "a");
    NO("a\0b", "a\0c");
    NO("a", "a\0b");
    YES("a[\0]b", "a\0b");
    YES("a[^x]b", "a\0b");
    YES("a\\\0b", "a\0b");
    YES("[\0-\x01]", "\x01");
    NO("[\0-\x01]", "\x02");
    YES("\0*", "\0\0\0");
    YES("*", "\0");
}
END_TEST

START_TEST(glob_newline_in_key_is_an_ordinary_byte)
{
    YES("private:*", "private:a\nb");
    YES("private:?\n?", "private:a\nb");
    YES("private:*b", "private:a\nb");
    YES("*\n*", "private:a\nb");
    YES("[\n]", "\n");
    NO("private:a", "private:a\nb");
    NO("private:*", "private\n:a");
    YES("a*", "a\n");
    NO("a", "a\n");
    YES("\r\n*", "\r\n\r\n");
}
END_TEST

START_TEST(glob_stars_and_question_marks)
{
    YES("", "");
    NO("", "a");
    YES("*", "");                        /* as KEYS/SCAN/ACL: every key */
    NO("**", "");                        /* Redis: only "" matches "" then */
    NO("?", "");
    NO("a*", "");
    YES("*", "anything");
    YES("**", "anything");
    YES("a*", "a");
    YES("a**", "a");
    YES("a*b", "ab");
    YES("a*b", "axxxb");
    NO("a*b", "axxxbc");
    YES("a*b*c", "abbbc");
    YES("*b*", "abc");
    NO("*b*", "acd");
    YES("?", "x");
    NO("?", "xy");
    YES("??", "xy");
    YES("*?", "x");
    NO("*??", "x");
    YES("a*?b", "axb");
    NO("a*?b", "ab");
    YES("*a*a*b", "aab");
    NO("*a*a*b", "ab");
    YES("*ab", "aab");                   /* the star has to give back */
    YES("*aab", "aaab");
    YES("a*ba*ba", "abababa");
    NO("A*", "abc");                     /* case-sensitive */
    NO("abc", "ABC");
    YES("user:*:name", "user:1:2:name");
}
END_TEST

START_TEST(glob_classes_and_ranges)
{
    YES("[abc]", "b");
    NO("[abc]", "d");
    NO("[abc]", "");
    NO("[abc]", "ab");
    YES("[^abc]", "d");
    NO("[^abc]", "a");
    YES("x[a-z]y", "xmy");
    YES("[a-z]", "a");
    YES("[a-z]", "z");
    NO("[a-z]", "A");
    YES("[z-a]", "m");                   /* reversed ranges are swapped */
    NO("[z-a]", "A");
    YES("[^z-a]", "A");
    YES("[a-cx-z]", "y");
    NO("[a-cx-z]", "m");
    YES("[-a]", "-");                    /* "-" first: a member */
    YES("[ab-]", "]");                   /* "-" last: a range b..] and */
    YES("[ab-]", "^");                   /* the class is left unclosed */
    NO("[ab-]", "-");
    YES("[ab-]x]y", "xy");               /* ...until a later "]" */
    NO("[ab-]x]y", "bx]y");
    YES("[a-c-e]", "-");                 /* a-c, then "-" and "e" */
    YES("[a-c-e]", "e");
    NO("[a-c-e]", "d");
    YES("[^]", "x");                     /* "]" cannot be the first member */
    YES("[^]", "]");
    NO("[]", "]");
    NO("[]a]", "a");
    NO("[]a]", "]a]");
    YES("[\\]]", "]");                   /* escaped, it can */
    YES("[a-]]", "^");                   /* the bound "]" does not close: */
    NO("[a-]]", "]]");                   /* one class, "]".."a" */
    YES("[a-]", "a");
    YES("[a-]", "]");
    YES("[a-]", "^");                    /* range "]".."a" */
    NO("[a-]", "b");
    NO("[a-]", "-");
    YES("[*?]", "*");
    NO("[*?]", "x");
    YES("[[]", "[");
    YES("[a^]", "^");
    YES("[?-?]", "?");
    /* Bounds compare as signed chars, as Redis on x86-64. */
    YES("[\x80-\xff]", "\x90");
    NO("[\x80-\xff]", "a");
    YES("[a-\xff]", "\xff");             /* the range -1..97 */
    YES("[a-\xff]", "A");
    YES("[a-\xff]", "\0");
    NO("[a-\xff]", "b");
    NO("[a-\xff]", "\x80");
    YES("[\xff]", "\xff");
    YES("\xff*", "\xff\x01");
}
END_TEST

START_TEST(glob_backslash_escapes)
{
    YES("\\*", "*");
    NO("\\*", "x");
    NO("\\*", "**");
    YES("\\?", "?");
    NO("\\?", "a");
    YES("\\[a]", "[a]");
    NO("\\[a]", "a");
    YES("\\\\", "\\");
    YES("\\a", "a");
    YES("a\\", "a\\");                   /* a final "\" is itself */
    NO("a\\", "a");
    YES("\\", "\\");
    YES("*\\*", "abc*");
    NO("*\\*", "abc");
    YES("[\\^a]", "^");
    YES("[\\-]", "-");
    YES("[\\a-c]", "-");                 /* "\a", then "-" and "c" */
    NO("[\\a-c]", "b");
    YES("[a-\\]", "\\");                 /* range a..\ swapped: 92..97 */
    YES("[a-\\]", "_");
    NO("[a-\\]", "b");
}
END_TEST

START_TEST(glob_unterminated_class_takes_the_rest)
{
    YES("[ab", "a");
    YES("[ab", "b");
    NO("[ab", "c");
    NO("[ab", "ab");
    NO("[", "[");                        /* an empty, unclosed class */
    NO("[", "x");
    NO("[", "");
    YES("[^", "x");                      /* not an empty set: any byte */
    NO("[^", "xy");
    YES("x[^a", "xb");
    NO("x[^a", "xa");
    YES("[a-", "a");                     /* too short for a range */
    YES("[a-", "-");
    NO("[a-", "b");
    YES("[a-c", "b");
    YES("[*", "*");
    NO("[*", "abc");
    YES("[\\", "\\");                    /* a final "\" in a class too */
    YES("[a\\", "\\");
    YES("*[ab", "xxb");
    YES("[ab*", "*");                    /* "*" in the class is a member */
    NO("[ab*", "axx");
}
END_TEST

START_TEST(glob_depth_limit_as_redis)
{
    size_t pl, sl;
    char *s = repeat("a", 1001, "", &sl);

    char *p = repeat("*a", 1000, "", &pl);
    ck_assert(glob_n(p, pl, s, sl));
    free(p);
    /* Redis gives up at the 1001st star (CVE-2024-31228)... */
    p = repeat("*a", 1001, "", &pl);
    ck_assert(!glob_n(p, pl, s, sl));
    free(p);
    /* ...unless it is the last thing in the pattern. */
    p = repeat("*a", 1000, "*", &pl);
    ck_assert(glob_n(p, pl, s, sl));
    free(p);
    p = repeat("*a", 1000, "**", &pl);
    ck_assert(glob_n(p, pl, s, sl));
    free(p);
    /* Escaped stars and stars in classes are not runs. */
    p = repeat("\\*[*]", 1500, "", &pl);
    free(s);
    s = repeat("**", 1500, "", &sl);
    ck_assert(glob_n(p, pl, s, sl));
    free(p);
    free(s);
}
END_TEST

START_TEST(glob_hostile_pattern_finishes_quickly)
{
    size_t pl, sl;
    double t0 = now_s();

    /* Exponential for a naive backtracker: 2^40 ways to place the a's. */
    char *p = repeat("*a", 40, "*b", &pl);
    char *s = repeat("a", 1 << 20, "", &sl);
    ck_assert(!rd_glob_match(p, pl, s, sl));
    s[sl - 1] = 'b';
    ck_assert(rd_glob_match(p, pl, s, sl));
    free(p);
    /* Redis's own regression cases. */
    p = repeat("a*", 20, "b", &pl);
    s[sl - 1] = 'a';
    ck_assert(!rd_glob_match(p, pl, s, sl));
    free(p);
    free(s);
    p = repeat("*?", 50000, "", &pl);
    s = repeat("a", 50000, "", &sl);
    ck_assert(!rd_glob_match(p, pl, s, sl));
    free(p);
    p = repeat("*?", 999, "*", &pl);
    ck_assert(rd_glob_match(p, pl, s, sl));
    free(p);
    free(s);
    /* Classes and escapes between the stars. */
    p = repeat("*[a-c]\\a", 30, "*[^a]", &pl);
    s = repeat("a", 1 << 18, "", &sl);
    ck_assert(!rd_glob_match(p, pl, s, sl));
    free(p);
    free(s);

    double dt = now_s() - t0;
    ck_assert_msg(dt < 2.0, "hostile globs took %.2f s", dt);
}
END_TEST

/* --- regexes ------------------------------------------------------------- */

START_TEST(regex_newline_in_key)
{
    pcre2_code *re = RE("^private:.*$");
    RE_YES(re, "private:a\nb");          /* "." matches a newline */
    RE_YES(re, "private:\n");
    RE_YES(re, "private:");
    RE_NO(re, "x\nprivate:a");           /* no multi-line ^ */
    pcre2_code_free(re);

    re = RE("^a$");
    RE_YES(re, "a");
    RE_NO(re, "a\n");                    /* "$" is only the very end */
    RE_NO(re, "\na");
    pcre2_code_free(re);
}
END_TEST

START_TEST(regex_nul_in_key)
{
    pcre2_code *re = RE("^secret:.*$");
    RE_YES(re, "secret:\0x");
    RE_YES(re, "secret:\0");
    pcre2_code_free(re);

    re = RE("^a\\x00b$");
    RE_YES(re, "a\0b");
    RE_NO(re, "a");
    pcre2_code_free(re);

    re = RE("^a\0b$");                   /* a raw NUL in the pattern */
    RE_YES(re, "a\0b");
    RE_NO(re, "a\0c");
    pcre2_code_free(re);

    re = RE("^.$");                      /* bytes, not UTF-8 characters */
    RE_YES(re, "\xff");
    RE_YES(re, "\0");
    RE_NO(re, "\xc3\xa9");
    pcre2_code_free(re);
}
END_TEST

START_TEST(regex_matches_the_whole_subject)
{
    /* "^a|b$" would be "starts with a or ends with b" for PCRE2; a role
     * pattern is about the whole subject. */
    pcre2_code *re = RE("^a|b$");
    RE_YES(re, "a");
    RE_YES(re, "b");
    RE_NO(re, "ab");
    RE_NO(re, "axx");
    RE_NO(re, "xxb");
    pcre2_code_free(re);

    re = RE("^app:[0-9]+$");
    RE_YES(re, "app:12");
    RE_NO(re, "app:12x");
    RE_NO(re, "xapp:12");
    pcre2_code_free(re);

    /* The same without rd_regex_flags(): the anchors come at match time. */
    re = re_compile("a|b", 3, 0);
    ck_assert(rd_regex_match(re, "a", 1));
    ck_assert(!rd_regex_match(re, "ab", 2));
    ck_assert(!rd_regex_match(re, "xb", 2));
    pcre2_code_free(re);

    re = RE("^$");
    ck_assert(rd_regex_match(re, NULL, 0));
    ck_assert(rd_regex_match(re, "", 0));
    RE_NO(re, "\n");
    pcre2_code_free(re);
}
END_TEST

START_TEST(regex_flags_are_byte_mode)
{
    ck_assert(rd_regex_flags() & PCRE2_DOTALL);
    ck_assert(rd_regex_flags() & PCRE2_DOLLAR_ENDONLY);
    ck_assert(!(rd_regex_flags() & (PCRE2_MULTILINE | PCRE2_CASELESS
                                    | PCRE2_UTF)));
    /* A pattern cannot switch on UTF-8 mode, where a subject that is not
     * valid UTF-8 is an error rather than a match. */
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)"(*UTF)^.*$", 10,
                                   (uint32_t)rd_regex_flags(), &code, &off,
                                   NULL);
    ck_assert_ptr_null(re);

    re = RE("^Secret:.*$");
    RE_NO(re, "secret:1");               /* case-sensitive */
    pcre2_code_free(re);
}
END_TEST

START_TEST(regex_error_is_not_a_plain_no_match)
{
    /* A pattern that runs into its match limit: rd_regex_exec says -1 so
     * that a deny rule can fail closed; rd_regex_match says false. */
    pcre2_code *re = RE("(*LIMIT_MATCH=50)^(a|aa)+$");
    const char s[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
    ck_assert_int_eq(rd_regex_exec(re, s, sizeof(s) - 1), -1);
    ck_assert(!rd_regex_match(re, s, sizeof(s) - 1));
    ck_assert_int_eq(rd_regex_exec(re, "aa", 2), 1);
    ck_assert_int_eq(rd_regex_exec(re, "b", 1), 0);
    pcre2_code_free(re);
}
END_TEST

/* --- the suite ------------------------------------------------------------ */

static Suite *
match_suite(void)
{
    Suite *s = suite_create("match");
    TCase *tc = tcase_create("glob");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, glob_nul_in_key_is_an_ordinary_byte);
    tcase_add_test(tc, glob_newline_in_key_is_an_ordinary_byte);
    tcase_add_test(tc, glob_stars_and_question_marks);
    tcase_add_test(tc, glob_classes_and_ranges);
    tcase_add_test(tc, glob_backslash_escapes);
    tcase_add_test(tc, glob_unterminated_class_takes_the_rest);
    tcase_add_test(tc, glob_depth_limit_as_redis);
    tcase_add_test(tc, glob_hostile_pattern_finishes_quickly);
    suite_add_tcase(s, tc);

    tc = tcase_create("regex");
    tcase_add_test(tc, regex_newline_in_key);
    tcase_add_test(tc, regex_nul_in_key);
    tcase_add_test(tc, regex_matches_the_whole_subject);
    tcase_add_test(tc, regex_flags_are_byte_mode);
    tcase_add_test(tc, regex_error_is_not_a_plain_no_match);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(match_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

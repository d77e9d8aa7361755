/*
 * rd_match.h - binary-safe matching of role patterns: Redis globs and
 * whole-subject PCRE2 regular expressions.
 *
 * Keys, channels and label values may hold any byte (NUL and newline
 * included), so every function here takes explicit lengths and never
 * stops at a NUL.
 *
 * Globs: rd_glob_match() answers exactly as Redis's KEYS, SCAN MATCH and
 * ACL key patterns do, that is Redis's stringmatchlen() (src/util.c,
 * case-sensitive) plus the lone "*" that those commands take to mean
 * "every key":
 *   *        any run of bytes, also the empty one; runs of stars are one;
 *   ?        any one byte;
 *   [abc]    one byte of the set; [^abc] one byte not in it;
 *   [a-z]    a range, bounds included; reversed ranges ([z-a]) are
 *            swapped; a range bound is taken raw, so in "[a-]" the "]"
 *            is the bound and does not close the class; bytes compare as
 *            signed chars, as Redis does on x86-64 ("[a-\xff]" is the
 *            range -1..97: 0x00-0x61 and 0xff);
 *   \x       the byte x, outside and inside a class ("\" as the last
 *            byte of the pattern or of an unclosed class is itself);
 *   [...     a class that is never closed takes the rest of the pattern
 *            as its set ("[ab" is "[ab]", "[" never matches, "[^" is
 *            "?");  "[]" never matches and "[^]" is "?" ("]" cannot be
 *            the first member);
 *   other    the byte itself.
 * And Redis's corner cases:
 *   - an empty subject is matched only by the empty pattern and by "*";
 *     "**" does not match it (stringmatchlen never looks at the pattern
 *     when the subject is empty; KEYS/SCAN/ACL only special-case "*");
 *   - a pattern whose 1001st run of stars is followed by anything else
 *     never matches (Redis stops recursing at depth 1000,
 *     CVE-2024-31228).
 * rd_glob_match() does not recurse: it keeps one backtrack point (the
 * last star), which gives the same answers, in O(patlen * len) time at
 * worst and usually O(patlen + len).
 *
 * Regular expressions: compile role regexes with rd_regex_flags() (see
 * rd_match.c for why each flag is there) and match them with
 * rd_regex_match() or rd_regex_exec(). The match always covers the whole
 * subject, whatever the flags the pattern was compiled with.
 */
#ifndef RD_MATCH_H
#define RD_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

/* Does the glob pat (patlen bytes) match the subject s (len bytes)? */
bool rd_glob_match(const char *pat, size_t patlen, const char *s, size_t len);

/* The pcre2_compile() options for role regexes. */
int rd_regex_flags(void);

/* Does re match all of s (len bytes)? False on no match and on error. */
bool rd_regex_match(const pcre2_code *re, const char *s, size_t len);

/* 1 re matches all of s, 0 it does not, -1 PCRE2 could not tell (match or
 * depth limit reached, no memory): for a deny rule, treat -1 as a match
 * so that a hostile subject cannot get round the rule. */
int rd_regex_exec(const pcre2_code *re, const char *s, size_t len);

#endif

/*
 * rd_json.h - a tiny JSON writer onto an rd_buf_t.
 *
 * Enough to write one JSON object per line (the audit log): strings,
 * integers, null, and the commas between members and elements.
 *
 * Strings. Any bytes may be written; the output is always valid JSON and
 * never contains a raw control byte or a line break:
 *   - '"' and '\' are escaped as \" and \\;
 *   - \b \f \n \r \t are written as such, every other byte below 0x20 and
 *     DEL (0x7f) as \u00XX (lower-case hex);
 *   - well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates
 *     U+D800..U+DFFF, nothing above U+10FFFF) passes through unchanged,
 *     U+2028 and U+2029 included (they are valid in JSON);
 *   - every byte that is not part of a well-formed UTF-8 sequence is
 *     written as \u00XX with the byte's value (0x80..0xff): binary keys
 *     and values stay readable byte for byte. A truncated sequence is
 *     escaped byte by byte (its lead byte, then each continuation byte on
 *     its own), then decoding starts again at the next byte.
 *   Because a valid character U+0080..U+00FF is always written as its raw
 *   UTF-8 bytes and never as an escape, a \u0080..\u00ff escape in the
 *   file always stands for one raw byte that was not valid UTF-8. (A JSON
 *   parser decodes both to the same code point; read the raw line to tell
 *   them apart.)
 *
 * Cut strings: rd_json_str_cut() writes at most max bytes of the input
 * (backing off, by at most three bytes, so as not to split a UTF-8
 * character) followed by the marker "…(+N bytes)" inside the string,
 * where N is the number of input bytes left out and "…" is U+2026.
 *
 * Members: rd_json_key() writes the comma (unless the previous byte
 * opened an object or array) and "name":. rd_json_sep() writes only the
 * comma, for array elements.
 */
#ifndef RD_JSON_H
#define RD_JSON_H

#include "rd_core.h"
#include "rd_buf.h"

/* The marker appended to a cut string, before the count. */
#define RD_JSON_CUT_MARK "\xe2\x80\xa6(+"

/* The string s of n bytes, quoted and escaped. */
void rd_json_str(rd_buf_t *b, const char *s, size_t n);
/* A NUL-terminated string, or null for NULL. */
void rd_json_cstr(rd_buf_t *b, const char *s);
/* At most max bytes of s (0: no limit), then the cut marker when bytes
 * were left out. Returns the number of bytes left out. */
size_t rd_json_str_cut(rd_buf_t *b, const char *s, size_t n, size_t max);

/* A comma unless the last byte written is '{', '[' or ':' (or none). */
void rd_json_sep(rd_buf_t *b);
/* ,"key": -- the key is written as is: a literal without special bytes. */
void rd_json_key(rd_buf_t *b, const char *key);

void rd_json_int(rd_buf_t *b, int64_t v);
void rd_json_uint(rd_buf_t *b, uint64_t v);
void rd_json_null(rd_buf_t *b);
void rd_json_bool(rd_buf_t *b, bool v);

/* Length of the well-formed UTF-8 character at p (1..4), or 0 when the
 * bytes there are not one (n bytes are available). */
size_t rd_utf8_char_len(const unsigned char *p, size_t n);

#endif

/*
 * rd_resp.h - the RESP2 codec: an incremental request parser, a reply
 * scanner and an encoder.
 *
 * Nothing here does I/O or allocates per byte. Both parsers work on input
 * that arrives split at any byte: call them again with the same growing
 * buffer (request parser) or with the next bytes (reply scanner) and they
 * continue where they stopped, examining each byte once.
 *
 * Errors are reported as a message in Redis's wording without the "-ERR "
 * prefix, e.g. "Protocol error: invalid bulk length"; the caller replies
 * "-ERR <message>\r\n" and closes the connection, as redis-server does.
 */
#ifndef RD_RESP_H
#define RD_RESP_H

#include "rd_core.h"
#include "rd_buf.h"

typedef enum {
    RD_RESP_OK = 0,     /* one complete message */
    RD_RESP_AGAIN,      /* need more bytes */
    RD_RESP_EMPTY,      /* a request with no arguments (empty inline line,
                           "*0" or "*-1"): skip `consumed` bytes, reply nothing */
    RD_RESP_ERROR       /* malformed or over a limit; see *err */
} rd_resp_status_t;

typedef struct rd_resp_limits_s {
    uint64_t max_bulk;    /* largest bulk string, bytes (default 512mb) */
    uint64_t max_array;   /* most elements in one array (default 1048576) */
    uint64_t max_inline;  /* longest inline command line (default 64kb) */
} rd_resp_limits_t;

/*
 * Request parser.
 *
 * Accepts what redis-server accepts from a client: a multibulk request
 * ("*<n>\r\n" then n bulk strings "$<len>\r\n<bytes>\r\n") or an inline
 * command (a line ending in "\n" or "\r\n", split into arguments the way
 * redis's sdssplitargs does, with "double quotes" and \x.. escapes and
 * 'single quotes'). Within a multibulk request only bulk strings are
 * allowed, as in Redis ("Protocol error: expected '$', got 'x'").
 *
 * Usage: rd_resp_req_init(p); then, each time more bytes arrived, call
 * rd_resp_parse_request(p, buf, len, lim, &err) where buf/len are ALL the
 * unconsumed bytes of the connection, starting at the first byte of the
 * request being parsed (the same start as on the previous call; the
 * buffer may have moved in memory, so the parser keeps offsets).
 *
 * On RD_RESP_OK: p->consumed is the request's length in bytes,
 * p->argc/p->argv are its arguments. argv entries point into buf (multibulk)
 * or into the parser's own scratch storage (inline); they stay valid until
 * the next call on p or until buf changes. The caller copies what it keeps,
 * drops p->consumed bytes from its buffer and calls rd_resp_req_reset(p)
 * before parsing the next request.
 * On RD_RESP_EMPTY: drop p->consumed bytes, reset, go on.
 * On RD_RESP_AGAIN: nothing to do until more bytes arrive.
 * On RD_RESP_ERROR: *err says why; the parser must be reset before reuse.
 *
 * Limits: a bulk length over max_bulk -> "Protocol error: invalid bulk
 * length"; a multibulk count over max_array -> "Protocol error: invalid
 * multibulk length"; an inline line (or a "*"/"$" header line) longer than
 * max_inline without a newline -> "Protocol error: too big inline request"
 * (or "too big mbulk count string" / "too big bulk count string");
 * unbalanced quotes in an inline command -> "Protocol error: unbalanced
 * quotes in request".
 */
typedef struct {
    /* public results */
    size_t    consumed;
    size_t    argc;
    rd_str_t *argv;          /* argc entries */

    /* private state */
    int       state;
    int       inline_req;
    size_t    pos;           /* offset of the next byte to examine */
    size_t    line_start;
    int64_t   nargs;         /* multibulk count */
    int64_t   bulklen;       /* current bulk's length, -1 when not in one */
    size_t    argv_cap;
    rd_buf_t  scratch;       /* unquoted inline arguments */
    size_t   *arg_off;       /* offsets of arguments while buf may move */
} rd_resp_req_parser_t;

void rd_resp_req_init(rd_resp_req_parser_t *p);
void rd_resp_req_reset(rd_resp_req_parser_t *p);   /* keep memory, restart */
void rd_resp_req_free(rd_resp_req_parser_t *p);
rd_resp_status_t rd_resp_parse_request(rd_resp_req_parser_t *p,
    const char *buf, size_t len, const rd_resp_limits_t *lim,
    const char **err);

/*
 * Reply scanner: finds where each reply ends without keeping it, so a
 * 512 MB bulk can stream through a small buffer.
 *
 * Accepts RESP2 replies: "+simple", "-error", ":integer", "$len" bulk with
 * "$-1" null, "*n" arrays with "*-1" null, nested to any depth.
 *
 * Depth costs no memory: finding where a reply ends needs only the number
 * of elements still expected (an array header stands for its n elements),
 * not one counter per open array. So a reply is never refused for its
 * nesting: Redis produces deep ones itself (a Lua script can return a
 * table nested about 8000 levels, its stack limit, and a module any
 * depth), and this scanner only frames them. The count of expected
 * elements is capped at INT64_MAX, which no real reply can reach.
 *
 * Usage: rd_resp_reply_init(s); then for every chunk of bytes received,
 * rd_resp_scan_reply(s, chunk, n, lim, &used, &err):
 *   RD_RESP_OK     - a whole reply ends at chunk[used - 1]; the bytes
 *                    chunk[0 .. used) are the rest of that reply. The
 *                    scanner is ready for the next reply (call again with
 *                    chunk + used for the remaining bytes).
 *   RD_RESP_AGAIN  - all n bytes belong to the current, unfinished reply
 *                    (used == n); the caller may forward or drop them.
 *   RD_RESP_ERROR  - malformed; *err says why.
 * s->type is the first byte of the current top-level reply ('+', '-', ':',
 * '$', '*') once it has been seen, 0 before.
 */
typedef struct {
    char     type;                       /* top-level reply type */
    int      state;
    uint64_t expect;                     /* elements still to come, the
                                            current one included */
    int64_t  num;                        /* number being read */
    int      neg;
    int      digits;
    int64_t  bulk_left;                  /* body bytes (+2 for CRLF) to skip */
    size_t   line_len;                   /* length of the current line */
} rd_resp_reply_scanner_t;

void rd_resp_reply_init(rd_resp_reply_scanner_t *s);
rd_resp_status_t rd_resp_scan_reply(rd_resp_reply_scanner_t *s,
    const char *chunk, size_t n, const rd_resp_limits_t *lim,
    size_t *used, const char **err);

/*
 * Reader over a complete RESP2 reply held in memory (a fan-out part, a
 * CLUSTER SLOTS answer). Bounds are checked: it never reads past end.
 *
 * Accepts what the reply scanner accepts: lines end at the first CRLF (a
 * lone CR or LF is text), numbers follow string2ll() ("01", "-0", "+1"
 * and overflow are refused), "$-1" and "*-1" are nulls and any other
 * negative length is malformed, a bulk body must be followed by CRLF.
 * An array count larger than the bytes left could hold (each element
 * takes at least 3) is refused at once, so a caller may size an
 * allocation by v->n.
 *
 * Usage: rd_resp_reader_init(&rd, buf, len); rd_resp_read(&rd, &v) reads
 * one value's header and, for '+', '-', ':' and '$', the whole value; for
 * an array, its v.n elements are the values read next. rd_resp_skip()
 * passes over one whole value, nested arrays included, to any depth (it
 * counts the elements still expected, as the scanner does). Both return
 * 0, or -1 when the bytes are malformed or end too early (rd->p is then
 * unspecified). The reply was read whole when rd.p == rd.end.
 */
typedef struct {
    const char *p;      /* next byte to read */
    const char *end;    /* one past the last byte */
} rd_resp_reader_t;

typedef struct {
    char        type;   /* '+', '-', ':', '$', '*' */
    int64_t     n;      /* ':' the integer; '$' the length or -1 (null);
                           '*' the count or -1 (null) */
    const char *str;    /* '+', '-': the line without CRLF; '$': the
                           bytes (NULL for the null bulk); else NULL */
    size_t      len;    /* bytes at str */
} rd_resp_value_t;

void rd_resp_reader_init(rd_resp_reader_t *rd, const char *p, size_t n);
int  rd_resp_read(rd_resp_reader_t *rd, rd_resp_value_t *v);
int  rd_resp_skip(rd_resp_reader_t *rd);

/*
 * Encoder for replies and commands the gateway makes itself.
 * Errors: rd_resp_encode_error(b, "ERR redoubt: ...") writes
 * "-ERR redoubt: ...\r\n"; CR and LF inside msg are replaced by spaces so
 * a reply can never be split.
 */
void rd_resp_encode_simple(rd_buf_t *b, const char *s);
void rd_resp_encode_error(rd_buf_t *b, const char *msg);
void rd_resp_encode_errorf(rd_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rd_resp_encode_integer(rd_buf_t *b, int64_t v);
void rd_resp_encode_bulk(rd_buf_t *b, const void *p, size_t len);
void rd_resp_encode_null(rd_buf_t *b);              /* "$-1\r\n" */
void rd_resp_encode_array(rd_buf_t *b, int64_t n);  /* header; -1 = null */
/* A command as a multibulk array of bulk strings. */
void rd_resp_encode_command(rd_buf_t *b, size_t argc, const rd_str_t *argv);

/* Redis's string2ll(): an optional '-', then "0" alone or a digit 1-9
 * followed by digits, nothing else, fitting in 64 bits ("+1", "01", "-0",
 * " 1" and "" are refused, as Redis refuses them). */
bool rd_resp_string2ll(const char *s, size_t n, int64_t *out);

#endif

/*
 * rd_resp_codec.c - the RESP2 request parser and the streaming reply
 * scanner (the reader of whole replies and the encoder are in
 * rd_resp_value.c); see rd_resp.h for the contract.
 *
 * Both parsers are state machines driven by a table of small step
 * functions indexed by the current state. A step either moves the machine
 * to another state and asks to be called again (RD_RESP_NEXT), or ends the
 * call with one of the public statuses. Everything a step needs to resume
 * is kept in the parser struct as offsets or counters, never as pointers
 * into the caller's bytes, because those bytes may move between calls.
 *
 * Request parsing follows redis-server 7 (networking.c processInlineBuffer
 * and processMultibulkBuffer, sds.c sdssplitargs, util.c string2ll),
 * including two of its quirks that a client can observe:
 *  - a NUL byte inside a header or inline line stops Redis's strchr(), so
 *    the line never completes and the request fails only once it is too
 *    long ("too big ... request/string");
 *  - the "too big" limit counts the bytes of the current line only.
 * It is stricter than Redis in one respect: Redis skips the two bytes after
 * a header's '\r' and after a bulk body without looking at them, and we
 * require them to be "\n" and "\r\n". Real clients always send CRLF, and a
 * gateway must not read a stream differently from the server behind it;
 * refusing is the one reading that cannot disagree with it.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

#include "rd_resp.h"

/* A step's answer meaning "state changed, run the next step". It must not
 * collide with any rd_resp_status_t value. */
#define RD_RESP_NEXT  (-1)

/* Limits used when the caller passes lim == NULL; they are redis-server's
 * defaults (proto-max-bulk-len, the multibulk cap, PROTO_INLINE_MAX_SIZE). */
static const rd_resp_limits_t rd_resp_default_limits = {
    .max_bulk   = 512ULL * 1024 * 1024,
    .max_array  = 1024 * 1024,
    .max_inline = 64 * 1024,
};

static const rd_resp_limits_t *
rd_resp_limits(const rd_resp_limits_t *lim)
{
    return lim != NULL ? lim : &rd_resp_default_limits;
}

/* isspace() in the C locale, without its undefined behaviour for negative
 * chars; sdssplitargs relies on exactly these six. */
static bool
rd_resp_isspace(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f'
        || c == '\r';
}

static bool
rd_resp_ishex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
        || (c >= 'A' && c <= 'F');
}

static int
rd_resp_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return c - 'A' + 10;
}

/*
 * Redis's string2ll(): an optional '-', then "0" alone or a digit 1-9
 * followed by digits, nothing else, fitting in 64 bits. Anything Redis
 * refuses as a length ("+1", "01", "-0", " 1", "") is refused here too.
 */
bool
rd_resp_string2ll(const char *s, size_t n, int64_t *out)
{
    size_t   i = 0;
    bool     neg = false;
    uint64_t v;

    if (n == 0 || n >= 21) {
        return false;
    }
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (s[0] == '-') {
        neg = true;
        if (++i == n) {
            return false;
        }
    }
    if (s[i] < '1' || s[i] > '9') {
        return false;
    }
    v = (uint64_t)(s[i++] - '0');
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }

    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return false;
        }
        *out = (int64_t)v;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Request parser
 * --------------------------------------------------------------------- */

enum {
    RD_RESP_REQ_START = 0,    /* first byte decides multibulk or inline */
    RD_RESP_REQ_INLINE,       /* looking for the inline line's '\n' */
    RD_RESP_REQ_COUNT,        /* looking for the '\r' of "*<n>" */
    RD_RESP_REQ_COUNT_LF,     /* the byte after that '\r' */
    RD_RESP_REQ_BULK_HDR,     /* looking for the '\r' of "$<len>" */
    RD_RESP_REQ_BULK_HDR_LF,  /* the byte after that '\r' */
    RD_RESP_REQ_BULK_BODY,    /* waiting for <len> bytes and CRLF */
    RD_RESP_REQ_LINE_NUL,     /* a NUL made the current line endless */
    RD_RESP_REQ_DONE,         /* OK or EMPTY was answered */
    RD_RESP_REQ_FAILED        /* ERROR was answered */
};

typedef int (*rd_resp_req_step_pt)(rd_resp_req_parser_t *p, const char *buf,
    size_t len, const rd_resp_limits_t *lim);

/*
 * Ends the request with an error. The message is kept in the scratch
 * buffer, so it can hold a formatted byte and stays available for calls
 * made after the failure. CR and LF are blanked as addReplyErrorFormat()
 * does, so the caller can put the message on a reply line as it is.
 */
static int rd_resp_req_fail(rd_resp_req_parser_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
rd_resp_req_fail(rd_resp_req_parser_t *p, const char *fmt, ...)
{
    char    msg[128];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
        msg[0] = '\0';
    } else if ((size_t)n >= sizeof(msg)) {
        n = sizeof(msg) - 1;
    }
    for (int i = 0; i < n; i++) {
        if (msg[i] == '\r' || msg[i] == '\n') {
            msg[i] = ' ';
        }
    }

    rd_buf_reset(&p->scratch);
    rd_buf_append(&p->scratch, msg, (size_t)n + 1);
    p->argc = 0;
    p->state = RD_RESP_REQ_FAILED;
    return RD_RESP_ERROR;
}

static const char *
rd_resp_req_too_big(const rd_resp_req_parser_t *p)
{
    if (p->inline_req) {
        return "Protocol error: too big inline request";
    }
    return p->nargs == 0 ? "Protocol error: too big mbulk count string"
                         : "Protocol error: too big bulk count string";
}

/*
 * Finds `term` in the line that starts at p->line_start, resuming at
 * p->pos so no byte is looked at twice. Redis gives up on a line once more
 * than max_inline bytes of it are buffered without a terminator; making
 * that "no terminator among the first max_inline + 1 bytes" gives the same
 * answer however the bytes were split. A NUL ends the search for good, as
 * it ends Redis's strchr(); the line then only waits to grow too long.
 * Returns RD_RESP_OK with *at set, RD_RESP_AGAIN or RD_RESP_ERROR.
 */
static int
rd_resp_req_find(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim, char term, size_t *at)
{
    size_t have = len - p->line_start;
    bool   capped = have > lim->max_inline;
    size_t end = capped ? p->line_start + (size_t)lim->max_inline + 1 : len;

    if (p->state != RD_RESP_REQ_LINE_NUL) {
        for (size_t i = p->pos; i < end; i++) {
            if (buf[i] == term) {
                *at = i;
                return RD_RESP_OK;
            }
            if (buf[i] == '\0') {
                p->state = RD_RESP_REQ_LINE_NUL;
                break;
            }
        }
    }

    p->pos = p->state == RD_RESP_REQ_LINE_NUL ? len : end;
    if (capped) {
        return rd_resp_req_fail(p, "%s", rd_resp_req_too_big(p));
    }
    return RD_RESP_AGAIN;
}

/* Records an argument as an offset, since the bytes it lives in (the
 * caller's buffer or the scratch buffer) may move before the end. The
 * arrays grow by doubling, so a "*1000000" header alone costs nothing. */
static void
rd_resp_req_push_arg(rd_resp_req_parser_t *p, size_t off, size_t len)
{
    if (p->argc == p->argv_cap) {
        size_t cap = p->argv_cap ? p->argv_cap * 2 : 8;
        p->argv = rd_realloc(p->argv, cap * sizeof(*p->argv));
        p->arg_off = rd_realloc(p->arg_off, cap * sizeof(*p->arg_off));
        p->argv_cap = cap;
    }
    p->arg_off[p->argc] = off;
    p->argv[p->argc].data = NULL;
    p->argv[p->argc].len = len;
    p->argc++;
}

/* Turns the recorded offsets into pointers into the current bytes. */
static int
rd_resp_req_finish(rd_resp_req_parser_t *p, const char *buf)
{
    const char *base = p->inline_req ? p->scratch.data : buf;

    for (size_t i = 0; i < p->argc; i++) {
        p->argv[i].data = base + p->arg_off[i];
    }
    p->state = RD_RESP_REQ_DONE;
    return p->argc > 0 ? RD_RESP_OK : RD_RESP_EMPTY;
}

static int
rd_resp_req_start(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    if (len == 0) {
        return RD_RESP_AGAIN;
    }

    /* Like processInputBuffer(): a leading '*' means multibulk, anything
     * else is an inline command. */
    p->line_start = 0;
    if (buf[0] == '*') {
        p->inline_req = 0;
        p->pos = 1;
        p->state = RD_RESP_REQ_COUNT;
    } else {
        p->inline_req = 1;
        p->pos = 0;
        p->state = RD_RESP_REQ_INLINE;
    }
    return RD_RESP_NEXT;
}

/*
 * One token of sdssplitargs(), starting at a non-blank byte. Quotes may
 * start in the middle of a token (a"b c" is one token "ab c"); a closing
 * quote must be followed by a blank or the end of the line. Escapes: in
 * double quotes \xHH and \n \r \t \b \a, any other \c is c; in single
 * quotes only \'. Returns false for unbalanced quotes.
 */
static bool
rd_resp_split_token(const char *s, size_t n, size_t *ip, char *out,
    size_t *op)
{
    size_t i = *ip, o = *op;
    char   quote = 0;

    for (;;) {
        if (quote == 0) {
            if (i >= n) {
                break;
            }
            char c = s[i++];
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                break;
            }
            if (c == '"' || c == '\'') {
                quote = c;
            } else {
                out[o++] = c;
            }
            continue;
        }

        if (i >= n) {
            return false;
        }

        if (s[i] == quote) {
            if (i + 1 < n && !rd_resp_isspace(s[i + 1])) {
                return false;
            }
            i++;
            break;
        }

        if (quote == '"' && s[i] == '\\' && i + 3 < n && s[i + 1] == 'x'
            && rd_resp_ishex(s[i + 2]) && rd_resp_ishex(s[i + 3]))
        {
            out[o++] = (char)(rd_resp_hexval(s[i + 2]) * 16
                              + rd_resp_hexval(s[i + 3]));
            i += 4;
        } else if (quote == '"' && s[i] == '\\' && i + 1 < n) {
            switch (s[i + 1]) {
            case 'n': out[o++] = '\n'; break;
            case 'r': out[o++] = '\r'; break;
            case 't': out[o++] = '\t'; break;
            case 'b': out[o++] = '\b'; break;
            case 'a': out[o++] = '\a'; break;
            default:  out[o++] = s[i + 1]; break;
            }
            i += 2;
        } else if (quote == '\'' && s[i] == '\\' && i + 1 < n
                   && s[i + 1] == '\'')
        {
            out[o++] = '\'';
            i += 2;
        } else {
            out[o++] = s[i++];
        }
    }

    *ip = i;
    *op = o;
    return true;
}

/* sdssplitargs() over one inline line, unquoting into the scratch buffer.
 * Unquoting never makes a token longer, so reserving the line's length
 * up front lets the tokens be written in place. */
static bool
rd_resp_split_inline(rd_resp_req_parser_t *p, const char *s, size_t n)
{
    size_t i = 0, o = 0;

    rd_buf_reset(&p->scratch);
    rd_buf_reserve(&p->scratch, n + 1);

    for (;;) {
        while (i < n && rd_resp_isspace(s[i])) {
            i++;
        }
        if (i == n) {
            break;
        }
        size_t start = o;
        if (!rd_resp_split_token(s, n, &i, p->scratch.data, &o)) {
            return false;
        }
        rd_resp_req_push_arg(p, start, o - start);
    }

    p->scratch.len = o;
    return true;
}

static int
rd_resp_req_inline(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    size_t nl;
    int    rc = rd_resp_req_find(p, buf, len, lim, '\n', &nl);

    if (rc != RD_RESP_OK) {
        return rc;
    }

    /* The line may end in "\r\n" or a bare "\n"; only one '\r' right
     * before the '\n' belongs to the line ending. */
    size_t end = nl;
    if (end > p->line_start && buf[end - 1] == '\r') {
        end--;
    }

    p->consumed = nl + 1;
    if (!rd_resp_split_inline(p, buf + p->line_start, end - p->line_start)) {
        return rd_resp_req_fail(p,
            "Protocol error: unbalanced quotes in request");
    }
    return rd_resp_req_finish(p, buf);
}

static int
rd_resp_req_count(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    size_t cr;
    int    rc = rd_resp_req_find(p, buf, len, lim, '\r', &cr);

    if (rc != RD_RESP_OK) {
        return rc;
    }
    p->pos = cr + 1;
    p->state = RD_RESP_REQ_COUNT_LF;
    return RD_RESP_NEXT;
}

static int
rd_resp_req_count_lf(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    int64_t n;
    size_t  cr = p->pos - 1;

    if (p->pos >= len) {
        return RD_RESP_AGAIN;
    }

    /* A count of zero or less is an empty request, as in Redis; a count
     * over the limit is refused before any argument storage exists. */
    if (!rd_resp_string2ll(buf + 1, cr - 1, &n)
        || (n > 0 && (uint64_t)n > lim->max_array)
        || buf[p->pos] != '\n')
    {
        return rd_resp_req_fail(p,
            "Protocol error: invalid multibulk length");
    }

    p->pos++;
    if (n <= 0) {
        p->consumed = p->pos;
        return rd_resp_req_finish(p, buf);
    }
    p->nargs = n;
    p->line_start = p->pos;
    p->state = RD_RESP_REQ_BULK_HDR;
    return RD_RESP_NEXT;
}

static int
rd_resp_req_bulk_hdr(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    size_t cr;
    int    rc = rd_resp_req_find(p, buf, len, lim, '\r', &cr);

    if (rc != RD_RESP_OK) {
        return rc;
    }
    p->pos = cr + 1;
    p->state = RD_RESP_REQ_BULK_HDR_LF;
    return RD_RESP_NEXT;
}

static int
rd_resp_req_bulk_hdr_lf(rd_resp_req_parser_t *p, const char *buf,
    size_t len, const rd_resp_limits_t *lim)
{
    int64_t n;
    size_t  cr = p->pos - 1;

    if (p->pos >= len) {
        return RD_RESP_AGAIN;
    }

    /* Redis looks at the '$' only once the whole header line is there,
     * so "foo\r\n" is reported as "got 'f'" rather than earlier. */
    if (buf[p->line_start] != '$') {
        return rd_resp_req_fail(p, "Protocol error: expected '$', got '%c'",
                                buf[p->line_start]);
    }
    if (!rd_resp_string2ll(buf + p->line_start + 1, cr - p->line_start - 1,
                           &n)
        || n < 0 || (uint64_t)n > lim->max_bulk || buf[p->pos] != '\n')
    {
        return rd_resp_req_fail(p, "Protocol error: invalid bulk length");
    }

    p->pos++;
    p->bulklen = n;
    p->state = RD_RESP_REQ_BULK_BODY;
    return RD_RESP_NEXT;
}

/* The body is never scanned: only the two bytes where its CRLF must be
 * are looked at, once all of it has arrived. */
static int
rd_resp_req_bulk_body(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    uint64_t need = (uint64_t)p->bulklen + 2;

    if ((uint64_t)(len - p->pos) < need) {
        return RD_RESP_AGAIN;
    }

    size_t end = p->pos + (size_t)p->bulklen;
    if (buf[end] != '\r' || buf[end + 1] != '\n') {
        return rd_resp_req_fail(p,
            "Protocol error: expected CRLF after bulk data");
    }

    rd_resp_req_push_arg(p, p->pos, (size_t)p->bulklen);
    p->pos = end + 2;
    p->bulklen = -1;
    if ((int64_t)p->argc == p->nargs) {
        p->consumed = p->pos;
        return rd_resp_req_finish(p, buf);
    }
    p->line_start = p->pos;
    p->state = RD_RESP_REQ_BULK_HDR;
    return RD_RESP_NEXT;
}

/* A line that saw a NUL only waits to become too long; the finder knows. */
static int
rd_resp_req_line_nul(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    size_t unused;

    return rd_resp_req_find(p, buf, len, lim, '\n', &unused);
}

/* Asked again after OK or EMPTY without a reset: the same answer, with
 * argv pointing into the buffer as it is now. */
static int
rd_resp_req_done(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    return rd_resp_req_finish(p, buf);
}

static int
rd_resp_req_failed(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim)
{
    return RD_RESP_ERROR;
}

static const rd_resp_req_step_pt rd_resp_req_steps[] = {
    [RD_RESP_REQ_START]       = rd_resp_req_start,
    [RD_RESP_REQ_INLINE]      = rd_resp_req_inline,
    [RD_RESP_REQ_COUNT]       = rd_resp_req_count,
    [RD_RESP_REQ_COUNT_LF]    = rd_resp_req_count_lf,
    [RD_RESP_REQ_BULK_HDR]    = rd_resp_req_bulk_hdr,
    [RD_RESP_REQ_BULK_HDR_LF] = rd_resp_req_bulk_hdr_lf,
    [RD_RESP_REQ_BULK_BODY]   = rd_resp_req_bulk_body,
    [RD_RESP_REQ_LINE_NUL]    = rd_resp_req_line_nul,
    [RD_RESP_REQ_DONE]        = rd_resp_req_done,
    [RD_RESP_REQ_FAILED]      = rd_resp_req_failed,
};

void
rd_resp_req_init(rd_resp_req_parser_t *p)
{
    memset(p, 0, sizeof(*p));
    rd_resp_req_reset(p);
}

void
rd_resp_req_reset(rd_resp_req_parser_t *p)
{
    p->consumed = 0;
    p->argc = 0;
    p->state = RD_RESP_REQ_START;
    p->inline_req = 0;
    p->pos = 0;
    p->line_start = 0;
    p->nargs = 0;
    p->bulklen = -1;
    rd_buf_reset(&p->scratch);
}

void
rd_resp_req_free(rd_resp_req_parser_t *p)
{
    free(p->argv);
    free(p->arg_off);
    rd_buf_free(&p->scratch);
    memset(p, 0, sizeof(*p));
    rd_resp_req_reset(p);
}

rd_resp_status_t
rd_resp_parse_request(rd_resp_req_parser_t *p, const char *buf, size_t len,
    const rd_resp_limits_t *lim, const char **err)
{
    int rc;

    lim = rd_resp_limits(lim);

    /* A caller that hands back fewer bytes than were already examined has
     * broken the contract; there is nothing new to look at. */
    if (len < p->pos) {
        return RD_RESP_AGAIN;
    }

    do {
        rc = rd_resp_req_steps[p->state](p, buf, len, lim);
    } while (rc == RD_RESP_NEXT);

    if (rc == RD_RESP_ERROR && err != NULL) {
        *err = p->scratch.data;
    }
    return (rd_resp_status_t)rc;
}

/* ------------------------------------------------------------------------
 * Reply scanner
 * --------------------------------------------------------------------- */

enum {
    RD_RESP_SCAN_TYPE = 0,      /* the type byte of the next element */
    RD_RESP_SCAN_LINE,          /* "+..." or "-..." up to CR */
    RD_RESP_SCAN_LINE_CR,       /* a CR in a line; LF ends the line */
    RD_RESP_SCAN_INT,           /* the three number kinds, in this order */
    RD_RESP_SCAN_BULKLEN,
    RD_RESP_SCAN_ARRAYLEN,
    RD_RESP_SCAN_INT_LF,        /* the LF after each kind, same order */
    RD_RESP_SCAN_BULKLEN_LF,
    RD_RESP_SCAN_ARRAYLEN_LF,
    RD_RESP_SCAN_BODY,          /* bulk bytes and their CRLF */
    RD_RESP_SCAN_DONE,          /* a reply ended; the next call starts anew */
    RD_RESP_SCAN_FAILED
};

enum {
    RD_RESP_NUM_INT = 0,
    RD_RESP_NUM_BULK,
    RD_RESP_NUM_ARRAY
};

/* Error messages, indexed by the code kept in s->num once failed. The
 * first three match the number kinds above. */
enum {
    RD_RESP_EINT = 0,
    RD_RESP_EBULK,
    RD_RESP_EARRAY,
    RD_RESP_ETYPE,
    RD_RESP_ECRLF
};

static const char *const rd_resp_scan_errors[] = {
    [RD_RESP_EINT]   = "Protocol error: invalid integer reply",
    [RD_RESP_EBULK]  = "Protocol error: invalid bulk length",
    [RD_RESP_EARRAY] = "Protocol error: invalid multibulk length",
    [RD_RESP_ETYPE]  = "Protocol error: unknown reply type",
    [RD_RESP_ECRLF]  = "Protocol error: expected CRLF after bulk data",
};

typedef int (*rd_resp_scan_step_pt)(rd_resp_reply_scanner_t *s,
    const char *c, size_t n, size_t *i, const rd_resp_limits_t *lim);

static int
rd_resp_scan_fail(rd_resp_reply_scanner_t *s, int code)
{
    s->state = RD_RESP_SCAN_FAILED;
    s->num = code;
    return RD_RESP_ERROR;
}

/* An element is complete. The reply is over when no element is expected
 * any more: the last one completes every array still open. */
static int
rd_resp_scan_elem_done(rd_resp_reply_scanner_t *s)
{
    if (--s->expect > 0) {
        s->state = RD_RESP_SCAN_TYPE;
        return RD_RESP_NEXT;
    }
    return RD_RESP_OK;
}

static int
rd_resp_scan_type(rd_resp_reply_scanner_t *s, const char *c, size_t n,
    size_t *i, const rd_resp_limits_t *lim)
{
    char t = c[(*i)++];

    s->num = 0;
    s->neg = 0;
    s->digits = 0;
    s->line_len = 0;

    switch (t) {
    case '+':
    case '-':
        s->state = RD_RESP_SCAN_LINE;
        break;
    case ':':
        s->state = RD_RESP_SCAN_INT;
        break;
    case '$':
        s->state = RD_RESP_SCAN_BULKLEN;
        break;
    case '*':
        s->state = RD_RESP_SCAN_ARRAYLEN;
        break;
    default:
        return rd_resp_scan_fail(s, RD_RESP_ETYPE);
    }
    if (s->type == 0) {
        s->type = t;
    }
    return RD_RESP_NEXT;
}

/* A status or error line ends at the first CRLF, as hiredis reads it; a
 * lone CR or LF is part of the text. memchr keeps long lines cheap. */
static int
rd_resp_scan_line(rd_resp_reply_scanner_t *s, const char *c, size_t n,
    size_t *i, const rd_resp_limits_t *lim)
{
    const char *cr = memchr(c + *i, '\r', n - *i);

    if (cr == NULL) {
        s->line_len += n - *i;
        *i = n;
        return RD_RESP_NEXT;
    }
    s->line_len += (size_t)(cr - (c + *i));
    *i = (size_t)(cr - c) + 1;
    s->state = RD_RESP_SCAN_LINE_CR;
    return RD_RESP_NEXT;
}

static int
rd_resp_scan_line_cr(rd_resp_reply_scanner_t *s, const char *c, size_t n,
    size_t *i, const rd_resp_limits_t *lim)
{
    char ch = c[(*i)++];

    if (ch == '\n') {
        return rd_resp_scan_elem_done(s);
    }
    s->line_len++;
    if (ch != '\r') {
        s->line_len++;
        s->state = RD_RESP_SCAN_LINE;
    }
    return RD_RESP_NEXT;
}

/*
 * Adds one digit with string2ll()'s rules: no leading zero, no "-0", no
 * overflow. The value is accumulated as a negative number so that
 * INT64_MIN fits; rd_resp_scan_value() turns it around.
 */
static bool
rd_resp_scan_digit(rd_resp_reply_scanner_t *s, int d)
{
    if (s->digits > 0 && s->num == 0) {
        return false;
    }
    if (s->digits == 0 && d == 0 && s->neg) {
        return false;
    }
    if (s->num < INT64_MIN / 10
        || (s->num == INT64_MIN / 10 && d > -(INT64_MIN % 10)))
    {
        return false;
    }
    s->num = s->num * 10 - d;
    s->digits++;
    return true;
}

static int
rd_resp_scan_number(rd_resp_reply_scanner_t *s, const char *c, size_t n,
    size_t *i, const rd_resp_limits_t *lim)
{
    int kind = s->state - RD_RESP_SCAN_INT;

    while (*i < n) {
        char ch = c[(*i)++];

        if (ch == '\r') {
            if (s->digits == 0) {
                return rd_resp_scan_fail(s, kind);
            }
            s->state = RD_RESP_SCAN_INT_LF + kind;
            return RD_RESP_NEXT;
        }
        if (ch == '-' && s->digits == 0 && !s->neg) {
            s->neg = 1;
            continue;
        }
        if (ch < '0' || ch > '9' || !rd_resp_scan_digit(s, ch - '0')) {
            return rd_resp_scan_fail(s, kind);
        }
    }
    return RD_RESP_NEXT;
}

static bool
rd_resp_scan_value(const rd_resp_reply_scanner_t *s, int64_t *v)
{
    if (s->neg) {
        *v = s->num;
        return true;
    }
    if (s->num == INT64_MIN) {
        return false;
    }
    *v = -s->num;
    return true;
}

/* "$-1" is the null bulk; any other length must fit the limit, and a
 * length so big that the CRLF would overflow the counter is refused too. */
static int
rd_resp_scan_bulk_header(rd_resp_reply_scanner_t *s, int64_t v,
    const rd_resp_limits_t *lim)
{
    if (v == -1) {
        return rd_resp_scan_elem_done(s);
    }
    if (v < -1 || (uint64_t)v > lim->max_bulk || v > INT64_MAX - 2) {
        return rd_resp_scan_fail(s, RD_RESP_EBULK);
    }
    s->bulk_left = v + 2;
    s->state = RD_RESP_SCAN_BODY;
    return RD_RESP_NEXT;
}

/* "*-1" (null) and "*0" are complete elements; a longer array stands in
 * for its n elements, whatever its depth. The count of expected elements
 * stays within INT64_MAX (each element takes 3 bytes or more, so no reply
 * can come near it; a count that would pass it is malformed). */
static int
rd_resp_scan_array_header(rd_resp_reply_scanner_t *s, int64_t v,
    const rd_resp_limits_t *lim)
{
    if (v == -1 || v == 0) {
        return rd_resp_scan_elem_done(s);
    }
    if (v < -1 || (uint64_t)v > lim->max_array
        || (uint64_t)v > (uint64_t)INT64_MAX - (s->expect - 1))
    {
        return rd_resp_scan_fail(s, RD_RESP_EARRAY);
    }
    s->expect += (uint64_t)v - 1;
    s->state = RD_RESP_SCAN_TYPE;
    return RD_RESP_NEXT;
}

static int
rd_resp_scan_number_lf(rd_resp_reply_scanner_t *s, const char *c, size_t n,
    size_t *i, const rd_resp_limits_t *lim)
{
    int     kind = s->state - RD_RESP_SCAN_INT_LF;
    int64_t v;

    if (c[(*i)++] != '\n' || !rd_resp_scan_value(s, &v)) {
        return rd_resp_scan_fail(s, kind);
    }

    switch (kind) {
    case RD_RESP_NUM_BULK:
        return rd_resp_scan_bulk_header(s, v, lim);
    case RD_RESP_NUM_ARRAY:
        return rd_resp_scan_array_header(s, v, lim);
    default:
        return rd_resp_scan_elem_done(s);
    }
}

/* The body is skipped in one step per chunk; only its CRLF is read. */
static int
rd_resp_scan_body(rd_resp_reply_scanner_t *s, const char *c, size_t n,
    size_t *i, const rd_resp_limits_t *lim)
{
    if (s->bulk_left > 2) {
        uint64_t body = (uint64_t)s->bulk_left - 2;
        size_t   k = n - *i;

        if ((uint64_t)k > body) {
            k = (size_t)body;
        }
        *i += k;
        s->bulk_left -= (int64_t)k;
        return RD_RESP_NEXT;
    }

    char want = s->bulk_left == 2 ? '\r' : '\n';
    if (c[(*i)++] != want) {
        return rd_resp_scan_fail(s, RD_RESP_ECRLF);
    }
    if (--s->bulk_left == 0) {
        return rd_resp_scan_elem_done(s);
    }
    return RD_RESP_NEXT;
}

static const rd_resp_scan_step_pt rd_resp_scan_steps[] = {
    [RD_RESP_SCAN_TYPE]        = rd_resp_scan_type,
    [RD_RESP_SCAN_LINE]        = rd_resp_scan_line,
    [RD_RESP_SCAN_LINE_CR]     = rd_resp_scan_line_cr,
    [RD_RESP_SCAN_INT]         = rd_resp_scan_number,
    [RD_RESP_SCAN_BULKLEN]     = rd_resp_scan_number,
    [RD_RESP_SCAN_ARRAYLEN]    = rd_resp_scan_number,
    [RD_RESP_SCAN_INT_LF]      = rd_resp_scan_number_lf,
    [RD_RESP_SCAN_BULKLEN_LF]  = rd_resp_scan_number_lf,
    [RD_RESP_SCAN_ARRAYLEN_LF] = rd_resp_scan_number_lf,
    [RD_RESP_SCAN_BODY]        = rd_resp_scan_body,
};

void
rd_resp_reply_init(rd_resp_reply_scanner_t *s)
{
    memset(s, 0, sizeof(*s));
    s->state = RD_RESP_SCAN_TYPE;
    s->expect = 1;
}

rd_resp_status_t
rd_resp_scan_reply(rd_resp_reply_scanner_t *s, const char *chunk, size_t n,
    const rd_resp_limits_t *lim, size_t *used, const char **err)
{
    size_t i = 0;

    lim = rd_resp_limits(lim);

    /* The type of a finished reply stays readable until the next call. */
    if (s->state == RD_RESP_SCAN_DONE) {
        s->type = 0;
        s->expect = 1;
        s->state = RD_RESP_SCAN_TYPE;
    }

    if (s->state == RD_RESP_SCAN_FAILED) {
        *used = 0;
        if (err != NULL) {
            *err = rd_resp_scan_errors[s->num];
        }
        return RD_RESP_ERROR;
    }

    while (i < n) {
        int rc = rd_resp_scan_steps[s->state](s, chunk, n, &i, lim);

        if (rc == RD_RESP_NEXT) {
            continue;
        }
        *used = i;
        if (rc == RD_RESP_OK) {
            s->state = RD_RESP_SCAN_DONE;
        } else if (err != NULL) {
            *err = rd_resp_scan_errors[s->num];
        }
        return (rd_resp_status_t)rc;
    }

    *used = n;
    return RD_RESP_AGAIN;
}

/*
 * rd_pubsub.c - the subscribe-family commands and the frames of a
 * subscribed connection (rd_pubsub.h).
 */
#include "config.h"

#include <string.h>

#include "rd_pubsub.h"
#include "rd_resp.h"

const rd_pubsub_cmd_t rd_pubsub_cmds[6] = {
    { "subscribe", RD_SUB_CHANNEL, 1 },
    { "psubscribe", RD_SUB_PATTERN, 1 },
    { "ssubscribe", RD_SUB_SHARD, 1 },
    { "unsubscribe", RD_SUB_CHANNEL, 0 },
    { "punsubscribe", RD_SUB_PATTERN, 0 },
    { "sunsubscribe", RD_SUB_SHARD, 0 },
};

int
rd_pubsub_cmd(rd_str_t name)
{
    for (size_t i = 0; i < rd_countof(rd_pubsub_cmds); i++) {
        if (rd_str_eq_ci(name, rd_pubsub_cmds[i].name)) {
            return (int)i;
        }
    }
    return -1;
}

/* One element of a whole frame: a bulk string (*len >= 0, or -1 for a
 * nil), an integer (*ival), an aggregate's header (*len elements), or 0
 * for anything else. */
static char
rd_pubsub_elem(const char **pp, const char *end, const char **data,
               int64_t *len, int64_t *ival)
{
    const char *p = *pp;
    if (p >= end) {
        return 0;
    }
    char type = *p++;
    const char *nl = memchr(p, '\r', (size_t)(end - p));
    if (nl == NULL || nl + 1 >= end || nl[1] != '\n') {
        return 0;
    }
    int64_t v = 0;
    if (!rd_resp_string2ll(p, (size_t)(nl - p), &v)) {
        return 0;
    }
    p = nl + 2;
    if (type == '$') {
        if (v < -1) {
            return 0;               /* only $-1 is a nil */
        }
        *len = v;
        *data = p;
        if (v >= 0) {
            if (end - p < v + 2 || p[v] != '\r' || p[v + 1] != '\n') {
                return 0;
            }
            p += v + 2;
        }
    } else if (type == ':') {
        *ival = v;
    } else if (type == '*' || type == '>') {
        *len = v;
    } else {
        return 0;
    }
    *pp = p;
    return type;
}

void
rd_pubsub_frame(const char *p, size_t n, rd_pubsub_frame_t *f)
{
    const char *q = p, *end = p + n, *name = NULL, *a = NULL, *b = NULL;
    int64_t nelem = 0, nlen = 0, alen = 0, blen = 0, ival = 0;

    memset(f, 0, sizeof(*f));
    char type = rd_pubsub_elem(&q, end, &name, &nelem, &ival);
    if (type == '*' || type == '>') {
        f->type = type;
    }
    if ((type != '*' && type != '>') || nelem < 3
        || rd_pubsub_elem(&q, end, &name, &nlen, &ival) != '$' || nlen < 0)
    {
        return;
    }
    rd_str_t kw = { name, (size_t)nlen };
    char t2 = rd_pubsub_elem(&q, end, &a, &alen, &ival);

    if (nelem == 3 && t2 == '$' && alen >= 0
        && (rd_str_eq_ci(kw, "message") || rd_str_eq_ci(kw, "smessage")))
    {
        f->what = RD_PSF_MESSAGE;
        f->kind = kw.len == 7 ? RD_SUB_CHANNEL : RD_SUB_SHARD;
        f->sub = (rd_str_t){ a, (size_t)alen };
        return;
    }
    if (nelem == 4 && t2 == '$' && alen >= 0 && rd_str_eq_ci(kw, "pmessage")) {
        f->what = RD_PSF_MESSAGE;
        f->kind = RD_SUB_PATTERN;
        f->sub = (rd_str_t){ a, (size_t)alen };
        return;
    }
    int ci = rd_pubsub_cmd(kw);
    if (ci < 0 || nelem != 3 || t2 != '$'
        || rd_pubsub_elem(&q, end, &b, &blen, &ival) != ':')
    {
        return;
    }
    f->what = RD_PSF_CONFIRM;
    f->cmd = ci;
    f->kind = rd_pubsub_cmds[ci].kind;
    f->sub = alen >= 0 ? (rd_str_t){ a, (size_t)alen } : (rd_str_t){ 0 };
    f->count = ival;
}

int
rd_pubsub_is_notification(const char *p, size_t n)
{
    return (n >= 11 && (memcmp(p, "__keyspace@", 11) == 0
                        || memcmp(p, "__keyevent@", 11) == 0));
}

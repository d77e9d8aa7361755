/*
 * rd_classify.c - what a request is, worked out once (rd_session.h,
 * "What the request is"): its connection-command facts, its command
 * table row and its keys.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "rd_session.h"

/* Positions of c's keys in argv into *pos (small, or allocated when
 * they do not fit): the count, or -1. */
static int
rd_classify_keys(const rd_command_t *c, const rd_request_t *r,
                 unsigned opts, size_t **pos, size_t *small, size_t nsmall)
{
    int n = rd_command_keys_ex(c, r->argc, r->argv, opts, small, NULL,
                               nsmall);
    *pos = small;
    if (n > (int)nsmall) {
        *pos = rd_alloc((size_t)n * sizeof(size_t));
        n = rd_command_keys_ex(c, r->argc, r->argv, opts, *pos, NULL,
                               (size_t)n);
    }
    return n;
}

void
rd_request_unclassify(rd_request_t *r)
{
    if (r->keys != r->keys_small) {
        free(r->keys);
        r->keys = r->keys_small;
    }
    if (r->touched != r->touched_small) {
        free(r->touched);
        r->touched = r->touched_small;
    }
    r->cmd = NULL;
    r->nkeys = -1;
    r->ntouched = -2;
}

void
rd_request_classify(rd_request_t *r)
{
    rd_request_unclassify(r);
    if (r->argc == 0) {
        memset(&r->conncmd, 0, sizeof(r->conncmd));
        return;
    }
    rd_conncmd_parse(&r->conncmd, r->argc, r->argv);
    r->cmd = rd_command_lookup(r->argc, r->argv);
    if (r->cmd) {
        r->nkeys = rd_classify_keys(r->cmd, r, 0, &r->keys, r->keys_small,
                                    rd_countof(r->keys_small));
    }
}

void
rd_request_from_argv(rd_request_t *r, size_t argc, const rd_str_t *argv)
{
    memset(r, 0, sizeof(*r));
    r->argc = argc;
    r->argv = (rd_str_t *)argv;     /* only read: no request writes argv */
    r->keys = r->keys_small;
    r->touched = r->touched_small;
    rd_request_classify(r);
}

int
rd_request_touched(rd_request_t *r, const size_t **pos)
{
    if (r->ntouched == -2) {
        r->ntouched = r->cmd == NULL ? -1
            : rd_classify_keys(r->cmd, r, RD_KEYS_TOUCHED, &r->touched,
                               r->touched_small,
                               rd_countof(r->touched_small));
    }
    *pos = r->touched;
    return r->ntouched;
}

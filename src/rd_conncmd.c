/*
 * rd_conncmd.c - connection commands parsed as redis-server parses them.
 * See rd_conncmd.h for the rules.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "rd_conncmd.h"
#include "rd_resp.h"

bool
rd_str_to_ll(rd_str_t s, long long *v)
{
    int64_t x;
    if (!rd_resp_string2ll(s.data, s.len, &x)) {
        return false;
    }
    *v = (long long)x;
    return true;
}

bool
rd_client_name_ok(rd_str_t name)
{
    /* Redis: every byte in '!'..'~' (an empty name clears it). */
    for (size_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.data[i];
        if (c < '!' || c > '~') {
            return false;
        }
    }
    return true;
}

rd_hello_opt_t
rd_hello_next(size_t argc, const rd_str_t *argv, size_t *pos)
{
    size_t j = *pos;
    if (j >= argc) {
        return RD_HELLO_END;
    }
    size_t more = argc - 1 - j;
    if (rd_str_eq_ci(argv[j], "auth") && more >= 2) {
        *pos = j + 3;
        return RD_HELLO_AUTH;
    }
    if (rd_str_eq_ci(argv[j], "setname") && more >= 1) {
        *pos = j + 2;
        return RD_HELLO_SETNAME;
    }
    return RD_HELLO_BAD;
}

static void
rd_conncmd_hello(rd_conncmd_t *cc, size_t argc, const rd_str_t *argv)
{
    if (argc < 2) {
        return;
    }
    long long ver;
    if (!rd_str_to_ll(argv[1], &ver)) {
        cc->error = RD_CONN_ERR_PROTOVER;
        return;
    }
    if (ver < 2 || ver > 3) {
        cc->error = RD_CONN_ERR_NOPROTO;
        return;
    }
    cc->protover = (int)ver;

    size_t pos = 2, nauth = 0;
    for (;;) {
        size_t at = pos;
        rd_hello_opt_t o = rd_hello_next(argc, argv, &pos);
        if (o == RD_HELLO_END) {
            break;
        }
        if (o == RD_HELLO_BAD) {
            cc->error = RD_CONN_ERR_HELLO_OPTION;
            cc->error_at = at;
            return;
        }
        if (o == RD_HELLO_AUTH) {
            cc->user_at = at + 1;
            cc->pass_at = at + 2;
            if (++nauth > 1 && cc->error == RD_CONN_OK) {
                cc->error = RD_CONN_ERR_MULTI_AUTH;
            }
        } else {
            cc->setname_at = at + 1;
            if (!rd_client_name_ok(argv[at + 1]) && cc->error == RD_CONN_OK) {
                cc->error = RD_CONN_ERR_NAME;
            }
        }
    }
}

void
rd_conncmd_parse(rd_conncmd_t *cc, size_t argc, const rd_str_t *argv)
{
    memset(cc, 0, sizeof(*cc));
    if (argc == 0) {
        return;
    }
    rd_str_t a = argv[0];

    /* The cheap test first: every name here starts with one of these. */
    switch (a.len ? a.data[0] | 0x20 : 0) {
    case 'a': case 'h': case 'r': case 's': case 'c': case 'm': case 'e':
    case 'd': case 'w': case 'u': case 'q':
        break;
    default:
        return;
    }

    if (rd_str_eq_ci(a, "auth")) {
        cc->kind = RD_CONN_AUTH;
        if (argc == 2) {
            cc->pass_at = 1;
        } else if (argc == 3) {
            cc->user_at = 1;
            cc->pass_at = 2;
        } else if (argc > 3) {
            cc->error = RD_CONN_ERR_SYNTAX;
        }
        /* argc 1: Redis's arity error, answered by Redis. */
    } else if (rd_str_eq_ci(a, "hello")) {
        cc->kind = RD_CONN_HELLO;
        rd_conncmd_hello(cc, argc, argv);
    } else if (rd_str_eq_ci(a, "reset")) {
        cc->kind = RD_CONN_RESET;
    } else if (rd_str_eq_ci(a, "select")) {
        cc->kind = RD_CONN_SELECT;
        if (argc == 2) {
            cc->db_ok = rd_str_to_ll(argv[1], &cc->db);
        }
    } else if (rd_str_eq_ci(a, "client")) {
        if (argc == 3 && rd_str_eq_ci(argv[1], "setname")) {
            cc->kind = RD_CONN_SETNAME;
            cc->setname_at = 2;
            if (!rd_client_name_ok(argv[2])) {
                cc->error = RD_CONN_ERR_NAME;
            }
        }
    } else if (rd_str_eq_ci(a, "multi")) {
        cc->kind = RD_CONN_MULTI;
    } else if (rd_str_eq_ci(a, "exec")) {
        cc->kind = RD_CONN_EXEC;
    } else if (rd_str_eq_ci(a, "discard")) {
        cc->kind = RD_CONN_DISCARD;
    } else if (rd_str_eq_ci(a, "watch")) {
        cc->kind = RD_CONN_WATCH;
    } else if (rd_str_eq_ci(a, "unwatch")) {
        cc->kind = RD_CONN_UNWATCH;
    } else if (rd_str_eq_ci(a, "quit")) {
        cc->kind = RD_CONN_QUIT;
    }
}

rd_str_t
rd_conncmd_user(const rd_conncmd_t *cc, const rd_str_t *argv)
{
    return cc->user_at ? argv[cc->user_at] : RD_STR("default");
}

void
rd_conncmd_error_text(const rd_conncmd_t *cc, const rd_str_t *argv,
                      char *buf, size_t n)
{
    switch (cc->error) {
    case RD_CONN_OK:
        snprintf(buf, n, "ERR no error");
        break;
    case RD_CONN_ERR_SYNTAX:
        snprintf(buf, n, "ERR syntax error");
        break;
    case RD_CONN_ERR_HELLO_OPTION: {
        /* Redis prints the option as a C string (up to a NUL); an error
         * line cannot hold CR or LF, so those become spaces as Redis's
         * addReplyError does. */
        rd_str_t o = argv[cc->error_at];
        int k = snprintf(buf, n, "ERR Syntax error in HELLO option '");
        size_t i = 0;
        for (; i < o.len && o.data[i] != '\0' && (size_t)k + 3 < n; i++) {
            char ch = o.data[i];
            buf[k++] = (ch == '\r' || ch == '\n') ? ' ' : ch;
        }
        snprintf(buf + k, n - (size_t)k, "'");
        break;
    }
    case RD_CONN_ERR_PROTOVER:
        snprintf(buf, n, "ERR Protocol version is not an integer or out "
                 "of range");
        break;
    case RD_CONN_ERR_NOPROTO:
        snprintf(buf, n, "NOPROTO unsupported protocol version");
        break;
    case RD_CONN_ERR_NAME:
        snprintf(buf, n, "ERR Client names cannot contain spaces, newlines "
                 "or special characters.");
        break;
    case RD_CONN_ERR_MULTI_AUTH:
        snprintf(buf, n, "ERR redoubt: HELLO with more than one AUTH "
                 "option is not supported");
        break;
    }
}

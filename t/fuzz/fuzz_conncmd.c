/*
 * fuzz_conncmd.c - libFuzzer target for the connection-command parser
 * (rd_conncmd.h).
 *
 * The input is a command, its arguments separated by '\n'. Checks:
 *  - every position the parser reports is inside argv, and the error text
 *    fits its buffer and is one line;
 *  - against a transcription of redis-server 7.0's helloCommand (which
 *    applies each AUTH and SETNAME as it walks the options): whenever the
 *    parser lets a HELLO through (no error), Redis applies all of it or
 *    none of it, and the user Redis ends up with is the parser's user;
 *    whenever Redis would change the user and still fail, the parser
 *    marks the command with an error (redoubt never sends it).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_conncmd.h"

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

#define MAXARGS 64

/* Redis 7.0 helloCommand, reduced to what it does to the user: returns
 * 1 when the reply is the HELLO map, 0 on an error; *applied: how many
 * AUTH options took effect; *user: the last one applied (every password
 * is taken as right: the parser cannot know passwords). */
static int
ref_hello(size_t argc, const rd_str_t *argv, size_t *applied, size_t *user)
{
    *applied = 0;
    *user = 0;
    if (argc >= 2) {
        long long ver;
        if (!rd_str_to_ll(argv[1], &ver)) {
            return 0;
        }
        if (ver < 2 || ver > 3) {
            return 0;
        }
    }
    for (size_t j = 2; j < argc; j++) {
        size_t moreargs = argc - 1 - j;
        if (rd_str_eq_ci(argv[j], "auth") && moreargs >= 2) {
            (*applied)++;
            *user = j + 1;
            j += 2;
        } else if (rd_str_eq_ci(argv[j], "setname") && moreargs) {
            if (!rd_client_name_ok(argv[j + 1])) {
                return 0;
            }
            j++;
        } else {
            return 0;
        }
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    rd_str_t argv[MAXARGS];
    size_t argc = 0;
    const char *p = (const char *)data, *end = p + size;

    while (argc < MAXARGS) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        argv[argc].data = p;
        argv[argc].len = (size_t)(e - p);
        argc++;
        if (nl == NULL) {
            break;
        }
        p = nl + 1;
    }

    rd_conncmd_t cc;
    rd_conncmd_parse(&cc, argc, argv);
    CHECK(cc.user_at < argc && cc.pass_at < argc && cc.setname_at < argc);
    CHECK(cc.error_at < argc);
    if (cc.pass_at) {
        CHECK(cc.kind == RD_CONN_AUTH || cc.kind == RD_CONN_HELLO);
        CHECK(cc.user_at == 0 || cc.user_at + 1 == cc.pass_at);
    }
    char text[300];
    rd_conncmd_error_text(&cc, argv, text, sizeof(text));
    CHECK(strlen(text) < sizeof(text));
    CHECK(strchr(text, '\r') == NULL && strchr(text, '\n') == NULL);

    if (cc.kind == RD_CONN_HELLO) {
        size_t applied, user;
        int ok = ref_hello(argc, argv, &applied, &user);
        if (cc.error == RD_CONN_OK) {
            /* Sent to Redis: all or nothing, and the user we adopt. */
            CHECK(ok);
            CHECK(applied <= 1);
            CHECK(applied == 0 ? cc.pass_at == 0 : cc.user_at == user);
        } else if (applied > 0 && !ok) {
            /* Redis would half-apply it: it must not be sent (it is not:
             * it carries an error). */
            CHECK(cc.error != RD_CONN_OK);
        }
    }
    if (cc.kind == RD_CONN_AUTH && cc.error == RD_CONN_OK && cc.pass_at) {
        CHECK(argc == 2 || argc == 3);
    }
    return 0;
}

/*
 * test_conncmd.c - connection commands parsed as redis-server 7.0 parses
 * them (rd_conncmd.h). The expectations come from a real redis-server
 * (t_security.sh checks the same cases end to end with ACL WHOAMI).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rd_conncmd.h"

/* Split a command line on spaces ("" is an empty argument) and parse it. */
static size_t
parse(const char *line, rd_conncmd_t *cc, rd_str_t *argv, char *buf)
{
    size_t argc = 0;
    strcpy(buf, line);
    for (char *p = buf; *p; ) {
        char *e = strchr(p, ' ');
        if (e) {
            *e = '\0';
        }
        if (strcmp(p, "\"\"") == 0) {
            argv[argc++] = (rd_str_t){ p, 0 };
        } else {
            argv[argc++] = (rd_str_t){ p, strlen(p) };
        }
        if (!e) {
            break;
        }
        p = e + 1;
    }
    rd_conncmd_parse(cc, argc, argv);
    return argc;
}

static char *
text(const rd_conncmd_t *cc, const rd_str_t *argv)
{
    static char b[300];
    rd_conncmd_error_text(cc, argv, b, sizeof(b));
    return b;
}

#define USER(cc, argv) rd_conncmd_user(&(cc), (argv))

START_TEST(test_auth_forms)
{
    rd_conncmd_t cc;
    rd_str_t a[8];
    char buf[256];

    parse("AUTH pw", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_AUTH);
    ck_assert(rd_conncmd_has_auth(&cc));
    ck_assert(rd_str_eq_ci(USER(cc, a), "default"));
    ck_assert_uint_eq(cc.pass_at, 1);

    parse("auth bob pw", &cc, a, buf);
    ck_assert(rd_str_eq_ci(USER(cc, a), "bob"));
    ck_assert_uint_eq(cc.pass_at, 2);

    parse("AUTH bob pw extra", &cc, a, buf);
    ck_assert_int_eq(cc.error, RD_CONN_ERR_SYNTAX);
    ck_assert(!rd_conncmd_has_auth(&cc));
    ck_assert_str_eq(text(&cc, a), "ERR syntax error");

    parse("AUTH", &cc, a, buf);        /* Redis's arity error */
    ck_assert_int_eq(cc.error, RD_CONN_OK);
    ck_assert(!rd_conncmd_has_auth(&cc));
}
END_TEST

START_TEST(test_hello_walks_options_in_order)
{
    rd_conncmd_t cc;
    rd_str_t a[12];
    char buf[256];

    parse("HELLO", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_HELLO);
    ck_assert_int_eq(cc.error, RD_CONN_OK);
    ck_assert(!rd_conncmd_has_auth(&cc));

    parse("HELLO 2 AUTH alice pw", &cc, a, buf);
    ck_assert(rd_conncmd_has_auth(&cc));
    ck_assert(rd_str_eq_ci(USER(cc, a), "alice"));
    ck_assert_int_eq(cc.protover, 2);

    /* SETNAME takes the next word, whatever it is. */
    parse("HELLO 2 SETNAME AUTH AUTH bob pw", &cc, a, buf);
    ck_assert_int_eq(cc.error, RD_CONN_OK);
    ck_assert(rd_str_eq_ci(USER(cc, a), "bob"));
    ck_assert_uint_eq(cc.setname_at, 3);

    parse("hello 3 setname app auth bob pw", &cc, a, buf);
    ck_assert_int_eq(cc.protover, 3);
    ck_assert(rd_str_eq_ci(USER(cc, a), "bob"));
}
END_TEST

START_TEST(test_hello_that_redis_would_half_apply_is_an_error)
{
    rd_conncmd_t cc;
    rd_str_t a[12];
    char buf[256];

    parse("HELLO 2 AUTH alice pw AUTH bob pw", &cc, a, buf);
    ck_assert_int_eq(cc.error, RD_CONN_ERR_MULTI_AUTH);
    ck_assert(!rd_conncmd_has_auth(&cc));

    parse("HELLO 2 AUTH bob pw SETNAME", &cc, a, buf);
    ck_assert_int_eq(cc.error, RD_CONN_ERR_HELLO_OPTION);
    ck_assert_str_eq(text(&cc, a), "ERR Syntax error in HELLO option 'SETNAME'");

    parse("HELLO 2 AUTH bob", &cc, a, buf);
    ck_assert_str_eq(text(&cc, a), "ERR Syntax error in HELLO option 'AUTH'");

    parse("HELLO 2 AUTH bob pw bogus", &cc, a, buf);
    ck_assert_str_eq(text(&cc, a), "ERR Syntax error in HELLO option 'bogus'");

    /* A name Redis refuses, after the AUTH that Redis 7.0 applies. */
    char sp[] = "a b";
    rd_str_t v[6] = { RD_STR("HELLO"), RD_STR("2"), RD_STR("AUTH"),
                      RD_STR("bob"), RD_STR("pw"), RD_STR("SETNAME") };
    rd_str_t w[7];
    memcpy(w, v, sizeof(v));
    w[6] = (rd_str_t){ sp, 3 };
    rd_conncmd_parse(&cc, 7, w);
    ck_assert_int_eq(cc.error, RD_CONN_ERR_NAME);
    ck_assert_str_eq(text(&cc, w), "ERR Client names cannot contain spaces, "
                     "newlines or special characters.");
    w[6] = (rd_str_t){ "\xc3\xa9", 2 };
    rd_conncmd_parse(&cc, 7, w);
    ck_assert_int_eq(cc.error, RD_CONN_ERR_NAME);
    w[6] = (rd_str_t){ "", 0 };       /* empty: clears the name */
    rd_conncmd_parse(&cc, 7, w);
    ck_assert_int_eq(cc.error, RD_CONN_OK);
}
END_TEST

START_TEST(test_hello_versions_as_string2ll)
{
    rd_conncmd_t cc;
    rd_str_t a[8];
    char buf[256];
    static const char *const bad[] = { "HELLO 02", "HELLO +2", "HELLO 2x",
                                       "HELLO AUTH a b", "HELLO \"\"" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse(bad[i], &cc, a, buf);
        ck_assert_msg(cc.error == RD_CONN_ERR_PROTOVER, "%s", bad[i]);
        ck_assert_str_eq(text(&cc, a), "ERR Protocol version is not an "
                         "integer or out of range");
    }
    parse("HELLO 4 AUTH bob pw", &cc, a, buf);
    ck_assert_int_eq(cc.error, RD_CONN_ERR_NOPROTO);
    parse("HELLO -1", &cc, a, buf);
    ck_assert_int_eq(cc.error, RD_CONN_ERR_NOPROTO);
    parse("HELLO 99999999999999999999", &cc, a, buf);
    ck_assert_int_eq(cc.error, RD_CONN_ERR_PROTOVER);
}
END_TEST

START_TEST(test_other_connection_commands)
{
    rd_conncmd_t cc;
    rd_str_t a[8];
    char buf[256];

    parse("multi", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_MULTI);
    parse("EXEC", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_EXEC);
    parse("Discard", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_DISCARD);
    parse("RESET", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_RESET);
    parse("QUIT", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_QUIT);
    parse("SELECT 12", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_SELECT);
    ck_assert(cc.db_ok);
    ck_assert_int_eq(cc.db, 12);
    parse("SELECT x", &cc, a, buf);
    ck_assert(!cc.db_ok);
    parse("CLIENT SETNAME app", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_SETNAME);
    ck_assert_uint_eq(cc.setname_at, 2);
    parse("CLIENT LIST", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_NONE);
    parse("GET AUTH", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_NONE);
    parse("AUTHX pw", &cc, a, buf);
    ck_assert_int_eq(cc.kind, RD_CONN_NONE);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("conncmd");
    TCase *tc = tcase_create("conncmd");
    tcase_add_test(tc, test_auth_forms);
    tcase_add_test(tc, test_hello_walks_options_in_order);
    tcase_add_test(tc, test_hello_that_redis_would_half_apply_is_an_error);
    tcase_add_test(tc, test_hello_versions_as_string2ll);
    tcase_add_test(tc, test_other_connection_commands);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test_session.c - the session engine's ordering contract (rd_session.h):
 * replies leave in request order however the requests complete, the head
 * request's reply streams while later ones are buffered, and everything
 * held for the client counts against limits.client_output_limit.
 *
 * A real session on a socketpair (rd_test_session.h); the test's route
 * handler holds every request, and the test answers them as an upstream
 * would, in the order it chooses.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rd_test_session.h"

#define A "$1\r\nA\r\n"
#define B "$1\r\nB\r\n"
#define C "$1\r\nC\r\n"

static void
expect_left(const char *a, const char *b, const char *c)
{
    const char *want[3] = { a, b, c };
    size_t n = c ? 3 : b ? 2 : 1;
    ck_assert_uint_eq(ts.nleft, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(ts.left[i], want[i]);
    }
}

START_TEST(test_replies_leave_in_request_order)
{
    ts_send("*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
            "*2\r\n$3\r\nGET\r\n$1\r\nb\r\n"
            "*2\r\n$3\r\nGET\r\n$1\r\nc\r\n");
    ck_assert_uint_eq(ts.nreq, 3);
    ck_assert_uint_eq(ts.s->inflight, 3);

    /* The last and then the middle one complete: both wait, buffered. */
    ts_answer(2, C);
    ts_expect("");
    ts_answer(1, B);
    ts_expect("");
    ck_assert_uint_eq(ts.s->buffered, strlen(B) + strlen(C));
    ck_assert_uint_eq(ts.nleft, 0);

    /* The head completes: all three leave, in request order. */
    ts_answer(0, A);
    ts_expect(A B C);
    expect_left("a", "b", "c");
    ck_assert_uint_eq(ts.s->buffered, 0);
    ck_assert_uint_eq(ts.s->inflight, 0);
    ck_assert_ptr_null(ts.s->head);
}
END_TEST

START_TEST(test_middle_completion_waits_for_head_only)
{
    ts_command("GET a");
    ts_command("GET b");
    ts_command("GET c");
    ck_assert_uint_eq(ts.nreq, 3);

    ts_answer(1, B);
    ts_expect("");
    ts_answer(0, A);
    /* The head and the one done behind it go; the third still waits. */
    ts_expect(A B);
    expect_left("a", "b", NULL);
    ck_assert_uint_eq(ts.s->inflight, 1);
    ts_answer(2, C);
    ts_expect(C);
    expect_left("a", "b", "c");
}
END_TEST

START_TEST(test_head_reply_streams)
{
    ts_command("GET a");
    ts_command("GET b");
    rd_request_t *r0 = ts.req[0], *r1 = ts.req[1];

    /* Part of the head's reply goes out before the reply is whole. */
    rd_request_reply_append(r0, "$10\r\n01234", 10);
    ts_expect("$10\r\n01234");
    ck_assert(r0->streaming);
    ck_assert_uint_eq(ts.s->buffered, 0);

    /* Part of the second one's is held back. */
    rd_request_reply_append(r1, "$3\r\nxy", 6);
    ts_expect("");
    ck_assert(!r1->streaming);
    ck_assert_uint_eq(ts.s->buffered, 6);

    /* The head ends: the second one's part follows it at once, and the
     * rest of it streams. */
    rd_request_reply_append(r0, "56789\r\n", 7);
    rd_request_done(r0);
    ts_expect("56789\r\n$3\r\nxy");
    ck_assert_ptr_eq(ts.s->head, r1);
    ck_assert(r1->streaming);
    ck_assert_uint_eq(ts.s->buffered, 0);

    rd_request_reply_append(r1, "z\r\n", 3);
    ts_expect("z\r\n");
    ck_assert_uint_eq(ts.nleft, 1);
    rd_request_done(r1);
    ts_expect("");
    expect_left("a", "b", NULL);
    ck_assert_uint_eq(ts.s->inflight, 0);
}
END_TEST

START_TEST(test_buffer_reply_holds_the_head)
{
    ts_command("GET a");
    rd_request_t *r0 = ts.req[0];

    /* A module that needs the whole reply: nothing streams. */
    r0->buffer_reply = 1;
    rd_request_reply_append(r0, "$3\r\nab", 6);
    ts_expect("");
    ck_assert(!r0->streaming);
    ck_assert_uint_eq(ts.s->buffered, 6);
    rd_request_reply_append(r0, "c\r\n", 3);
    rd_request_done(r0);
    ts_expect("$3\r\nabc\r\n");
    ck_assert_uint_eq(ts.s->buffered, 0);
}
END_TEST

START_TEST(test_reply_head_is_kept)
{
    ts_command("GET a");
    rd_request_t *r0 = ts.req[0];
    char err[600];

    /* An error's text whole, up to the buffer, for the audit. */
    memset(err, 'x', sizeof(err));
    err[0] = '-';
    rd_request_reply_append(r0, err, 300);
    rd_request_reply_append(r0, err + 300, sizeof(err) - 300);
    ck_assert_int_eq(r0->reply_type, '-');
    ck_assert_uint_eq(r0->reply_head_len, sizeof(r0->reply_head));
    ck_assert_int_eq(memcmp(r0->reply_head, err, sizeof(r0->reply_head)),
                     0);
}
END_TEST

START_TEST(test_protocol_error_waits_its_turn)
{
    ts_command("GET a");
    /* The decoder answers a malformed request itself and the session
     * closes, but only after the reply of the request before it. */
    ts_send("*1\r\n$x\r\n");
    ck_assert_uint_eq(ts.nreq, 1);
    ck_assert_int_eq(ts.s->state, RD_SESSION_CLOSING);
    ts_expect("");

    ts_answer(0, A);
    char buf[1024];
    ck_assert_int_gt(ts_recv(buf, sizeof(buf)), 0);
    ck_assert_msg(strncmp(buf, A "-ERR Protocol error", strlen(A) + 19)
                  == 0, "got \"%s\"", buf);
    ck_assert_int_eq(ts_recv(buf, sizeof(buf)), -1);
    ck_assert(ts_closed());
}
END_TEST

/* --- limits.client_output_limit ------------------------------------------ */

static void
output_limit(int64_t limit)
{
    rd_core_conf(ts.cycle)->client_output_limit = limit;
}

START_TEST(test_output_limit_counts_buffered_replies)
{
    char big[128];

    output_limit(64);
    ts_command("GET a");
    ts_command("GET b");
    memset(big, 'v', sizeof(big));

    /* Exactly the limit is allowed. */
    rd_request_reply_append(ts.req[1], big, 64);
    ck_assert(!ts_closed());
    ck_assert_uint_eq(ts.s->buffered, 64);

    /* One byte more closes the session; nothing is sent. */
    rd_request_reply_append(ts.req[1], big, 1);
    ck_assert(ts_closed());
    char buf[256];
    ck_assert_int_eq(ts_recv(buf, sizeof(buf)), -1);
    ck_assert_ptr_null(ts.s);
    ck_assert_str_eq(ts.close_reason, "client output limit exceeded");
}
END_TEST

START_TEST(test_output_limit_counts_unsent_output)
{
    char big[128];

    output_limit(64);
    ts_command("GET a");
    ts_command("GET b");
    memset(big, 'v', sizeof(big));

    /* 40 bytes of the head wait in the session's output, not yet
     * written: with 30 buffered behind them, the limit is passed. */
    rd_request_reply_append(ts.req[0], big, 40);
    ck_assert(!ts_closed());
    rd_request_reply_append(ts.req[1], big, 30);
    ck_assert(ts_closed());
}
END_TEST

START_TEST(test_output_limit_spares_what_was_written)
{
    char big[128], buf[256];

    output_limit(64);
    ts_command("GET a");
    ts_command("GET b");
    memset(big, 'v', sizeof(big));

    /* Once the head's bytes went to the client, they count no more. */
    rd_request_reply_append(ts.req[0], big, 40);
    ck_assert_int_eq(ts_recv(buf, sizeof(buf)), 40);
    rd_request_reply_append(ts.req[1], big, 30);
    ck_assert(!ts_closed());
    ck_assert_uint_eq(ts.s->buffered, 30);
}
END_TEST

START_TEST(test_output_limit_zero_is_unlimited)
{
    static char big[1 << 20];

    output_limit(0);
    ts_command("GET a");
    ts_command("GET b");
    memset(big, 'v', sizeof(big));
    rd_request_reply_append(ts.req[1], big, sizeof(big));
    ck_assert(!ts_closed());
    ck_assert_uint_eq(ts.s->buffered, sizeof(big));
}
END_TEST

static Suite *
session_suite(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("ordering");
    tcase_add_unchecked_fixture(tc, ts_load, ts_unload);
    tcase_add_checked_fixture(tc, ts_setup, ts_teardown);
    tcase_add_test(tc, test_replies_leave_in_request_order);
    tcase_add_test(tc, test_middle_completion_waits_for_head_only);
    tcase_add_test(tc, test_head_reply_streams);
    tcase_add_test(tc, test_buffer_reply_holds_the_head);
    tcase_add_test(tc, test_reply_head_is_kept);
    tcase_add_test(tc, test_protocol_error_waits_its_turn);
    suite_add_tcase(s, tc);

    tc = tcase_create("output_limit");
    tcase_add_unchecked_fixture(tc, ts_load, ts_unload);
    tcase_add_checked_fixture(tc, ts_setup, ts_teardown);
    tcase_add_test(tc, test_output_limit_counts_buffered_replies);
    tcase_add_test(tc, test_output_limit_counts_unsent_output);
    tcase_add_test(tc, test_output_limit_spares_what_was_written);
    tcase_add_test(tc, test_output_limit_zero_is_unlimited);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(session_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

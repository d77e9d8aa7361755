/*
 * test_session.c - the session engine's ordering contract (rd_session.h):
 * replies leave in request order however the requests complete, the head
 * request's reply streams while later ones are buffered, and everything
 * held for the client counts against limits.client_output_limit.
 * Pushes (rd_session_push) go out between complete replies, in their
 * order, and a subscribed session is held to limits.pubsub_output_limit.
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

/* --- pushes (rd_session_push) ------------------------------------------- */

/* Whole frames, as a subscriber's messages are. */
#define P1 "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nm1\r\n"
#define P2 "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nm2\r\n"
#define P3 "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nm3\r\n"

static void
push(const char *p)
{
    rd_session_push(ts.s, p, strlen(p));
}

START_TEST(test_push_when_idle_goes_at_once)
{
    push(P1);
    ts_expect(P1);
    ck_assert_uint_eq(ts.nleft, 0);
    ck_assert_uint_eq(rd_buf_used(&ts.s->push), 0);
}
END_TEST

START_TEST(test_push_before_a_reply_not_started)
{
    /* A request waits, none of its reply written: nothing is inside a
     * reply, so the push goes at once, before that reply. */
    ts_command("GET a");
    push(P1);
    ts_expect(P1);
    ts_answer(0, A);
    ts_expect(A);
    expect_left("a", NULL, NULL);
}
END_TEST

START_TEST(test_push_waits_for_the_streaming_reply)
{
    ts_command("GET a");
    ts_command("GET b");
    rd_request_t *r0 = ts.req[0];

    rd_request_reply_append(r0, "$10\r\n01234", 10);
    ts_expect("$10\r\n01234");
    ck_assert(r0->streaming);

    /* Not inside the reply: it waits for the reply's last byte. */
    push(P1);
    ts_expect("");
    ck_assert_uint_eq(rd_buf_used(&ts.s->push), strlen(P1));

    /* The second reply completes behind the streaming head, and another
     * push comes: all wait, the new push after the reply complete when
     * it came. */
    ts_answer(1, B);
    push(P2);
    ts_expect("");

    /* The head's last bytes still stream; once it is done, the push that
     * waited for it follows, then the reply held behind the head and
     * the push that came after it. */
    rd_request_reply_append(r0, "56789\r\n", 7);
    ts_expect("56789\r\n");
    rd_request_done(r0);
    ts_expect(P1 B P2);
    expect_left("a", "b", NULL);
    ck_assert_uint_eq(rd_buf_used(&ts.s->push), 0);
    ck_assert_uint_eq(ts.s->inflight, 0);

    /* Nothing streams any more: the next push goes at once. */
    push(P3);
    ts_expect(P3);
}
END_TEST

START_TEST(test_push_waits_for_the_next_streaming_reply)
{
    ts_command("GET a");
    ts_command("GET b");
    rd_request_t *r0 = ts.req[0], *r1 = ts.req[1];

    rd_request_reply_append(r0, "$2\r\n0", 5);
    rd_request_reply_append(r1, "$3\r\nxy", 6);
    ts_expect("$2\r\n0");
    push(P1);
    ts_expect("");

    /* The head ends: the push goes between the two replies, and the
     * second one, now the head, streams ... */
    rd_request_reply_append(r0, "1\r\n", 3);
    rd_request_done(r0);
    ts_expect("1\r\n" P1 "$3\r\nxy");
    ck_assert(r1->streaming);

    /* ... so a push waits for its end in turn. */
    push(P2);
    ts_expect("");
    rd_request_reply_append(r1, "z\r\n", 3);
    ts_expect("z\r\n");
    rd_request_done(r1);
    ts_expect(P2);
    expect_left("a", "b", NULL);
}
END_TEST

START_TEST(test_push_follows_a_complete_reply_held_behind)
{
    /* The second request's reply (a cluster's SUBSCRIBE confirmation) is
     * complete while the first still waits for its node: a push that
     * comes now follows the second reply, never precedes it. */
    ts_command("GET a");
    ts_command("GET b");
    ts_command("GET c");
    ts_answer(1, B);
    ts_expect("");
    push(P1);
    push(P2);
    ts_expect("");
    ts_answer(0, A);
    ts_expect(A B P1 P2);
    /* The third has no reply yet: a push goes at once. */
    push(P3);
    ts_expect(P3);
    ts_answer(2, C);
    ts_expect(C);
    expect_left("a", "b", "c");
}
END_TEST

START_TEST(test_pushes_keep_their_order)
{
    push(P1);
    push(P2);
    push(P3);
    ts_expect(P1 P2 P3);

    /* Some wait for a streaming reply, the last comes after it ended:
     * still in the order they were pushed. */
    ts_command("GET a");
    rd_request_reply_append(ts.req[0], "$1\r\n", 4);
    ts_expect("$1\r\n");
    push(P1);
    push(P2);
    ts_expect("");
    rd_request_reply_append(ts.req[0], "A\r\n", 3);
    rd_request_done(ts.req[0]);
    push(P3);
    ts_expect("A\r\n" P1 P2 P3);
}
END_TEST

/* --- limits.pubsub_output_limit ----------------------------------------- */

static int64_t ps_hard, ps_soft, ps_soft_seconds;   /* as configured */

static void
ps_load(void)
{
    ts_load();
    rd_core_conf_t *ccf = rd_core_conf(ts_cycle);
    ps_hard = ccf->pubsub_hard_limit;
    ps_soft = ccf->pubsub_soft_limit;
    ps_soft_seconds = ccf->pubsub_soft_seconds;
}

static void
ps_setup(void)
{
    ts_setup();
    rd_core_conf_t *ccf = rd_core_conf(ts.cycle);
    ccf->pubsub_hard_limit = ps_hard;
    ccf->pubsub_soft_limit = ps_soft;
    ccf->pubsub_soft_seconds = ps_soft_seconds;
}

static void
pubsub_limit(int64_t hard, int64_t soft, int64_t soft_seconds)
{
    rd_core_conf_t *ccf = rd_core_conf(ts.cycle);
    ccf->pubsub_hard_limit = hard;
    ccf->pubsub_soft_limit = soft;
    ccf->pubsub_soft_seconds = soft_seconds;
}

static void
push_n(size_t n)
{
    static char big[1 << 16];
    memset(big, 'm', sizeof(big));
    ck_assert_uint_le(n, sizeof(big));
    rd_session_push(ts.s, big, n);
}

START_TEST(test_pubsub_defaults_are_redis_s)
{
    /* client-output-buffer-limit pubsub 32mb 8mb 60 */
    ck_assert_int_eq(ps_hard, 32LL * 1024 * 1024);
    ck_assert_int_eq(ps_soft, 8LL * 1024 * 1024);
    ck_assert_int_eq(ps_soft_seconds, 60);
}
END_TEST

START_TEST(test_unsubscribed_pushes_count_against_client_limit)
{
    output_limit(64);
    pubsub_limit(4096, 0, 0);
    push_n(64);
    ck_assert(!ts_closed());
    push_n(1);
    ck_assert(ts_closed());
    ts_pump();
    ck_assert_str_eq(ts.close_reason, "client output limit exceeded");
}
END_TEST

START_TEST(test_pubsub_hard_limit)
{
    output_limit(64);
    pubsub_limit(4096, 0, 0);
    rd_session_set_subscribed(ts.s, 1);

    /* Unsent, all of it counts; client_output_limit (64) no longer
     * applies, exactly the hard limit is allowed ... */
    for (int i = 0; i < 4; i++) {
        push_n(1000);
    }
    push_n(96);
    ck_assert(!ts_closed());

    /* ... and one byte more closes the session. */
    push_n(1);
    ck_assert(ts_closed());
    ts_pump();
    ck_assert_ptr_null(ts.s);
    ck_assert_str_eq(ts.close_reason, "pubsub output limit exceeded");
}
END_TEST

START_TEST(test_pubsub_hard_limit_counts_waiting_pushes_and_replies)
{
    output_limit(64);
    pubsub_limit(1000, 0, 0);
    rd_session_set_subscribed(ts.s, 1);

    /* The head streams (its bytes written), the second reply is held
     * (300 bytes), the pushes wait for the head (700 bytes): the limit. */
    ts_command("PING a");
    ts_command("PING b");
    rd_request_reply_append(ts.req[0], "$1\r\n", 4);
    ts_expect("$1\r\n");
    char held[300];
    memset(held, 'r', sizeof(held));
    rd_request_reply_append(ts.req[1], held, sizeof(held));
    push_n(700);
    ck_assert(!ts_closed());
    ck_assert_uint_eq(rd_buf_used(&ts.s->push), 700);
    push_n(1);
    ck_assert(ts_closed());
}
END_TEST

START_TEST(test_pubsub_hard_limit_slow_reader)
{
    char buf[256];

    /* A subscriber that never reads: the socket fills, then redoubt's
     * buffer, and the session is closed at the limit, never grown. */
    output_limit(1024);
    pubsub_limit(64 * 1024, 0, 0);
    rd_session_set_subscribed(ts.s, 1);
    size_t i;
    for (i = 0; i < 100000 && !ts_closed(); i++) {
        push_n(1024);
        if (!ts_closed()) {
            ck_assert_uint_le(rd_buf_used(&ts.s->out), 64 * 1024);
        }
        ts_pump();
    }
    ck_assert(ts_closed());
    /* Far more than client_output_limit went through before. */
    ck_assert_uint_gt(i, 64);
    ts_pump();
    ck_assert_str_eq(ts.close_reason, "pubsub output limit exceeded");
    (void)buf;
}
END_TEST

START_TEST(test_pubsub_reader_keeps_up)
{
    char buf[8192];

    /* The same flow, read as it comes: never closed. */
    pubsub_limit(4096, 2048, 1);
    rd_session_set_subscribed(ts.s, 1);
    for (int i = 0; i < 2000; i++) {
        push_n(1000);
        ck_assert_int_eq(ts_recv(buf, sizeof(buf)), 1000);
    }
    ck_assert(!ts_closed());
}
END_TEST

START_TEST(test_pubsub_soft_limit_after_soft_seconds)
{
    /* The clock is the loop's (loop.now, read when output is added):
     * the test sets it and pushes without running the loop. */
    pubsub_limit(0, 1000, 5);
    rd_session_set_subscribed(ts.s, 1);
    rd_msec_t t0 = ts.w.loop.now + 1000;

    ts.w.loop.now = t0;
    push_n(1000);
    ck_assert_uint_eq(ts.s->soft_since, 0);
    push_n(1);                           /* above soft from t0 */
    ck_assert(!ts_closed());
    ck_assert_uint_eq(ts.s->soft_since, t0);

    ts.w.loop.now = t0 + 4999;
    push_n(1);
    ck_assert(!ts_closed());
    ts.w.loop.now = t0 + 5000;
    push_n(1);
    ck_assert(ts_closed());
    ts_pump();
    ck_assert_str_eq(ts.close_reason, "pubsub output limit exceeded");
}
END_TEST

START_TEST(test_pubsub_soft_limit_restarts_below_it)
{
    char buf[8192];

    pubsub_limit(0, 1000, 5);
    rd_session_set_subscribed(ts.s, 1);
    rd_msec_t t0 = ts.w.loop.now + 1000;

    ts.w.loop.now = t0;
    push_n(1001);
    ck_assert_uint_eq(ts.s->soft_since, t0);

    /* The client reads it all; the next output finds it below soft. */
    ck_assert_int_eq(ts_recv(buf, sizeof(buf)), 1001);
    ts.w.loop.now = t0 + 4000;
    push_n(10);
    ck_assert_uint_eq(ts.s->soft_since, 0);

    /* Above again from t0 + 4500: the five seconds count from there. */
    ts.w.loop.now = t0 + 4500;
    push_n(1000);
    ck_assert_uint_eq(ts.s->soft_since, t0 + 4500);
    ts.w.loop.now = t0 + 9000;
    push_n(1);
    ck_assert(!ts_closed());
    ts.w.loop.now = t0 + 9500;
    push_n(1);
    ck_assert(ts_closed());
}
END_TEST

START_TEST(test_pubsub_unsubscribed_again)
{
    /* Out of subscribed mode, client_output_limit applies again (and
     * the soft clock is forgotten). */
    output_limit(64);
    pubsub_limit(4096, 100, 60);
    rd_session_set_subscribed(ts.s, 1);
    push_n(200);
    ck_assert(!ts_closed());
    ck_assert_uint_ne(ts.s->soft_since, 0);
    rd_session_set_subscribed(ts.s, 0);
    ck_assert_uint_eq(ts.s->soft_since, 0);
    push_n(1);
    ck_assert(ts_closed());
    ts_pump();
    ck_assert_str_eq(ts.close_reason, "client output limit exceeded");
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

    tc = tcase_create("push");
    tcase_add_unchecked_fixture(tc, ts_load, ts_unload);
    tcase_add_checked_fixture(tc, ts_setup, ts_teardown);
    tcase_add_test(tc, test_push_when_idle_goes_at_once);
    tcase_add_test(tc, test_push_before_a_reply_not_started);
    tcase_add_test(tc, test_push_waits_for_the_streaming_reply);
    tcase_add_test(tc, test_push_waits_for_the_next_streaming_reply);
    tcase_add_test(tc, test_push_follows_a_complete_reply_held_behind);
    tcase_add_test(tc, test_pushes_keep_their_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("pubsub_output_limit");
    tcase_add_unchecked_fixture(tc, ps_load, ts_unload);
    tcase_add_checked_fixture(tc, ps_setup, ts_teardown);
    tcase_add_test(tc, test_pubsub_defaults_are_redis_s);
    tcase_add_test(tc, test_unsubscribed_pushes_count_against_client_limit);
    tcase_add_test(tc, test_pubsub_hard_limit);
    tcase_add_test(tc, test_pubsub_hard_limit_counts_waiting_pushes_and_replies);
    tcase_add_test(tc, test_pubsub_hard_limit_slow_reader);
    tcase_add_test(tc, test_pubsub_reader_keeps_up);
    tcase_add_test(tc, test_pubsub_soft_limit_after_soft_seconds);
    tcase_add_test(tc, test_pubsub_soft_limit_restarts_below_it);
    tcase_add_test(tc, test_pubsub_unsubscribed_again);
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

/*
 * test_pubsub.c - the frames a subscribed connection receives, read as
 * rd_pubsub_frame() reads them (rd_pubsub.h). The frames are those
 * redis-server 7.0 sends (t_pubsub.sh and t_cluster_pubsub.sh compare
 * the same ones end to end).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rd_pubsub.h"

static rd_pubsub_frame_t
frame(const char *p)
{
    rd_pubsub_frame_t f;
    rd_pubsub_frame(p, strlen(p), &f);
    return f;
}

static void
sub_is(const rd_pubsub_frame_t *f, const char *want)
{
    ck_assert_ptr_nonnull(f->sub.data);
    ck_assert_uint_eq(f->sub.len, strlen(want));
    ck_assert(memcmp(f->sub.data, want, f->sub.len) == 0);
}

START_TEST(test_messages)
{
    rd_pubsub_frame_t f = frame("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    ck_assert_int_eq(f.what, RD_PSF_MESSAGE);
    ck_assert_int_eq(f.kind, RD_SUB_CHANNEL);
    sub_is(&f, "ch");

    /* A pmessage names its pattern, then the channel. */
    f = frame("*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$0\r\n\r\n");
    ck_assert_int_eq(f.what, RD_PSF_MESSAGE);
    ck_assert_int_eq(f.kind, RD_SUB_PATTERN);
    sub_is(&f, "c*");

    f = frame("*3\r\n$8\r\nsmessage\r\n$3\r\n{a}\r\n$1\r\nx\r\n");
    ck_assert_int_eq(f.what, RD_PSF_MESSAGE);
    ck_assert_int_eq(f.kind, RD_SUB_SHARD);
    sub_is(&f, "{a}");

    /* RESP3 pushes too; a channel named "message" is just a channel. */
    f = frame(">3\r\n$7\r\nMESSAGE\r\n$7\r\nmessage\r\n$1\r\nx\r\n");
    ck_assert_int_eq(f.what, RD_PSF_MESSAGE);
    ck_assert_int_eq(f.type, '>');
    sub_is(&f, "message");

    /* A payload with CR LF inside is read by its length. */
    f = frame("*3\r\n$7\r\nmessage\r\n$4\r\na\r\nb\r\n$3\r\n\r\n\r\n");
    ck_assert_int_eq(f.what, RD_PSF_MESSAGE);
    sub_is(&f, "a\r\nb");
}
END_TEST

START_TEST(test_confirmations)
{
    rd_pubsub_frame_t f = frame("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    ck_assert_int_eq(f.what, RD_PSF_CONFIRM);
    ck_assert_str_eq(rd_pubsub_cmds[f.cmd].name, "subscribe");
    ck_assert_int_eq(rd_pubsub_cmds[f.cmd].add, 1);
    ck_assert_int_eq(f.kind, RD_SUB_CHANNEL);
    sub_is(&f, "a");
    ck_assert_int_eq(f.count, 1);

    /* UNSUBSCRIBE of nothing: a nil channel. */
    f = frame("*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n");
    ck_assert_int_eq(f.what, RD_PSF_CONFIRM);
    ck_assert_int_eq(f.kind, RD_SUB_PATTERN);
    ck_assert_int_eq(rd_pubsub_cmds[f.cmd].add, 0);
    ck_assert_ptr_null(f.sub.data);
    ck_assert_int_eq(f.count, 0);

    /* A server's own sunsubscribe (a slot left the node). */
    f = frame("*3\r\n$12\r\nsunsubscribe\r\n$2\r\ns1\r\n:2\r\n");
    ck_assert_int_eq(f.what, RD_PSF_CONFIRM);
    ck_assert_int_eq(f.kind, RD_SUB_SHARD);
    ck_assert_int_eq(f.count, 2);
}
END_TEST

START_TEST(test_other_frames)
{
    /* PING in subscribed mode, errors, a truncated or malformed frame. */
    const char *other[] = {
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n",
        "-ERR Can't execute 'get'\r\n",
        "+RESET\r\n",
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n",        /* no count */
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n$1\r\n1\r\n",
        "*3\r\n$7\r\nmessage\r\n$9\r\nch\r\n",          /* short bulk */
        "*4\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n$1\r\ny\r\n",
        "*3\r\n$x\r\nmessage\r\n",
        "*3\r\n:1\r\n:2\r\n:3\r\n",
        "",
        /* Found by fuzz_pubsub: a nil is $-1 only, lines end in CR LF. */
        "*3\r\n$12\r\npunsubscribe\r\n$-2\r\n:0\r\n",
        "*3\r\n$7\r\nmessage\r\n$2\r\x02ch\r\r7",
        "*3\r\n$7\r\nmessage\r\n$2\r\nchXY$1\r\nx\r\n",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        rd_pubsub_frame_t f = frame(other[i]);
        ck_assert_msg(f.what == RD_PSF_OTHER, "frame %zu", i);
    }
}
END_TEST

START_TEST(test_commands_and_notifications)
{
    ck_assert_int_eq(rd_pubsub_cmd((rd_str_t){ "SSUBSCRIBE", 10 }), 2);
    ck_assert_int_eq(rd_pubsub_cmd((rd_str_t){ "punsubscribe", 12 }), 4);
    ck_assert_int_eq(rd_pubsub_cmd((rd_str_t){ "publish", 7 }), -1);
    ck_assert(rd_pubsub_is_notification("__keyspace@0__:k", 16));
    ck_assert(rd_pubsub_is_notification("__keyevent@*", 12));
    ck_assert(!rd_pubsub_is_notification("__keyspace", 10));
    ck_assert(!rd_pubsub_is_notification("*", 1));
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("pubsub");
    TCase *tc = tcase_create("pubsub");
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_confirmations);
    tcase_add_test(tc, test_other_frames);
    tcase_add_test(tc, test_commands_and_notifications);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

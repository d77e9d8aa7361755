/*
 * test_audit_write.c - the audit module's line writer (rd_audit_write.c):
 * lines wait in the worker's buffer until it is full or the flush timer
 * fires; a write cut short leaves only whole lines in the file; with
 * audit.on_failure = block the lines are kept (bounded, oldest dropped)
 * and written once the disk works again; with continue they are dropped
 * and counted; SIGUSR1's reopen moves to a new file.
 *
 * The disk is made to fail with RLIMIT_FSIZE (the worker ignores SIGXFSZ,
 * so writes past the limit are cut short, then fail with EFBIG), or by
 * removing the log's directory. No sockets, no event loop: the flush
 * timer is fired by hand. No assertion runs while the limit is set: Check
 * writes its own messages to a file too (with CK_FORK=no, in this
 * process).
 */
#include "config.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rd_audit_int.h"
#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_worker.h"

#define LINE_LEN   40          /* every test line, with its "}\n" */
#define INTERVAL   50          /* audit.flush_interval, ms */
#define BUFFER     (3 * LINE_LEN)   /* audit.buffer: three lines */

static struct {
    char          path[128];
    rd_cycle_t   *cycle;
    rd_worker_t   w;
    struct rlimit fsize;       /* as it was */
} aw;

/* The test case's directory, made and removed by Check's parent process
 * (so that a failed test leaves nothing behind); each test starts with
 * an empty "log" in it. */
static char aw_dir[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

static void
rm_tree(const char *path)
{
    if (access(path, F_OK) == 0) {
        ck_assert_int_eq(nftw(path, rm_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
    }
}

static void
aw_mkdir(void)
{
    snprintf(aw_dir, sizeof(aw_dir), "/tmp/rd_test_audit.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(aw_dir));
}

static void
aw_rmdir(void)
{
    rm_tree(aw_dir);
}

/* Test line i: LINE_LEN bytes once committed. */
static void
line_text(char *buf, size_t cap, unsigned i)
{
    snprintf(buf, cap, "{\"n\":%04u,\"p\":\"xxxxxxxxxxxxxxxxxxxxxx\"", i);
}

static void
aw_start(const char *on_failure, int buffer)
{
    char conf[128], *err = NULL;

    memset(&aw, 0, sizeof(aw));
    snprintf(conf, sizeof(conf), "%s/log", aw_dir);
    rm_tree(conf);
    ck_assert_int_eq(mkdir(conf, 0700), 0);
    snprintf(aw.path, sizeof(aw.path), "%s/log/audit.log", aw_dir);
    snprintf(conf, sizeof(conf), "%s/redoubt.conf", aw_dir);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen = ( { address = \"127.0.0.1:1\"; } );\n"
            "audit = { path = \"%s\"; buffer = %d; "
            "flush_interval = \"%dms\"; on_failure = \"%s\"; };\n",
            aw.path, buffer, INTERVAL, on_failure);
    fclose(f);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &aw.fsize), 0);

    rd_modules_init();
    rd_log_level = -1;          /* the failures are expected: quiet */
    aw.cycle = rd_cycle_load(conf, &err);
    ck_assert_msg(aw.cycle != NULL, "configuration: %s", err);
    aw.w.cycle = aw.cycle;
    rd_timers_init(&aw.w.loop.timers);
    aw.w.loop.now = 10000;
    char buf[64];
    line_text(buf, sizeof(buf), 1);
    ck_assert_uint_eq(strlen(buf), LINE_LEN - 2);

    /* A fresh writer (the tests may run in one process: CK_FORK=no). */
    memset(&rd_aw, 0, sizeof(rd_aw));
    rd_aw.fd = -1;
}

static void
aw_start_block(void)
{
    aw_start("block", BUFFER);
}

static void
aw_setup_block(void)
{
    aw_start("block", BUFFER);
    ck_assert_int_eq(rd_audit_init_worker(&aw.w), RD_OK);
}

static void
aw_setup_continue(void)
{
    aw_start("continue", BUFFER);
    ck_assert_int_eq(rd_audit_init_worker(&aw.w), RD_OK);
}

static void
aw_teardown(void)
{
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &aw.fsize), 0);
    rd_audit_exit_worker(&aw.w);
    rd_timers_free(&aw.w.loop.timers);
    rd_cycle_destroy(aw.cycle);
}

/* Files may grow to at most n bytes. */
static void
file_limit(rlim_t n)
{
    struct rlimit rl = aw.fsize;
    rl.rlim_cur = n;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void
file_unlimited(void)
{
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &aw.fsize), 0);
}

static void
commit(unsigned i)
{
    char buf[64];
    line_text(buf, sizeof(buf), i);
    rd_buf_append_str(&rd_aw.buf, buf);
    rd_audit_commit(&rd_aw.buf);
}

static void
commit_range(unsigned from, unsigned to)
{
    for (unsigned i = from; i <= to; i++) {
        commit(i);
    }
}

/* Lines from..to as the file should hold them ("" when from > to). */
static char *
lines(unsigned from, unsigned to)
{
    static char text[64 * LINE_LEN + 1];
    char buf[64];
    size_t k = 0;

    for (unsigned i = from; i <= to; i++) {
        line_text(buf, sizeof(buf), i);
        k += (size_t)snprintf(text + k, sizeof(text) - k, "%s}\n", buf);
        ck_assert_uint_lt(k, sizeof(text));
    }
    text[k] = '\0';
    return text;
}

static void
expect_file(const char *path, const char *want)
{
    static char text[64 * LINE_LEN + 2];
    FILE *f = fopen(path, "r");
    size_t n = 0;
    if (f) {
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    ck_assert_str_eq(text, want);
}

static rd_audit_stats_t
stats(void)
{
    rd_audit_stats_t st;
    rd_audit_stats(&st);
    return st;
}

/* flush_interval has passed: the writer's timer fires. */
static void
tick(void)
{
    aw.w.loop.now += INTERVAL;
    rd_timers_expire(&aw.w.loop.timers, aw.w.loop.now);
}

START_TEST(test_lines_wait_for_a_full_buffer)
{
    /* The third line fills the buffer exactly. */
    commit_range(1, 2);
    expect_file(aw.path, "");
    ck_assert_uint_eq(stats().pending, 2);
    ck_assert(rd_timer_armed(&rd_aw.timer));
    commit(3);
    expect_file(aw.path, lines(1, 3));
    ck_assert_uint_eq(stats().pending, 0);
    ck_assert_uint_eq(stats().written, 3);
    ck_assert(stats().enabled);
}
END_TEST

START_TEST(test_timer_writes_what_waits)
{
    commit(1);
    ck_assert(rd_timer_armed(&rd_aw.timer));
    ck_assert_int_eq(rd_aw.timer.when, aw.w.loop.now + INTERVAL);
    expect_file(aw.path, "");
    tick();
    expect_file(aw.path, lines(1, 1));
    ck_assert_uint_eq(stats().written, 1);
    /* Nothing left: the timer stays off. */
    ck_assert(!rd_timer_armed(&rd_aw.timer));
}
END_TEST

START_TEST(test_exit_writes_what_waits)
{
    commit_range(1, 2);
    rd_audit_exit_worker(&aw.w);
    expect_file(aw.path, lines(1, 2));
    ck_assert_int_eq(rd_aw.fd, -1);
}
END_TEST

START_TEST(test_short_write_keeps_whole_lines)
{
    /* Room for two lines and half of a third. */
    file_limit(2 * LINE_LEN + LINE_LEN / 2);
    commit_range(1, 3);
    file_unlimited();
    expect_file(aw.path, lines(1, 2));      /* the half line taken back */
    rd_audit_stats_t st = stats();
    ck_assert_uint_eq(st.written, 2);
    ck_assert_uint_eq(st.pending, 1);
    ck_assert(st.failing);
    ck_assert_uint_eq(st.write_errors, 1);
    ck_assert(rd_audit_blocked());

    /* Blocked: lines are kept, nothing is tried until the timer. */
    commit_range(4, 5);
    ck_assert_uint_eq(stats().pending, 3);
    expect_file(aw.path, lines(1, 2));
    ck_assert(rd_timer_armed(&rd_aw.timer));
    file_limit(2 * LINE_LEN + LINE_LEN / 2);
    tick();                                 /* still failing */
    file_unlimited();
    ck_assert_uint_eq(stats().write_errors, 2);
    expect_file(aw.path, lines(1, 2));
    ck_assert(rd_audit_blocked());
    ck_assert(rd_timer_armed(&rd_aw.timer));

    /* The disk works again: every line, once, in order, whole. */
    tick();
    expect_file(aw.path, lines(1, 5));
    st = stats();
    ck_assert(!st.failing);
    ck_assert(!rd_audit_blocked());
    ck_assert_uint_eq(st.written, 5);
    ck_assert_uint_eq(st.pending, 0);
    ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

START_TEST(test_block_keeps_the_newest_lines)
{
    /* Nothing can be written; a blocked worker keeps 4 x audit.buffer
     * bytes (twelve lines) and drops the oldest beyond them. */
    file_limit(0);
    commit_range(1, 15);
    file_unlimited();
    rd_audit_stats_t st = stats();
    ck_assert(rd_audit_blocked());
    ck_assert_uint_eq(st.pending, 12);
    ck_assert_uint_eq(st.dropped, 3);
    ck_assert_uint_eq(st.write_errors, 1);
    ck_assert_uint_eq(rd_buf_used(&rd_aw.buf), 12 * LINE_LEN);

    tick();
    expect_file(aw.path, lines(4, 15));
    ck_assert_uint_eq(stats().written, 12);
    ck_assert(!rd_audit_blocked());
}
END_TEST

START_TEST(test_continue_drops_and_goes_on)
{
    file_limit(0);
    commit_range(1, 3);          /* the third one fills the buffer */
    file_unlimited();
    rd_audit_stats_t st = stats();
    ck_assert(st.failing);
    ck_assert(!rd_audit_blocked());
    ck_assert_uint_eq(st.dropped, 3);
    ck_assert_uint_eq(st.pending, 0);
    ck_assert_uint_eq(rd_buf_used(&rd_aw.buf), 0);

    commit_range(4, 6);
    expect_file(aw.path, lines(4, 6));
    st = stats();
    ck_assert(!st.failing);
    ck_assert_uint_eq(st.written, 3);
    ck_assert_uint_eq(st.dropped, 3);
}
END_TEST

START_TEST(test_open_failure_recovers)
{
    char dir[128];

    /* The directory is gone when the worker starts. */
    snprintf(dir, sizeof(dir), "%s/log", aw_dir);
    ck_assert_int_eq(rmdir(dir), 0);
    ck_assert_int_eq(rd_audit_init_worker(&aw.w), RD_OK);
    ck_assert(stats().failing);
    ck_assert(rd_audit_blocked());
    ck_assert(rd_timer_armed(&rd_aw.timer));
    tick();
    ck_assert(rd_audit_blocked());

    /* It is back: the next try opens the file, and that is enough. */
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    tick();
    ck_assert(!rd_audit_blocked());
    ck_assert(!rd_timer_armed(&rd_aw.timer));
    commit_range(1, 3);
    expect_file(aw.path, lines(1, 3));
}
END_TEST

START_TEST(test_reopen_moves_to_a_new_file)
{
    char old[160];

    snprintf(old, sizeof(old), "%s.1", aw.path);
    commit_range(1, 2);
    ck_assert_int_eq(rename(aw.path, old), 0);   /* logrotate */
    rd_audit_reopen(&aw.w);
    /* What was logged before the signal went to the old file. */
    expect_file(old, lines(1, 2));
    expect_file(aw.path, "");
    ck_assert_int_eq(access(aw.path, F_OK), 0);
    commit(3);
    rd_audit_exit_worker(&aw.w);
    expect_file(aw.path, lines(3, 3));
    expect_file(old, lines(1, 2));
}
END_TEST

static Suite *
audit_write_suite(void)
{
    Suite *s = suite_create("audit_write");
    TCase *tc = tcase_create("block");
    tcase_add_unchecked_fixture(tc, aw_mkdir, aw_rmdir);
    tcase_add_checked_fixture(tc, aw_setup_block, aw_teardown);
    tcase_add_test(tc, test_lines_wait_for_a_full_buffer);
    tcase_add_test(tc, test_timer_writes_what_waits);
    tcase_add_test(tc, test_exit_writes_what_waits);
    tcase_add_test(tc, test_short_write_keeps_whole_lines);
    tcase_add_test(tc, test_block_keeps_the_newest_lines);
    tcase_add_test(tc, test_reopen_moves_to_a_new_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("continue");
    tcase_add_unchecked_fixture(tc, aw_mkdir, aw_rmdir);
    tcase_add_checked_fixture(tc, aw_setup_continue, aw_teardown);
    tcase_add_test(tc, test_continue_drops_and_goes_on);
    suite_add_tcase(s, tc);

    /* The worker starts inside the test. */
    tc = tcase_create("open");
    tcase_add_unchecked_fixture(tc, aw_mkdir, aw_rmdir);
    tcase_add_checked_fixture(tc, aw_start_block, aw_teardown);
    tcase_add_test(tc, test_open_failure_recovers);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(audit_write_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

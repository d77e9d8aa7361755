/*
 * test_timer.c - the timer heap.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "rd_timer.h"

static int fired[64];
static int order[64];
static int nfired;

static void
on_fire(rd_timer_t *t)
{
    int id = (int)(intptr_t)t->data;
    fired[id]++;
    order[nfired++] = id;
}

static void
reset(void)
{
    for (int i = 0; i < 64; i++) {
        fired[i] = 0;
        order[i] = -1;
    }
    nfired = 0;
}

static void
init_timer(rd_timer_t *t, int id)
{
    t->index = 0;
    t->handler = on_fire;
    t->data = (void *)(intptr_t)id;
}

START_TEST(test_timers_fire_in_expiry_order)
{
    rd_timers_t ts;
    rd_timer_t t[10];
    rd_timers_init(&ts);
    reset();
    int delays[10] = { 50, 10, 90, 30, 70, 20, 80, 60, 40, 0 };
    for (int i = 0; i < 10; i++) {
        init_timer(&t[i], i);
        rd_timer_add(&ts, &t[i], 1000, delays[i]);
    }
    ck_assert_int_eq(rd_timers_next(&ts, 1000), 0);
    rd_timers_expire(&ts, 1100);
    ck_assert_int_eq(nfired, 10);
    int want[10] = { 9, 1, 5, 3, 8, 0, 7, 4, 6, 2 };
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(order[i], want[i]);
    }
    ck_assert_int_eq(rd_timers_next(&ts, 1100), -1);
    rd_timers_free(&ts);
}
END_TEST

START_TEST(test_timer_not_fired_before_due)
{
    rd_timers_t ts;
    rd_timer_t a;
    rd_timers_init(&ts);
    reset();
    init_timer(&a, 1);
    rd_timer_add(&ts, &a, 0, 100);
    ck_assert_int_eq(rd_timers_next(&ts, 40), 60);
    rd_timers_expire(&ts, 99);
    ck_assert_int_eq(fired[1], 0);
    ck_assert(rd_timer_armed(&a));
    rd_timers_expire(&ts, 100);
    ck_assert_int_eq(fired[1], 1);
    ck_assert(!rd_timer_armed(&a));
    rd_timers_free(&ts);
}
END_TEST

START_TEST(test_timer_delete_and_rearm)
{
    rd_timers_t ts;
    rd_timer_t t[32];
    rd_timers_init(&ts);
    reset();
    for (int i = 0; i < 32; i++) {
        init_timer(&t[i], i);
        rd_timer_add(&ts, &t[i], 0, (i * 37) % 101);
    }
    /* delete the even ones, re-arm some odd ones far away */
    for (int i = 0; i < 32; i += 2) {
        rd_timer_del(&ts, &t[i]);
        ck_assert(!rd_timer_armed(&t[i]));
    }
    rd_timer_del(&ts, &t[0]);             /* deleting twice is harmless */
    for (int i = 1; i < 32; i += 4) {
        rd_timer_add(&ts, &t[i], 0, 1000);
    }
    rd_timers_expire(&ts, 500);
    for (int i = 0; i < 32; i++) {
        int want = (i % 2 == 1 && (i - 1) % 4 != 0) ? 1 : 0;
        ck_assert_msg(fired[i] == want, "timer %d fired %d", i, fired[i]);
    }
    /* fired in non-decreasing expiry order */
    for (int i = 1; i < nfired; i++) {
        ck_assert_int_le((order[i - 1] * 37) % 101, (order[i] * 37) % 101);
    }
    rd_timers_expire(&ts, 1000);
    for (int i = 1; i < 32; i += 4) {
        ck_assert_int_eq(fired[i], 1);
    }
    rd_timers_free(&ts);
}
END_TEST

static rd_timers_t *rearm_ts;
static int rearm_count;

static void
on_fire_rearm(rd_timer_t *t)
{
    if (++rearm_count < 3) {
        rd_timer_add(rearm_ts, t, t->when, 10);
    }
}

START_TEST(test_handler_may_rearm_itself)
{
    rd_timers_t ts;
    rd_timer_t a = { .handler = on_fire_rearm };
    rd_timers_init(&ts);
    rearm_ts = &ts;
    rearm_count = 0;
    rd_timer_add(&ts, &a, 0, 10);
    rd_timers_expire(&ts, 15);           /* fires once, re-armed for 20 */
    ck_assert_int_eq(rearm_count, 1);
    rd_timers_expire(&ts, 100);          /* 20 and then 30 */
    ck_assert_int_eq(rearm_count, 3);
    ck_assert(!rd_timer_armed(&a));
    rd_timers_free(&ts);
}
END_TEST

START_TEST(test_many_random_timers_keep_heap_order)
{
    rd_timers_t ts;
    enum { N = 2000 };
    static rd_timer_t t[N];
    rd_timers_init(&ts);
    reset();
    srand(42);
    for (int i = 0; i < N; i++) {
        t[i].index = 0;
        t[i].handler = NULL;
        rd_timer_add(&ts, &t[i], 0, rand() % 100000);
    }
    for (int i = 0; i < N; i += 3) {
        rd_timer_del(&ts, &t[i]);
    }
    rd_msec_t last = -1;
    while (ts.n > 0) {
        rd_timer_t *min = ts.heap[1];
        ck_assert_int_ge(min->when, last);
        last = min->when;
        rd_timer_del(&ts, min);
    }
    rd_timers_free(&ts);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("timer");
    tcase_add_test(tc, test_timers_fire_in_expiry_order);
    tcase_add_test(tc, test_timer_not_fired_before_due);
    tcase_add_test(tc, test_timer_delete_and_rearm);
    tcase_add_test(tc, test_handler_may_rearm_itself);
    tcase_add_test(tc, test_many_random_timers_keep_heap_order);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test_buf.c - the byte buffer.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "rd_buf.h"

START_TEST(test_append_and_consume)
{
    rd_buf_t b = { 0 };
    rd_buf_append(&b, "hello ", 6);
    rd_buf_append_str(&b, "world");
    ck_assert_uint_eq(rd_buf_used(&b), 11);
    ck_assert(memcmp(rd_buf_rpos(&b), "hello world", 11) == 0);
    rd_buf_consume(&b, 6);
    ck_assert_uint_eq(rd_buf_used(&b), 5);
    ck_assert(memcmp(rd_buf_rpos(&b), "world", 5) == 0);
    rd_buf_consume(&b, 5);
    ck_assert_uint_eq(b.pos, 0);          /* empty: cursor reset */
    ck_assert_uint_eq(b.len, 0);
    rd_buf_free(&b);
}
END_TEST

START_TEST(test_grows_for_big_values_and_keeps_bytes)
{
    rd_buf_t b = { 0 };
    size_t n = 16u << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) {
        big[i] = (char)(i * 7);
    }
    rd_buf_append(&b, "x", 1);
    rd_buf_consume(&b, 1);
    rd_buf_append(&b, big, n / 2);
    rd_buf_append(&b, big + n / 2, n - n / 2);
    ck_assert_uint_eq(rd_buf_used(&b), n);
    ck_assert(memcmp(rd_buf_rpos(&b), big, n) == 0);
    free(big);
    rd_buf_free(&b);
}
END_TEST

START_TEST(test_reserve_compacts_instead_of_growing)
{
    rd_buf_t b = { 0 };
    rd_buf_reserve(&b, 4096);
    size_t cap = b.cap;
    char chunk[1000];
    memset(chunk, 'a', sizeof(chunk));
    /* a stream of writes and reads never needs more than one chunk */
    for (int i = 0; i < 1000; i++) {
        rd_buf_append(&b, chunk, sizeof(chunk));
        rd_buf_consume(&b, sizeof(chunk) - 1);
    }
    ck_assert_uint_eq(rd_buf_used(&b), 1000);
    ck_assert_uint_eq(b.cap, cap);
    rd_buf_free(&b);
}
END_TEST

START_TEST(test_appendf_long_and_short)
{
    rd_buf_t b = { 0 };
    rd_buf_appendf(&b, "$%d\r\n", 42);
    ck_assert_uint_eq(rd_buf_used(&b), 5);
    char big[1000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rd_buf_appendf(&b, "%s!", big);
    ck_assert_uint_eq(rd_buf_used(&b), 5 + 999 + 1);
    ck_assert_int_eq(rd_buf_rpos(&b)[5 + 999], '!');
    rd_buf_free(&b);
}
END_TEST

START_TEST(test_swap_and_shrink)
{
    rd_buf_t a = { 0 }, b = { 0 };
    rd_buf_append(&a, "aaa", 3);
    rd_buf_swap(&a, &b);
    ck_assert_uint_eq(rd_buf_used(&a), 0);
    ck_assert_uint_eq(rd_buf_used(&b), 3);
    rd_buf_shrink(&b, 0);                  /* not empty: kept */
    ck_assert_ptr_nonnull(b.data);
    rd_buf_consume(&b, 3);
    rd_buf_shrink(&b, 0);
    ck_assert_ptr_null(b.data);
    rd_buf_free(&a);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_append_and_consume);
    tcase_add_test(tc, test_grows_for_big_values_and_keeps_bytes);
    tcase_add_test(tc, test_reserve_compacts_instead_of_growing);
    tcase_add_test(tc, test_appendf_long_and_short);
    tcase_add_test(tc, test_swap_and_shrink);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test_identity.c - the identity a certificate carries (rd_identity.c).
 *
 * Certificates are real: made and signed here with OpenSSL, some through
 * DER and back, some built by hand to be hostile.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "rd_cert_identity.h"

static EVP_PKEY *test_key;

static void
setup(void)
{
    test_key = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(test_key);
}

static void
teardown(void)
{
    EVP_PKEY_free(test_key);
    test_key = NULL;
}

/* A self-signed certificate with the given subject, valid nb..na. */
static X509 *
make_cert(X509_NAME *subject, time_t nb, time_t na)
{
    X509 *x = X509_new();
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(X509_set_version(x, X509_VERSION_3), 1);
    ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 42), 1);
    ck_assert_int_eq(X509_set_subject_name(x, subject), 1);
    ck_assert_int_eq(X509_set_issuer_name(x, subject), 1);
    ck_assert_ptr_nonnull(ASN1_TIME_set(X509_getm_notBefore(x), nb));
    ck_assert_ptr_nonnull(ASN1_TIME_set(X509_getm_notAfter(x), na));
    ck_assert_int_eq(X509_set_pubkey(x, test_key), 1);
    ck_assert_int_gt(X509_sign(x, test_key, EVP_sha256()), 0);
    return x;
}

/* Through DER and back, as a peer's certificate arrives. */
static X509 *
der_round_trip(X509 *x)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    ck_assert_int_gt(len, 0);
    const unsigned char *p = der;
    X509 *y = d2i_X509(NULL, &p, len);
    ck_assert_ptr_nonnull(y);
    OPENSSL_free(der);
    X509_free(x);
    return y;
}

/* A certificate for id, via rd_identity_to_name and DER. */
static X509 *
cert_for(const rd_identity_t *id, time_t nb, time_t na)
{
    X509_NAME *name = X509_NAME_new();
    ck_assert_int_eq(rd_identity_to_name(id, name), 0);
    X509 *x = make_cert(name, nb, na);
    X509_NAME_free(name);
    return der_round_trip(x);
}

/* Add one attribute with raw bytes of the given ASN.1 string type. */
static void
add_raw(X509_NAME *name, const char *oid, int type, const void *bytes,
        int len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 0);
    ck_assert_ptr_nonnull(obj);
    ck_assert_int_eq(X509_NAME_add_entry_by_OBJ(name, obj, type, bytes, len,
                                                -1, 0), 1);
    ASN1_OBJECT_free(obj);
}

static void
add_utf8(X509_NAME *name, const char *oid, const char *v)
{
    add_raw(name, oid, V_ASN1_UTF8STRING, v, (int)strlen(v));
}

/* rd_identity_from_cert on a certificate with this name must fail with a
 * reason containing want. */
static void
expect_refused(X509_NAME *name, const char *want)
{
    /* OpenSSL re-encodes a name it copies and refuses some of these
     * values (invalid UTF-8) itself, as does its DER decoder; the reader
     * must not count on that. So the hostile entries go straight into the
     * subject of an already signed certificate. */
    time_t now = time(NULL);
    X509_NAME *empty = X509_NAME_new();
    X509 *x = make_cert(empty, now - 60, now + 3600);
    X509_NAME_free(empty);
    X509_NAME *subject = X509_get_subject_name(x);
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        ck_assert_int_eq(X509_NAME_add_entry(subject,
                         X509_NAME_get_entry(name, i), -1, 0), 1);
    }
    rd_identity_t id;
    char err[256] = "";
    ck_assert_int_eq(rd_identity_from_cert(x, &id, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' does not say '%s'",
                  err, want);
    ck_assert_ptr_null(id.user);
    ck_assert_ptr_null(id.roles);
    ck_assert_uint_eq(id.nroles, 0);
    X509_free(x);
}

START_TEST(test_round_trip)
{
    char *roles[] = { "access", "dev", "read-only" };
    char *users[] = { "alice", "*" };
    char *names[] = { "example-redis" };
    rd_identity_t in = {
        .user = "alice",
        .roles = roles, .nroles = 3,
        .db_users = users, .ndb_users = 2,
        .db_names = names, .ndb_names = 1,
        .route_db = "example-redis", .route_db_user = "alice",
    };
    time_t nb = 1700000000, na = nb + 8 * 3600;
    X509 *x = cert_for(&in, nb, na);

    rd_identity_t id;
    char err[256] = "";
    ck_assert_msg(rd_identity_from_cert(x, &id, err, sizeof(err)) == 0,
                  "from_cert: %s", err);
    ck_assert_str_eq(id.user, "alice");
    ck_assert_uint_eq(id.nroles, 3);
    ck_assert_str_eq(id.roles[0], "access");
    ck_assert_str_eq(id.roles[1], "dev");
    ck_assert_str_eq(id.roles[2], "read-only");
    ck_assert_uint_eq(id.ndb_users, 2);
    ck_assert_str_eq(id.db_users[0], "alice");
    ck_assert_str_eq(id.db_users[1], "*");
    ck_assert_uint_eq(id.ndb_names, 1);
    ck_assert_str_eq(id.db_names[0], "example-redis");
    ck_assert_str_eq(id.route_db, "example-redis");
    ck_assert_str_eq(id.route_db_user, "alice");
    ck_assert_int_eq((long)id.not_before, (long)nb);
    ck_assert_int_eq((long)id.not_after, (long)na);
    rd_identity_free(&id);
    ck_assert_ptr_null(id.user);
    rd_identity_free(&id);              /* twice is harmless */
    X509_free(x);
}
END_TEST

START_TEST(test_minimal_and_utf8)
{
    /* Only a user: no roles, traits or route. Non-ASCII UTF-8 is kept. */
    rd_identity_t in = { .user = "J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x94\x91" };
    X509 *x = cert_for(&in, 0, 2000000000);
    rd_identity_t id;
    char err[256] = "";
    ck_assert_msg(rd_identity_from_cert(x, &id, err, sizeof(err)) == 0,
                  "from_cert: %s", err);
    ck_assert_str_eq(id.user, in.user);
    ck_assert_uint_eq(id.nroles, 0);
    ck_assert_ptr_null(id.roles);
    ck_assert_uint_eq(id.ndb_users, 0);
    ck_assert_uint_eq(id.ndb_names, 0);
    ck_assert_ptr_null(id.route_db);
    ck_assert_ptr_null(id.route_db_user);
    rd_identity_free(&id);
    X509_free(x);
}
END_TEST

START_TEST(test_many_roles_keep_order)
{
    char *roles[256];
    char buf[256][16];
    for (int i = 0; i < 256; i++) {
        snprintf(buf[i], sizeof(buf[i]), "role-%03d", 255 - i);
        roles[i] = buf[i];
    }
    rd_identity_t in = { .user = "bob", .roles = roles, .nroles = 256 };
    X509 *x = cert_for(&in, 0, 2000000000);
    rd_identity_t id;
    char err[256] = "";
    ck_assert_msg(rd_identity_from_cert(x, &id, err, sizeof(err)) == 0,
                  "from_cert: %s", err);
    ck_assert_uint_eq(id.nroles, 256);
    for (int i = 0; i < 256; i++) {
        ck_assert_str_eq(id.roles[i], buf[i]);
    }
    rd_identity_free(&id);
    X509_free(x);
}
END_TEST

START_TEST(test_other_attributes_ignored)
{
    /* O, OU and an unknown OID around ours do not disturb the reading. */
    X509_NAME *name = X509_NAME_new();
    ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                     (const unsigned char *)"Example", -1, -1, 0), 1);
    rd_identity_t in = { .user = "carol", .roles = (char *[]){ "ops" },
                         .nroles = 1 };
    ck_assert_int_eq(rd_identity_to_name(&in, name), 0);
    ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC,
                     (const unsigned char *)"Team", -1, -1, 0), 1);
    add_utf8(name, RD_IDENTITY_ARC ".99", "future");
    X509 *x = der_round_trip(make_cert(name, 0, 2000000000));
    X509_NAME_free(name);
    rd_identity_t id;
    char err[256] = "";
    ck_assert_msg(rd_identity_from_cert(x, &id, err, sizeof(err)) == 0,
                  "from_cert: %s", err);
    ck_assert_str_eq(id.user, "carol");
    ck_assert_uint_eq(id.nroles, 1);
    ck_assert_str_eq(id.roles[0], "ops");
    rd_identity_free(&id);
    X509_free(x);
}
END_TEST

START_TEST(test_printable_cn_accepted)
{
    /* Other tools write the CN as a PrintableString. */
    X509_NAME *name = X509_NAME_new();
    add_raw(name, "2.5.4.3", V_ASN1_PRINTABLESTRING, "dave", 4);
    X509 *x = make_cert(name, 0, 2000000000);
    X509_NAME_free(name);
    rd_identity_t id;
    char err[256] = "";
    ck_assert_msg(rd_identity_from_cert(x, &id, err, sizeof(err)) == 0,
                  "from_cert: %s", err);
    ck_assert_str_eq(id.user, "dave");
    rd_identity_free(&id);
    X509_free(x);
}
END_TEST

START_TEST(test_missing_cn_fails)
{
    X509_NAME *name = X509_NAME_new();
    add_utf8(name, RD_OID_ROLE, "access");
    ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                     (const unsigned char *)"Example", -1, -1, 0), 1);
    expect_refused(name, "certificate has no user (CN)");
    X509_NAME_free(name);

    /* An empty subject too. */
    name = X509_NAME_new();
    expect_refused(name, "certificate has no user (CN)");
    X509_NAME_free(name);

    /* And no certificate at all. */
    rd_identity_t id;
    char err[64];
    ck_assert_int_eq(rd_identity_from_cert(NULL, &id, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_to_name_rejects_bad_values)
{
    char *empty[] = { "access", "" };
    char *bad_utf8[] = { "access", "caf\xc3" };         /* truncated */
    char *overlong[] = { "\xc0\xaf" };                  /* overlong '/' */
    char *surrogate[] = { "\xed\xa0\x80" };             /* U+D800 */
    char *too_big[] = { "\xf4\x90\x80\x80" };           /* > U+10FFFF */
    char *latin1[] = { "caf\xe9" };
    char *nulls[] = { NULL };
    struct {
        rd_identity_t id;
        const char   *what;
    } cases[] = {
        { { .user = NULL }, "no user" },
        { { .user = "" }, "empty user" },
        { { .user = "al\xffice" }, "user not UTF-8" },
        { { .user = "a", .roles = empty, .nroles = 2 }, "empty role" },
        { { .user = "a", .roles = bad_utf8, .nroles = 2 }, "truncated" },
        { { .user = "a", .db_users = overlong, .ndb_users = 1 }, "overlong" },
        { { .user = "a", .db_names = surrogate, .ndb_names = 1 },
          "surrogate" },
        { { .user = "a", .db_names = too_big, .ndb_names = 1 }, "> U+10FFFF" },
        { { .user = "a", .roles = latin1, .nroles = 1 }, "Latin-1" },
        { { .user = "a", .roles = nulls, .nroles = 1 }, "NULL role" },
        { { .user = "a", .roles = NULL, .nroles = 1 }, "NULL list" },
        { { .user = "a", .route_db = "" }, "empty route db" },
        { { .user = "a", .route_db_user = "\x80" }, "bad route user" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509_NAME *name = X509_NAME_new();
        ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                         (const unsigned char *)"Keep", -1, -1, 0), 1);
        ck_assert_msg(rd_identity_to_name(&cases[i].id, name) == -1,
                      "to_name accepted: %s", cases[i].what);
        /* The name is left as it was. */
        ck_assert_int_eq(X509_NAME_entry_count(name), 1);
        X509_NAME_free(name);
    }

    /* More than 256 values of a kind: the reader would refuse them. */
    char *many[257];
    for (int i = 0; i < 257; i++) {
        many[i] = "r";
    }
    rd_identity_t id = { .user = "a", .db_users = many, .ndb_users = 257 };
    X509_NAME *name = X509_NAME_new();
    ck_assert_int_eq(rd_identity_to_name(&id, name), -1);
    ck_assert_int_eq(X509_NAME_entry_count(name), 0);
    X509_NAME_free(name);
}
END_TEST

START_TEST(test_hostile_too_many_values)
{
    const char *oids[] = { RD_OID_ROLE, RD_OID_DB_USER, RD_OID_DB_NAME };
    for (size_t k = 0; k < 3; k++) {
        X509_NAME *name = X509_NAME_new();
        add_utf8(name, "2.5.4.3", "mallory");
        for (int i = 0; i < 257; i++) {
            add_utf8(name, oids[k], "x");
        }
        expect_refused(name, "more than 256");
        X509_NAME_free(name);
    }

    /* Thousands of attributes of any kind. */
    X509_NAME *name = X509_NAME_new();
    add_utf8(name, "2.5.4.3", "mallory");
    for (int i = 0; i < 2000; i++) {
        add_utf8(name, "2.5.4.11", "ou");
    }
    expect_refused(name, "attributes");
    X509_NAME_free(name);
}
END_TEST

START_TEST(test_hostile_values)
{
    static const struct {
        const char *oid;
        int         type;
        const char *bytes;
        int         len;
        const char *want;
    } cases[] = {
        { "2.5.4.3", V_ASN1_UTF8STRING, "ali\0ce", 6, "NUL byte" },
        { RD_OID_ROLE, V_ASN1_UTF8STRING, "acc\0ess", 7, "NUL byte" },
        { RD_OID_DB_USER, V_ASN1_UTF8STRING, "*\0", 2, "NUL byte" },
        { RD_OID_ROLE, V_ASN1_UTF8STRING, "", 0, "empty" },
        { "2.5.4.3", V_ASN1_UTF8STRING, "", 0, "empty" },
        { RD_OID_ROLE, V_ASN1_UTF8STRING, "\xff\xfe", 2, "UTF-8" },
        { RD_OID_DB_NAME, V_ASN1_UTF8STRING, "\xc0\x80", 2, "UTF-8" },
        { RD_OID_ROUTE_DB, V_ASN1_UTF8STRING, "\xed\xbf\xbf", 3, "UTF-8" },
        { "2.5.4.3", V_ASN1_PRINTABLESTRING, "b\xc3\xa9", 3, "ASCII" },
        { RD_OID_ROLE, V_ASN1_PRINTABLESTRING, "admin", 5, "UTF8String" },
        { RD_OID_ROLE, V_ASN1_IA5STRING, "admin", 5, "UTF8String" },
        { RD_OID_DB_USER, V_ASN1_T61STRING, "admin", 5, "UTF8String" },
        { "2.5.4.3", V_ASN1_BMPSTRING, "\0a\0b", 4, "UTF8String" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509_NAME *name = X509_NAME_new();
        if (strcmp(cases[i].oid, "2.5.4.3") != 0) {
            add_utf8(name, "2.5.4.3", "mallory");
        }
        add_utf8(name, RD_OID_ROLE, "fine");
        add_raw(name, cases[i].oid, cases[i].type, cases[i].bytes,
                cases[i].len);
        expect_refused(name, cases[i].want);
        X509_NAME_free(name);
    }

    /* A value longer than any sane name. */
    char big[2000];
    memset(big, 'a', sizeof(big));
    X509_NAME *name = X509_NAME_new();
    add_utf8(name, "2.5.4.3", "mallory");
    add_raw(name, RD_OID_DB_USER, V_ASN1_UTF8STRING, big, sizeof(big));
    expect_refused(name, "too long");
    X509_NAME_free(name);
}
END_TEST

START_TEST(test_hostile_duplicates)
{
    X509_NAME *name = X509_NAME_new();
    add_utf8(name, "2.5.4.3", "alice");
    add_utf8(name, "2.5.4.3", "admin");
    expect_refused(name, "more than one user (CN)");
    X509_NAME_free(name);

    name = X509_NAME_new();
    add_utf8(name, "2.5.4.3", "alice");
    add_utf8(name, RD_OID_ROUTE_DB, "a");
    add_utf8(name, RD_OID_ROUTE_DB, "b");
    expect_refused(name, "more than one route database");
    X509_NAME_free(name);

    name = X509_NAME_new();
    add_utf8(name, "2.5.4.3", "alice");
    add_utf8(name, RD_OID_ROUTE_DB_USER, "a");
    add_utf8(name, RD_OID_ROUTE_DB_USER, "b");
    expect_refused(name, "more than one route database user");
    X509_NAME_free(name);
}
END_TEST

START_TEST(test_format)
{
    char *roles[] = { "access", "dev" };
    char *users[] = { "alice" };
    char *names[] = { "*" };
    rd_identity_t id = {
        .user = "alice",
        .roles = roles, .nroles = 2,
        .db_users = users, .ndb_users = 1,
        .db_names = names, .ndb_names = 1,
        .route_db = "db", .route_db_user = "alice",
    };
    char buf[256];
    rd_identity_format(&id, buf, sizeof(buf));
    ck_assert_str_eq(buf, "alice roles=[access,dev] db_users=[alice] "
                          "db_names=[*] route=db/alice");

    id.route_db_user = NULL;
    rd_identity_format(&id, buf, sizeof(buf));
    ck_assert_str_eq(buf, "alice roles=[access,dev] db_users=[alice] "
                          "db_names=[*] route=db");

    rd_identity_t bare = { .user = "bob" };
    rd_identity_format(&bare, buf, sizeof(buf));
    ck_assert_str_eq(buf, "bob roles=[] db_users=[] db_names=[]");

    /* Control characters are escaped: a log line stays one line. */
    rd_identity_t ctl = { .user = "eve\n\x1b[2J" };
    rd_identity_format(&ctl, buf, sizeof(buf));
    ck_assert_str_eq(buf, "eve\\x0a\\x1b[2J roles=[] db_users=[] db_names=[]");

    /* Truncated, always terminated, never past the end. */
    char small[12];
    memset(small, 'X', sizeof(small));
    rd_identity_format(&id, small, 8);
    ck_assert_str_eq(small, "alice r");
    ck_assert_int_eq(small[8], 'X');
    rd_identity_format(&id, small, 1);
    ck_assert_str_eq(small, "");
    rd_identity_format(&id, NULL, 0);
    rd_identity_format(NULL, buf, sizeof(buf));
    ck_assert_str_eq(buf, "");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("identity");
    TCase *tc = tcase_create("identity");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_minimal_and_utf8);
    tcase_add_test(tc, test_many_roles_keep_order);
    tcase_add_test(tc, test_other_attributes_ignored);
    tcase_add_test(tc, test_printable_cn_accepted);
    tcase_add_test(tc, test_missing_cn_fails);
    tcase_add_test(tc, test_to_name_rejects_bad_values);
    tcase_add_test(tc, test_hostile_too_many_values);
    tcase_add_test(tc, test_hostile_values);
    tcase_add_test(tc, test_hostile_duplicates);
    tcase_add_test(tc, test_format);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

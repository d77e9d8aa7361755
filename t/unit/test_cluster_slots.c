/*
 * test_cluster_slots.c - unit tests of the hash slot function and the
 * CLUSTER SLOTS parser (modules/cluster/rd_cluster_slots.c).
 *
 * The expected slots were asked of a real redis-server 7.0.15 in cluster
 * mode with CLUSTER KEYSLOT. The replies named reply_* were captured byte
 * for byte from a real 3-master, 3-replica cluster on loopback (Redis
 * 7.0.15), in the endpoint settings that change their shape: the ip with
 * an empty metadata array, the ip with hostname metadata
 * (cluster-announce-hostname), the hostname as preferred endpoint, "?"
 * for a node without a hostname, and a null host for
 * cluster-preferred-endpoint-type unknown-endpoint. Nothing here needs a
 * server at test time.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_test_edge.h"
#include "rd_buf.h"
#include "rd_cluster_slots.h"

/* ------------------------------------------------------------------------
 * Hash slots
 * --------------------------------------------------------------------- */

static const struct {
    const char *key;
    size_t      len;
    unsigned    slot;
} slot_cases[] = {
    { "", 0, 0 },
    { "a", 1, 15495 },
    { "foo", 3, 12182 },
    { "bar", 3, 5061 },
    { "key", 3, 12539 },
    { "123456789", 9, 12739 },
    { "user:1000", 9, 1649 },
    { "{user1000}.following", 20, 3443 },
    { "{user1000}.followers", 20, 3443 },
    { "user1000", 8, 3443 },
    { "foo{}{bar}", 10, 8363 },
    { "foo{{bar}}zap", 13, 4015 },
    { "foo{bar}{zap}", 13, 5061 },
    { "bar", 3, 5061 },
    { "{}", 2, 15257 },
    { "{", 1, 4092 },
    { "}", 1, 12090 },
    { "}{", 2, 12793 },
    { "{a", 2, 10276 },
    { "a}", 2, 5921 },
    { "{a}", 3, 15495 },
    { "a{b}c", 5, 3300 },
    { "{{}}", 4, 4092 },
    { "{}}", 3, 14790 },
    { "{{}", 3, 4092 },
    { "x{}", 3, 2608 },
    { "{}x", 3, 10595 },
    { "x{y", 3, 2740 },
    { "x}y{z}", 6, 8157 },
    { "{\x00" "}", 3, 0 },
    { "\x00", 1, 0 },
    { "\x00\x01\x02", 3, 4979 },
    { "\xff\xfe" "{\x80" "}", 5, 4488 },
    { "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10, 2008 },
    { "a\x0d\x0a" "b", 4, 3608 },
    { "{a\x0d\x0a" "}b", 6, 15181 },
    { "hello world", 11, 15332 },
    { "somekey", 7, 11058 },
    { "mykey:42", 8, 15974 },
    { "{tag}:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 106, 8338 },
    { "tag", 3, 8338 },
    { "\xc3\xa9" "t\xc3\xa9", 5, 10087 },
    { "{\xc3\xa9" "}", 4, 10180 },
    { "foo{bar", 7, 15278 },
    { "foo}bar{", 8, 11073 },
    { "{}{b}", 5, 8193 },
    { "{b}{}", 5, 3300 },
};

START_TEST(test_key_slot_matches_redis)
{
    ck_assert_msg(rd_cluster_key_slot(slot_cases[_i].key, slot_cases[_i].len)
                  == slot_cases[_i].slot, "case %d: slot %u, want %u", _i,
                  rd_cluster_key_slot(slot_cases[_i].key, slot_cases[_i].len),
                  slot_cases[_i].slot);
}
END_TEST

START_TEST(test_key_slot_crc16)
{
    char long_key[1000];

    /* The CRC16/XMODEM check value: 0x31C3, whose low 14 bits are the
     * slot of "123456789". */
    ck_assert_uint_eq(rd_cluster_key_slot("123456789", 9), 0x31C3 & 16383);
    ck_assert_uint_eq(rd_cluster_key_slot(NULL, 0), 0);

    memset(long_key, 'k', sizeof(long_key));
    ck_assert_uint_eq(rd_cluster_key_slot(long_key, sizeof(long_key)), 15858);

    /* Only the tag counts: anything around it may change. */
    ck_assert_uint_eq(rd_cluster_key_slot("{user1000}.following", 20),
                      rd_cluster_key_slot("user1000", 8));
    ck_assert_uint_eq(rd_cluster_key_slot("x{user1000}", 11),
                      rd_cluster_key_slot("user1000", 8));

    /* The length is honoured: bytes after it are not part of the key. */
    ck_assert_uint_eq(rd_cluster_key_slot("{a}b", 2),
                      rd_cluster_key_slot("{a", 2));
    ck_assert_uint_eq(rd_cluster_key_slot("foo}", 3),
                      rd_cluster_key_slot("foo", 3));
}
END_TEST

/* ------------------------------------------------------------------------
 * CLUSTER SLOTS: captured replies
 * --------------------------------------------------------------------- */

static const char reply_plain[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:21300\r\n"
    "$40\r\nb54256b11e8fb8c23a6b4df5b240d910ea76f128\r\n*0\r\n*4\r\n"
    "$9\r\n127.0.0.1\r\n:21305\r\n$40\r\n"
    "38f89014c1c724b9b02eaa7e6dc6ea6693ab3a7f\r\n*2\r\n$8\r\n"
    "hostname\r\n$17\r\nnode21305.example\r\n*4\r\n:5461\r\n:10922\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:21301\r\n$40\r\n"
    "0ed5d86ec9d23ab79ca96d3c50903f924b6ed60d\r\n*0\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:21303\r\n$40\r\n"
    "1bb91e7cce03a01fa0ccb2b0c91848e065db68f5\r\n*0\r\n*4\r\n:10923\r\n"
    ":16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:21302\r\n$40\r\n"
    "b64f5782db197e89eec5a8f3632133d08185e873\r\n*0\r\n*4\r\n$9\r\n"
    "127.0.0.1\r\n:21304\r\n$40\r\n"
    "30358be83ca12a61d787f36acf16be2cd60733cb\r\n*0\r\n";

static const char reply_hostname_meta[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:21300\r\n"
    "$40\r\nb54256b11e8fb8c23a6b4df5b240d910ea76f128\r\n*2\r\n$8\r\n"
    "hostname\r\n$17\r\nnode21300.example\r\n*4\r\n$9\r\n127.0.0.1\r\n"
    ":21305\r\n$40\r\n38f89014c1c724b9b02eaa7e6dc6ea6693ab3a7f\r\n"
    "*2\r\n$8\r\nhostname\r\n$17\r\nnode21305.example\r\n*4\r\n"
    ":5461\r\n:10922\r\n*4\r\n$9\r\n127.0.0.1\r\n:21301\r\n$40\r\n"
    "0ed5d86ec9d23ab79ca96d3c50903f924b6ed60d\r\n*2\r\n$8\r\n"
    "hostname\r\n$17\r\nnode21301.example\r\n*4\r\n$9\r\n127.0.0.1\r\n"
    ":21303\r\n$40\r\n1bb91e7cce03a01fa0ccb2b0c91848e065db68f5\r\n"
    "*2\r\n$8\r\nhostname\r\n$17\r\nnode21303.example\r\n*4\r\n"
    ":10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:21302\r\n$40\r\n"
    "b64f5782db197e89eec5a8f3632133d08185e873\r\n*2\r\n$8\r\n"
    "hostname\r\n$17\r\nnode21302.example\r\n*4\r\n$9\r\n127.0.0.1\r\n"
    ":21304\r\n$40\r\n30358be83ca12a61d787f36acf16be2cd60733cb\r\n"
    "*2\r\n$8\r\nhostname\r\n$17\r\nnode21304.example\r\n";

static const char reply_hostname_pref[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$17\r\nnode21300.example\r\n"
    ":21300\r\n$40\r\nb54256b11e8fb8c23a6b4df5b240d910ea76f128\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n$17\r\n"
    "node21305.example\r\n:21305\r\n$40\r\n"
    "38f89014c1c724b9b02eaa7e6dc6ea6693ab3a7f\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$17\r\n"
    "node21301.example\r\n:21301\r\n$40\r\n"
    "0ed5d86ec9d23ab79ca96d3c50903f924b6ed60d\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n$17\r\nnode21303.example\r\n:21303\r\n"
    "$40\r\n1bb91e7cce03a01fa0ccb2b0c91848e065db68f5\r\n*2\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$17\r\n"
    "node21302.example\r\n:21302\r\n$40\r\n"
    "b64f5782db197e89eec5a8f3632133d08185e873\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n$17\r\nnode21304.example\r\n:21304\r\n"
    "$40\r\n30358be83ca12a61d787f36acf16be2cd60733cb\r\n*2\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n";

static const char reply_question[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$1\r\n?\r\n:21300\r\n$40\r\n"
    "b54256b11e8fb8c23a6b4df5b240d910ea76f128\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n$1\r\n?\r\n:21305\r\n$40\r\n"
    "38f89014c1c724b9b02eaa7e6dc6ea6693ab3a7f\r\n*2\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$1\r\n?\r\n"
    ":21301\r\n$40\r\n0ed5d86ec9d23ab79ca96d3c50903f924b6ed60d\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n$1\r\n?\r\n:21303\r\n"
    "$40\r\n1bb91e7cce03a01fa0ccb2b0c91848e065db68f5\r\n*2\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n*4\r\n:10923\r\n:16383\r\n*4\r\n$1\r\n"
    "?\r\n:21302\r\n$40\r\nb64f5782db197e89eec5a8f3632133d08185e873\r\n"
    "*2\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n*4\r\n$1\r\n?\r\n:21304\r\n"
    "$40\r\n30358be83ca12a61d787f36acf16be2cd60733cb\r\n*2\r\n$2\r\n"
    "ip\r\n$9\r\n127.0.0.1\r\n";

static const char reply_unknown_endpoint[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$-1\r\n:21300\r\n$40\r\n"
    "b54256b11e8fb8c23a6b4df5b240d910ea76f128\r\n*4\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$17\r\nnode21300.example\r\n"
    "*4\r\n$-1\r\n:21305\r\n$40\r\n"
    "38f89014c1c724b9b02eaa7e6dc6ea6693ab3a7f\r\n*4\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$17\r\nnode21305.example\r\n"
    "*4\r\n:5461\r\n:10922\r\n*4\r\n$-1\r\n:21301\r\n$40\r\n"
    "0ed5d86ec9d23ab79ca96d3c50903f924b6ed60d\r\n*4\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$17\r\nnode21301.example\r\n"
    "*4\r\n$-1\r\n:21303\r\n$40\r\n"
    "1bb91e7cce03a01fa0ccb2b0c91848e065db68f5\r\n*4\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$17\r\nnode21303.example\r\n"
    "*4\r\n:10923\r\n:16383\r\n*4\r\n$-1\r\n:21302\r\n$40\r\n"
    "b64f5782db197e89eec5a8f3632133d08185e873\r\n*4\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$17\r\nnode21302.example\r\n"
    "*4\r\n$-1\r\n:21304\r\n$40\r\n"
    "30358be83ca12a61d787f36acf16be2cd60733cb\r\n*4\r\n$2\r\nip\r\n"
    "$9\r\n127.0.0.1\r\n$8\r\nhostname\r\n$17\r\nnode21304.example\r\n";

/* edge_t, edge_make(), edge_free(): rd_test_edge.h */

/* Parses (from memory that ends at a guard page) and writes the ranges
 * as "start-end host:port;" or "E:<err>". */
static char *
parse_tx(const char *in, size_t n, const char *default_host)
{
    rd_cluster_range_t *r = (rd_cluster_range_t *)&r;   /* must be reset */
    const char         *err = NULL;
    rd_buf_t            tx = {0};
    edge_t              e;
    int                 rc;

    edge_make(&e, in, n);
    rc = rd_cluster_parse_slots(e.p, n, default_host, &r, &err);
    if (rc < 0) {
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_null(r);
        ck_assert_ptr_nonnull(err);
        rd_buf_appendf(&tx, "E:%s", err);
    } else {
        ck_assert(rc == 0 ? r == NULL : r != NULL);
        for (int i = 0; i < rc; i++) {
            ck_assert_uint_lt(strlen(r[i].host), RD_CLUSTER_HOST_MAX);
            rd_buf_appendf(&tx, "%u-%u %s:%u;", r[i].start, r[i].end,
                           r[i].host, r[i].port);
        }
    }
    free(r);
    edge_free(&e);
    rd_buf_append(&tx, "", 1);
    return tx.data;
}

#define PARSE(lit, dflt) parse_tx(lit, sizeof(lit) - 1, dflt)

/* As parse_tx, with each range's replicas: "start-end m:p r:p ...;". */
static char *
parse_replicas_tx(const char *in, size_t n)
{
    rd_cluster_range_t *r = NULL;
    const char         *err = NULL;
    rd_buf_t            tx = {0};
    edge_t              e;
    int                 rc;

    edge_make(&e, in, n);
    rc = rd_cluster_parse_slots(e.p, n, "seed", &r, &err);
    if (rc < 0) {
        rd_buf_appendf(&tx, "E:%s", err);
    }
    for (int i = 0; i < rc; i++) {
        rd_buf_appendf(&tx, "%u-%u %s:%u", r[i].start, r[i].end, r[i].host,
                       r[i].port);
        ck_assert_uint_le(r[i].nreplicas, RD_CLUSTER_REPLICAS_MAX);
        for (size_t k = 0; k < r[i].nreplicas; k++) {
            rd_buf_appendf(&tx, " %s:%u", r[i].replicas[k].host,
                           r[i].replicas[k].port);
        }
        rd_buf_append(&tx, ";", 1);
    }
    free(r);
    edge_free(&e);
    rd_buf_append(&tx, "", 1);
    return tx.data;
}

#define EXPECT_REPLICAS(lit, want) do {                                  \
        char *got_ = parse_replicas_tx(lit, sizeof(lit) - 1);          \
        ck_assert_str_eq(got_, want);                                  \
        free(got_);                                                    \
    } while (0)

static void
expect_parse(const char *in, size_t n, const char *default_host,
    const char *want)
{
    char *got = parse_tx(in, n, default_host);

    ck_assert_str_eq(got, want);
    free(got);
}

#define EXPECT(lit, want) expect_parse(lit, sizeof(lit) - 1, "seed", want)

static const char want_ip[] =
    "0-5460 127.0.0.1:21300;5461-10922 127.0.0.1:21301;"
    "10923-16383 127.0.0.1:21302;";

START_TEST(test_parse_real_replies)
{
    EXPECT(reply_plain, want_ip);
    EXPECT(reply_hostname_meta, want_ip);
    EXPECT(reply_hostname_pref,
           "0-5460 node21300.example:21300;"
           "5461-10922 node21301.example:21301;"
           "10923-16383 node21302.example:21302;");
    EXPECT(reply_question,
           "0-5460 seed:21300;5461-10922 seed:21301;"
           "10923-16383 seed:21302;");
    EXPECT(reply_unknown_endpoint,
           "0-5460 seed:21300;5461-10922 seed:21301;"
           "10923-16383 seed:21302;");

    /* A cluster-enabled node that has no slots yet. */
    EXPECT("*0\r\n", "");
}
END_TEST

/* Redis 3.x to 6 sent 3-element nodes, Redis 3.0 2-element ones; a range
 * without replicas has 3 elements. Extra fields of any type are skipped. */
START_TEST(test_parse_shapes)
{
    EXPECT("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$4\r\nhost\r\n:7000\r\n",
           "0-16383 host:7000;");
    EXPECT("*2\r\n*3\r\n:0\r\n:0\r\n*3\r\n$1\r\na\r\n:1\r\n$2\r\nid\r\n"
           "*4\r\n:1\r\n:16383\r\n*3\r\n$1\r\nb\r\n:65535\r\n$2\r\nid\r\n"
           "*3\r\n$1\r\nc\r\n:2\r\n$2\r\nid\r\n",
           "0-0 a:1;1-16383 b:65535;");
    /* Unknown trailing fields: a map with nested arrays, nulls, errors. */
    EXPECT("*1\r\n*5\r\n:5\r\n:9\r\n"
           "*6\r\n$3\r\n::1\r\n:6379\r\n$-1\r\n*2\r\n*1\r\n*0\r\n+x\r\n"
           "-ERR odd\r\n:3\r\n"
           "*-1\r\n+replica?\r\n",
           "5-9 ::1:6379;");
    /* Empty host, "?" and a null host get the default host. */
    EXPECT("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:7000\r\n",
           "0-1 seed:7000;");
    EXPECT("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\n?\r\n:7000\r\n",
           "0-1 seed:7000;");
    EXPECT("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$-1\r\n:7000\r\n",
           "0-1 seed:7000;");
    /* "??" or " ?" are hosts like any other. */
    EXPECT("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$2\r\n??\r\n:7000\r\n",
           "0-1 ?\?:7000;");
    /* Overlapping or repeated ranges are the caller's business. */
    EXPECT("*2\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\na\r\n:1\r\n"
           "*3\r\n:5\r\n:5\r\n*2\r\n$1\r\nb\r\n:2\r\n",
           "0-9 a:1;5-5 b:2;");
}
END_TEST

/* cluster.read_from: each range's replicas, the entries after its master;
 * a malformed one is skipped (the master and the map stand), "?" gets the
 * default host, at most RD_CLUSTER_REPLICAS_MAX are kept. */
START_TEST(test_parse_replicas)
{
    EXPECT_REPLICAS(reply_plain,
                    "0-5460 127.0.0.1:21300 127.0.0.1:21305;"
                    "5461-10922 127.0.0.1:21301 127.0.0.1:21303;"
                    "10923-16383 127.0.0.1:21302 127.0.0.1:21304;");
    EXPECT_REPLICAS("*1\r\n*5\r\n:0\r\n:9\r\n"
                    "*2\r\n$1\r\na\r\n:1\r\n"
                    "*2\r\n$1\r\nb\r\n:2\r\n"
                    "*2\r\n$1\r\n?\r\n:3\r\n",
                    "0-9 a:1 b:2 seed:3;");
    /* Port 0, a host that is a number, a node with one field: skipped. */
    EXPECT_REPLICAS("*1\r\n*6\r\n:0\r\n:9\r\n"
                    "*2\r\n$1\r\na\r\n:1\r\n"
                    "*2\r\n$1\r\nb\r\n:0\r\n"
                    "*2\r\n:5\r\n:2\r\n"
                    "*1\r\n$1\r\nc\r\n",
                    "0-9 a:1;");
    /* A range without replicas; a master still checked strictly. */
    EXPECT_REPLICAS("*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\na\r\n:1\r\n",
                    "0-9 a:1;");
    /* (a master with port 0 fails the map, replicas or not) */
    EXPECT_REPLICAS("*1\r\n*4\r\n:0\r\n:9\r\n"
                    "*2\r\n$1\r\na\r\n:0\r\n"
                    "*2\r\n$1\r\nb\r\n:2\r\n",
                    "E:port out of range");
}
END_TEST

START_TEST(test_parse_default_host)
{
    static const char empty[] =
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:7000\r\n";
    char  dflt[RD_CLUSTER_HOST_MAX + 1];
    char *got;

    got = parse_tx(empty, sizeof(empty) - 1, NULL);
    ck_assert_str_eq(got, "E:unknown host and no default host");
    free(got);

    memset(dflt, 'd', sizeof(dflt));
    dflt[RD_CLUSTER_HOST_MAX - 1] = '\0';
    got = parse_tx(empty, sizeof(empty) - 1, dflt);
    ck_assert_uint_eq(strlen(got), 4 + RD_CLUSTER_HOST_MAX - 1 + 6);
    free(got);

    dflt[RD_CLUSTER_HOST_MAX - 1] = 'd';
    dflt[RD_CLUSTER_HOST_MAX] = '\0';
    got = parse_tx(empty, sizeof(empty) - 1, dflt);
    ck_assert_str_eq(got, "E:host too long");
    free(got);

    /* A host that is given ignores the default, even NULL. */
    got = PARSE("*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:7000\r\n", NULL);
    ck_assert_str_eq(got, "0-1 h:7000;");
    free(got);
}
END_TEST

START_TEST(test_parse_host_length)
{
    rd_buf_t in = {0};
    char     host[RD_CLUSTER_HOST_MAX];
    char    *got;

    memset(host, 'h', sizeof(host));
    for (size_t n = RD_CLUSTER_HOST_MAX - 1; n <= RD_CLUSTER_HOST_MAX; n++) {
        rd_buf_reset(&in);
        rd_buf_appendf(&in, "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$%zu\r\n", n);
        rd_buf_append(&in, host, n);
        rd_buf_append_str(&in, "\r\n:7000\r\n");
        got = parse_tx(in.data, in.len, "seed");
        if (n == RD_CLUSTER_HOST_MAX - 1) {
            ck_assert_uint_eq(strlen(got), 4 + n + 6);
            ck_assert_int_eq(memcmp(got, "0-1 hhh", 7), 0);
        } else {
            ck_assert_str_eq(got, "E:host too long");
        }
        free(got);
    }
    rd_buf_free(&in);
}
END_TEST

START_TEST(test_parse_error_reply)
{
    EXPECT("-ERR This instance has cluster support disabled\r\n",
           "E:error reply");
    EXPECT("-NOAUTH Authentication required.\r\n", "E:error reply");
    EXPECT("-NOPERM this user has no permissions to run the 'cluster|slots'"
           " command\r\n", "E:error reply");
}
END_TEST

#define R1(node) "*1\r\n*3\r\n:0\r\n:1\r\n" node
#define NODE_OK  "*2\r\n$1\r\nh\r\n:7000\r\n"

START_TEST(test_parse_malformed)
{
    /* Not a CLUSTER SLOTS answer at all. */
    EXPECT("+OK\r\n", "E:reply is not an array");
    EXPECT(":1\r\n", "E:reply is not an array");
    EXPECT("$2\r\nab\r\n", "E:reply is not an array");
    EXPECT("*-1\r\n", "E:reply is not an array");
    EXPECT("", "E:malformed reply");
    EXPECT("!\r\n", "E:malformed reply");

    /* Ranges. */
    EXPECT("*1\r\n:1\r\n", "E:range is not an array");
    EXPECT("*1\r\n$-1\r\n", "E:range is not an array");
    EXPECT("*1\r\n*-1\r\n", "E:range has fewer than 3 elements");
    EXPECT("*1\r\n*0\r\n", "E:range has fewer than 3 elements");
    EXPECT("*1\r\n*2\r\n:0\r\n:1\r\n", "E:range has fewer than 3 elements");
    EXPECT("*1\r\n*3\r\n$1\r\n0\r\n:1\r\n" NODE_OK,
           "E:slot is not an integer");
    EXPECT("*1\r\n*3\r\n:0\r\n+1\r\n" NODE_OK, "E:slot is not an integer");
    EXPECT("*1\r\n*3\r\n:-1\r\n:1\r\n" NODE_OK, "E:slot out of range");
    EXPECT("*1\r\n*3\r\n:0\r\n:16384\r\n" NODE_OK, "E:slot out of range");
    EXPECT("*1\r\n*3\r\n:16384\r\n:16384\r\n" NODE_OK,
           "E:slot out of range");
    EXPECT("*1\r\n*3\r\n:0\r\n:-9223372036854775808\r\n" NODE_OK,
           "E:slot out of range");
    EXPECT("*1\r\n*3\r\n:0\r\n:9223372036854775807\r\n" NODE_OK,
           "E:slot out of range");
    EXPECT("*1\r\n*3\r\n:2\r\n:1\r\n" NODE_OK, "E:range start after its end");
    EXPECT("*1\r\n*3\r\n:16383\r\n:0\r\n" NODE_OK,
           "E:range start after its end");

    /* The master. */
    EXPECT(R1("$1\r\nh\r\n"), "E:master is not an array");
    EXPECT(R1("*-1\r\n"), "E:master has fewer than 2 elements");
    EXPECT(R1("*1\r\n$1\r\nh\r\n"), "E:master has fewer than 2 elements");
    EXPECT(R1("*2\r\n+h\r\n:7000\r\n"), "E:host is not a bulk string");
    EXPECT(R1("*2\r\n:1\r\n:7000\r\n"), "E:host is not a bulk string");
    EXPECT(R1("*2\r\n*0\r\n:7000\r\n"), "E:host is not a bulk string");
    EXPECT(R1("*2\r\n$3\r\na\0b\r\n:7000\r\n"), "E:NUL byte in host");
    EXPECT(R1("*2\r\n$1\r\nh\r\n$4\r\n7000\r\n"), "E:port is not an integer");
    EXPECT(R1("*2\r\n$1\r\nh\r\n$-1\r\n"), "E:port is not an integer");
    EXPECT(R1("*2\r\n$1\r\nh\r\n:0\r\n"), "E:port out of range");
    EXPECT(R1("*2\r\n$1\r\nh\r\n:-1\r\n"), "E:port out of range");
    EXPECT(R1("*2\r\n$1\r\nh\r\n:65536\r\n"), "E:port out of range");
    EXPECT(R1("*2\r\n$1\r\nh\r\n:4294967297\r\n"), "E:port out of range");

    /* Broken RESP in the parts that are skipped. */
    EXPECT(R1("*3\r\n$1\r\nh\r\n:7000\r\n$2\r\nid\r"), "E:malformed reply");
    EXPECT("*1\r\n*4\r\n:0\r\n:1\r\n" NODE_OK "*2\r\n$1\r\nr\r\n:x\r\n",
           "E:malformed reply");
    EXPECT("*1\r\n*4\r\n:0\r\n:1\r\n" NODE_OK "?\r\n", "E:malformed reply");

    /* Fewer ranges than announced, more bytes than announced. */
    EXPECT("*2\r\n*3\r\n:0\r\n:1\r\n" NODE_OK, "E:malformed reply");
    EXPECT(R1(NODE_OK) "+OK\r\n", "E:trailing bytes after the reply");
    EXPECT(R1(NODE_OK) "\r\n", "E:trailing bytes after the reply");
    EXPECT("*0\r\n*0\r\n", "E:trailing bytes after the reply");

    char buf[sizeof(reply_plain)];
    memcpy(buf, reply_plain, sizeof(reply_plain));
    buf[sizeof(reply_plain) - 1] = 'x';
    expect_parse(buf, sizeof(buf), "seed", "E:trailing bytes after the reply");
}
END_TEST

/* Every proper prefix of every captured reply is refused without reading
 * past it (the bytes end at a guard page), and so is every reply with one
 * byte changed in a way that breaks its framing. */
START_TEST(test_parse_truncated_at_every_byte)
{
    static const struct {
        const char *p;
        size_t      n;
    } in[] = {
        { reply_plain, sizeof(reply_plain) - 1 },
        { reply_hostname_meta, sizeof(reply_hostname_meta) - 1 },
        { reply_hostname_pref, sizeof(reply_hostname_pref) - 1 },
        { reply_question, sizeof(reply_question) - 1 },
        { reply_unknown_endpoint, sizeof(reply_unknown_endpoint) - 1 },
    };

    for (size_t i = 0; i < rd_countof(in); i++) {
        for (size_t k = 0; k < in[i].n; k++) {
            char *got = parse_tx(in[i].p, k, "seed");

            ck_assert_msg(got[0] == 'E' && got[1] == ':',
                          "reply %zu prefix %zu parsed: %s", i, k, got);
            free(got);
        }
    }
}
END_TEST

START_TEST(test_parse_every_byte_changed)
{
    size_t n = sizeof(reply_hostname_meta) - 1;
    char  *buf = malloc(n);

    /* Changing any byte to 'x', '\r', '9' or NUL may give another valid
     * reply or an error, but never a crash or a read out of bounds. */
    for (size_t k = 0; k < n; k++) {
        static const char subst[] = { 'x', '\r', '9', '\0', '*', '-' };

        for (size_t j = 0; j < sizeof(subst); j++) {
            memcpy(buf, reply_hostname_meta, n);
            buf[k] = subst[j];
            free(parse_tx(buf, n, "seed"));
        }
    }
    free(buf);
}
END_TEST

static Suite *
cluster_slots_suite(void)
{
    Suite *s = suite_create("cluster_slots");
    TCase *tc;

    tc = tcase_create("key_slot");
    tcase_add_loop_test(tc, test_key_slot_matches_redis, 0,
                        (int)rd_countof(slot_cases));
    tcase_add_test(tc, test_key_slot_crc16);
    suite_add_tcase(s, tc);

    tc = tcase_create("cluster_slots");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parse_real_replies);
    tcase_add_test(tc, test_parse_shapes);
    tcase_add_test(tc, test_parse_replicas);
    tcase_add_test(tc, test_parse_default_host);
    tcase_add_test(tc, test_parse_host_length);
    tcase_add_test(tc, test_parse_error_reply);
    tcase_add_test(tc, test_parse_malformed);
    tcase_add_test(tc, test_parse_truncated_at_every_byte);
    tcase_add_test(tc, test_parse_every_byte_changed);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cluster_slots_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * test_cluster_merge.c - the cluster module's fan-out merges and its
 * redirect decisions.
 *
 * Merges: a request of the test's session (rd_test_session.h) gets a
 * cluster request with one part per node, each part's reply is given and
 * finished with rd_cpart_final(), and the client must read the merged
 * reply, only once every part is final (rd_cluster_merge.c): the kinds'
 * own merges, RANDOMKEY's and PUBSUB's (CHANNELS, NUMSUB, ...).
 *
 * Redirects: rd_cpart_redirect() (rd_cluster_parts.c) on a part whose
 * reply is an error, with a topology of the test's: which errors send the
 * part again (MOVED, ASK, TRYAGAIN), where, and which go to the client.
 * The session's connection is marked closed, so a part that would be sent
 * again stops there: what is checked is the decision and what it changed
 * (the map, the part's target, its lane, its retry timer).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_cluster_int.h"
#include "rd_resp.h"
#include "rd_test_session.h"

/* --- merges ------------------------------------------------------------- */

#define MAX_PARTS 8

static struct {
    rd_ctopo_t  t;
    rd_csess_t  cs;
    rd_creq_t   cr;
    rd_cpart_t  parts[MAX_PARTS];
} mg;

static void
mg_setup(void)
{
    ts_setup();
    memset(&mg, 0, sizeof(mg));
}

static void
mg_teardown(void)
{
    for (size_t i = 0; i < MAX_PARTS; i++) {
        rd_buf_free(&mg.parts[i].reply);
    }
    rd_buf_free(&mg.cs.auth);
    rd_buf_free(&mg.cs.prev_auth);
    ts_teardown();
}

/* The request the client sent last becomes a cluster request of kind
 * with the given replies, one per part (NULL-terminated). */
static void
mg_request(rd_ckind_t kind, const char *const *replies)
{
    ck_assert_uint_ge(ts.nreq, 1);
    mg.cs.session = ts.s;
    mg.cs.topo = &mg.t;
    mg.cr.r = ts.req[ts.nreq - 1];
    mg.cr.worker = &ts.w;
    mg.cr.cs = &mg.cs;
    mg.cr.kind = kind;
    mg.cr.parts = mg.parts;
    size_t n = 0;
    for (; replies[n]; n++) {
        ck_assert_uint_lt(n, MAX_PARTS);
        rd_cpart_t *p = &mg.parts[n];
        p->cr = &mg.cr;
        p->slot = -1;
        p->node = (int)n;
        p->ask_node = -1;
        rd_buf_append_str(&p->reply, replies[n]);
        p->type = replies[n][0];
    }
    mg.cr.nparts = n;
    mg.cr.left = n;
}

/* Finish the parts, the last first: nothing reaches the client before
 * the last part is final; then want. */
static void
mg_finish(const char *want)
{
    for (size_t i = mg.cr.nparts; i-- > 0;) {
        if (i > 0) {
            rd_cpart_final(&mg.parts[i]);
            ts_expect("");
            ck_assert(mg.parts[i].done);
            ck_assert_uint_eq(mg.cr.left, i);
        } else {
            rd_cpart_final(&mg.parts[0]);
        }
    }
    if (want) {
        ts_expect(want);
    }
}

#define DIFFERENTLY "-ERR redoubt: the cluster nodes answered differently\r\n"

START_TEST(test_dbsize_sums_the_nodes)
{
    ts_command("DBSIZE");
    mg_request(RD_CK_SUM, (const char *[]){ ":3\r\n", ":40\r\n", ":0\r\n",
                                            NULL });
    mg_finish(":43\r\n");
}
END_TEST

START_TEST(test_dbsize_refuses_a_non_integer)
{
    ts_command("DBSIZE");
    mg_request(RD_CK_SUM, (const char *[]){ ":3\r\n", "+OK\r\n", NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_keys_concatenates_in_node_order)
{
    ts_command("KEYS *");
    mg_request(RD_CK_KEYS, (const char *[]){
        "*2\r\n$1\r\na\r\n$2\r\nbb\r\n", "*0\r\n", "*1\r\n$1\r\nc\r\n",
        NULL });
    mg_finish("*3\r\n$1\r\na\r\n$2\r\nbb\r\n$1\r\nc\r\n");
}
END_TEST

START_TEST(test_keys_refuses_a_non_array)
{
    ts_command("KEYS *");
    mg_request(RD_CK_KEYS, (const char *[]){ "*1\r\n$1\r\na\r\n",
                                             "*-1\r\n", NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_mget_puts_values_back_in_key_order)
{
    static size_t even[] = { 2, 4 }, odd[] = { 1, 3 };

    ts_command("MGET k1 k2 k3 k4");
    mg_request(RD_CK_MGET, (const char *[]){
        "*2\r\n$2\r\nv2\r\n$2\r\nv4\r\n", "*2\r\n$2\r\nv1\r\n$-1\r\n",
        NULL });
    mg.parts[0].pos = even;
    mg.parts[0].npos = 2;
    mg.parts[1].pos = odd;
    mg.parts[1].npos = 2;
    mg_finish("*4\r\n$2\r\nv1\r\n$2\r\nv2\r\n$-1\r\n$2\r\nv4\r\n");
}
END_TEST

START_TEST(test_mget_refuses_a_short_part)
{
    static size_t first[] = { 1 }, rest[] = { 2, 3 };

    ts_command("MGET a b c");
    mg_request(RD_CK_MGET, (const char *[]){ "*1\r\n$1\r\nA\r\n",
                                             "*1\r\n$1\r\nB\r\n", NULL });
    mg.parts[0].pos = first;
    mg.parts[0].npos = 1;
    mg.parts[1].pos = rest;
    mg.parts[1].npos = 2;
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_script_exists_ands_the_nodes)
{
    ts_command("SCRIPT EXISTS s1 s2 s3");
    mg_request(RD_CK_AND, (const char *[]){ "*3\r\n:1\r\n:0\r\n:1\r\n",
                                            "*3\r\n:1\r\n:1\r\n:0\r\n",
                                            NULL });
    mg_finish("*3\r\n:1\r\n:0\r\n:0\r\n");
}
END_TEST

START_TEST(test_script_exists_refuses_different_lengths)
{
    ts_command("SCRIPT EXISTS s1 s2");
    mg_request(RD_CK_AND, (const char *[]){ "*2\r\n:1\r\n:1\r\n",
                                            "*1\r\n:1\r\n", NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_flush_needs_ok_everywhere)
{
    ts_command("FLUSHDB");
    mg_request(RD_CK_ALLOK, (const char *[]){ "+OK\r\n", "+OK\r\n",
                                              "+OK\r\n", NULL });
    mg_finish("+OK\r\n");
}
END_TEST

START_TEST(test_flush_refuses_another_status)
{
    ts_command("FLUSHDB");
    mg_request(RD_CK_ALLOK, (const char *[]){ "+OK\r\n", "+QUEUED\r\n",
                                              NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_first_error_wins)
{
    ts_command("FLUSHDB");
    mg_request(RD_CK_ALLOK, (const char *[]){ "+OK\r\n", "-ERR second\r\n",
                                              "-ERR third\r\n", NULL });
    mg_finish("-ERR second\r\n");
}
END_TEST

START_TEST(test_script_load_needs_the_same_answer)
{
    ts_command("SCRIPT LOAD x");
    mg_request(RD_CK_SAME, (const char *[]){ "$3\r\nabc\r\n",
                                             "$3\r\nabc\r\n", NULL });
    mg_finish("$3\r\nabc\r\n");
}
END_TEST

START_TEST(test_script_load_refuses_different_answers)
{
    ts_command("SCRIPT LOAD x");
    mg_request(RD_CK_SAME, (const char *[]){ "$3\r\nabc\r\n",
                                             "$3\r\nabd\r\n", NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_direct_reply_passes_through)
{
    ts_command("GET a");
    mg_request(RD_CK_DIRECT, (const char *[]){ "$5\r\nhello\r\n", NULL });
    mg_finish("$5\r\nhello\r\n");
}
END_TEST

START_TEST(test_split_sum_adds_the_parts)
{
    ts_command("DEL a b a c");
    mg_request(RD_CK_SPLIT_SUM, (const char *[]){ ":1\r\n", ":0\r\n",
                                                  ":2\r\n", NULL });
    mg_finish(":3\r\n");
}
END_TEST

START_TEST(test_split_ok_needs_ok_everywhere)
{
    ts_command("MSET a 1 b 2");
    mg_request(RD_CK_SPLIT_OK, (const char *[]){ "+OK\r\n", "+OK\r\n",
                                                 NULL });
    mg_finish("+OK\r\n");
}
END_TEST

START_TEST(test_split_ok_gives_a_part_error)
{
    ts_command("MSET a 1 b 2");
    mg_request(RD_CK_SPLIT_OK, (const char *[]){ "+OK\r\n",
                                                 "-OOM no\r\n", NULL });
    mg_finish("-OOM no\r\n");
}
END_TEST

START_TEST(test_one_ok_is_enough)
{
    ts_command("SCRIPT KILL");
    mg_request(RD_CK_ONEOK, (const char *[]){ "-NOTBUSY none\r\n",
                                              "+OK\r\n",
                                              "-NOTBUSY none\r\n", NULL });
    mg_finish("+OK\r\n");
}
END_TEST

START_TEST(test_one_ok_none_gives_the_first_error)
{
    ts_command("SCRIPT KILL");
    mg_request(RD_CK_ONEOK, (const char *[]){ "-NOTBUSY one\r\n",
                                              "-NOTBUSY two\r\n", NULL });
    mg_finish("-NOTBUSY one\r\n");
}
END_TEST

static void
mg_randomkey(const char *const *replies)
{
    ts_command("RANDOMKEY");
    mg_request(RD_CK_CUSTOM, replies);
    ck_assert_int_eq(rd_crandom_prepare(&mg.cr), 0);
    ck_assert_ptr_nonnull(mg.cr.merge);
}

START_TEST(test_randomkey_nil_when_every_master_is_empty)
{
    mg_randomkey((const char *[]){ "$-1\r\n", "$-1\r\n", "$-1\r\n", NULL });
    mg_finish("$-1\r\n");
}
END_TEST

START_TEST(test_randomkey_finds_the_only_key)
{
    for (int i = 0; i < 3; i++) {
        const char *r[4] = { "$-1\r\n", "$-1\r\n", "$-1\r\n", NULL };
        r[i] = "$3\r\nkey\r\n";
        mg_randomkey(r);
        mg_finish("$3\r\nkey\r\n");
        for (size_t k = 0; k < 3; k++) {
            rd_buf_free(&mg.parts[k].reply);
            mg.parts[k].done = 0;
        }
    }
}
END_TEST

START_TEST(test_randomkey_refuses_a_non_bulk)
{
    mg_randomkey((const char *[]){ "$-1\r\n", ":1\r\n", NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

static void
mg_pubsub(const char *cmd, int (*prepare)(rd_creq_t *),
          const char *const *replies)
{
    ts_command(cmd);
    mg_request(RD_CK_CUSTOM, replies);
    ck_assert_int_eq(prepare(&mg.cr), 0);
    ck_assert_ptr_nonnull(mg.cr.merge);
}

START_TEST(test_pubsub_channels_once_in_first_seen_order)
{
    mg_pubsub("PUBSUB CHANNELS", rd_cpsinfo_channels_prepare,
              (const char *[]){
        "*3\r\n$1\r\na\r\n$4\r\nboth\r\n$1\r\nb\r\n",
        "*0\r\n",
        "*3\r\n$1\r\nc\r\n$4\r\nboth\r\n$2\r\nbo\r\n", NULL });
    mg_finish("*5\r\n$1\r\na\r\n$4\r\nboth\r\n$1\r\nb\r\n$1\r\nc\r\n"
              "$2\r\nbo\r\n");
}
END_TEST

START_TEST(test_pubsub_channels_many_with_duplicates)
{
    /* More than the set's first size, every channel on both masters. */
    rd_buf_t one = { 0 }, want = { 0 };
    rd_resp_encode_array(&one, 40);
    rd_resp_encode_array(&want, 40);
    for (int i = 0; i < 40; i++) {
        char ch[16];
        int n = snprintf(ch, sizeof(ch), "ch:%d", i);
        rd_resp_encode_bulk(&one, ch, (size_t)n);
        rd_resp_encode_bulk(&want, ch, (size_t)n);
    }
    rd_buf_append(&one, "", 1);
    rd_buf_append(&want, "", 1);
    mg_pubsub("PUBSUB SHARDCHANNELS", rd_cpsinfo_channels_prepare,
              (const char *[]){ rd_buf_rpos(&one), rd_buf_rpos(&one),
                                NULL });
    mg_finish(rd_buf_rpos(&want));
    rd_buf_free(&one);
    rd_buf_free(&want);
}
END_TEST

START_TEST(test_pubsub_channels_refuses_a_non_array)
{
    mg_pubsub("PUBSUB CHANNELS", rd_cpsinfo_channels_prepare,
              (const char *[]){ "*1\r\n$1\r\na\r\n", ":1\r\n", NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_pubsub_channels_first_error_wins)
{
    mg_pubsub("PUBSUB CHANNELS a b", rd_cpsinfo_channels_prepare,
              (const char *[]){ "*0\r\n", "-ERR one\r\n", "-ERR two\r\n",
                                NULL });
    mg_finish("-ERR one\r\n");
}
END_TEST

START_TEST(test_pubsub_numsub_sums_per_channel)
{
    mg_pubsub("PUBSUB NUMSUB a b a", rd_cpsinfo_numsub_prepare,
              (const char *[]){
        "*6\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:0\r\n$1\r\na\r\n:1\r\n",
        "*6\r\n$1\r\na\r\n:2\r\n$1\r\nb\r\n:0\r\n$1\r\na\r\n:2\r\n",
        "*6\r\n$1\r\na\r\n:0\r\n$1\r\nb\r\n:5\r\n$1\r\na\r\n:0\r\n",
        NULL });
    mg_finish("*6\r\n$1\r\na\r\n:3\r\n$1\r\nb\r\n:5\r\n$1\r\na\r\n:3\r\n");
}
END_TEST

START_TEST(test_pubsub_numsub_none_asked)
{
    mg_pubsub("PUBSUB SHARDNUMSUB", rd_cpsinfo_numsub_prepare,
              (const char *[]){ "*0\r\n", "*0\r\n", NULL });
    mg_finish("*0\r\n");
}
END_TEST

START_TEST(test_pubsub_numsub_refuses_other_channels)
{
    mg_pubsub("PUBSUB NUMSUB a", rd_cpsinfo_numsub_prepare,
              (const char *[]){ "*2\r\n$1\r\na\r\n:1\r\n",
                                "*2\r\n$1\r\nb\r\n:1\r\n", NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_pubsub_numsub_refuses_other_lengths)
{
    mg_pubsub("PUBSUB NUMSUB a", rd_cpsinfo_numsub_prepare,
              (const char *[]){ "*2\r\n$1\r\na\r\n:1\r\n",
                                "*4\r\n$1\r\na\r\n:1\r\n$1\r\na\r\n:1\r\n",
                                NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_pubsub_numsub_refuses_a_bad_count)
{
    mg_pubsub("PUBSUB NUMSUB a", rd_cpsinfo_numsub_prepare,
              (const char *[]){ "*2\r\n$1\r\na\r\n:1\r\n",
                                "*2\r\n$1\r\na\r\n$1\r\n1\r\n", NULL });
    mg_finish(DIFFERENTLY);
}
END_TEST

START_TEST(test_scan_pattern_pins_a_slot)
{
    static const struct { const char *pat; const char *tag; } t[] = {
        { "{pin}:*", "pin" },
        { "user:{42}:*", "42" },
        { "{a}*{b}", "a" },
        { "{a}", "a" },
        { "a{b}c?", "b" },
        { "*{pin}:*", NULL },
        { "?{pin}", NULL },
        { "[ab]{pin}", NULL },
        { "x\\{pin}", NULL },
        { "{p*n}", NULL },
        { "{p?n}", NULL },
        { "{p[i]n}", NULL },
        { "{p\\in}", NULL },
        { "{}x", NULL },
        { "{abc", NULL },
        { "abc", NULL },
        { "", NULL },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int want = t[i].tag ? (int)rd_cluster_key_slot(t[i].tag,
                                                       strlen(t[i].tag))
                            : -1;
        ck_assert_msg(rd_cscan_pattern_slot(t[i].pat, strlen(t[i].pat))
                      == want, "pattern \"%s\"", t[i].pat);
    }
}
END_TEST

START_TEST(test_scan_refuses_cursors_it_cannot_have_made)
{
    static const char *const bad[] = {
        "SCAN abc", "SCAN -1", "SCAN 18446744073709551616", "SCAN 5",
        "SCAN 16383", "SCAN 0x10", "SCAN 1a",
    };
    static const char *const good[] = {
        "SCAN 0", "SCAN 16384", "SCAN 18446744073709551615",
        "SCAN 0 MATCH {a}* COUNT 5",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ts_command(bad[i]);
        mg_request(RD_CK_CUSTOM, (const char *[]){ NULL });
        ck_assert_msg(rd_cscan_prepare(&mg.cr) == -1, "%s", bad[i]);
        ts_expect("-ERR invalid cursor\r\n");
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ts_command(good[i]);
        mg_request(RD_CK_CUSTOM, (const char *[]){ NULL });
        ck_assert_msg(rd_cscan_prepare(&mg.cr) == 0, "%s", good[i]);
        ck_assert_ptr_nonnull(mg.cr.setup);
        ck_assert_ptr_nonnull(mg.cr.merge);
        mg.cr.free_data(mg.cr.data);
        mg.cr.data = NULL;
        ts_expect("");
    }
}
END_TEST

/* AUTH on every connection: cs->auth holds the new AUTH, prev_auth the
 * one before it. */
static void
mg_auth(const char *const *replies)
{
    ts_command("AUTH u p");
    mg_request(RD_CK_AUTH, replies);
    rd_buf_append_str(&mg.cs.auth, "new");
    rd_buf_append_str(&mg.cs.prev_auth, "old");
}

static int
buf_is(const rd_buf_t *b, const char *s)
{
    return rd_buf_used(b) == strlen(s)
           && memcmp(rd_buf_rpos(b), s, strlen(s)) == 0;
}

START_TEST(test_auth_accepted_everywhere_is_kept)
{
    mg_auth((const char *[]){ "+OK\r\n", "+OK\r\n", NULL });
    mg_finish("+OK\r\n");
    ck_assert(buf_is(&mg.cs.auth, "new"));
    ck_assert_uint_eq(rd_buf_used(&mg.cs.prev_auth), 0);
}
END_TEST

START_TEST(test_auth_refused_everywhere_is_forgotten)
{
    mg_auth((const char *[]){ "-WRONGPASS no\r\n", "-WRONGPASS no\r\n",
                              NULL });
    mg_finish("-WRONGPASS no\r\n");
    ck_assert(buf_is(&mg.cs.auth, "old"));
    ck_assert_uint_eq(rd_buf_used(&mg.cs.prev_auth), 0);
    ck_assert(!ts_closed());
}
END_TEST

START_TEST(test_auth_accepted_by_some_closes_the_session)
{
    mg_auth((const char *[]){ "+OK\r\n", "-WRONGPASS no\r\n", NULL });
    mg_finish(NULL);
    ck_assert(ts_closed());
    ck_assert(buf_is(&mg.cs.auth, "old"));
    char buf[256];
    ck_assert_int_eq(ts_recv(buf, sizeof(buf)), -1);
    ck_assert_str_eq(ts.close_reason, "AUTH was accepted by some cluster "
                     "nodes only");
}
END_TEST

/* --- redirect decisions ------------------------------------------------ */

static struct {
    rd_cluster_db_conf_t conf;
    rd_database_t        db;
    rd_worker_t          w;
    rd_conn_t            conn;
    rd_session_t         s;
    rd_ctopo_t           t;
    rd_csess_t           cs;
    rd_creq_t            cr;
    rd_cpart_t           p;
    rd_clane_t           lane;
} rd;

static void
rd_setup(void)
{
    memset(&rd, 0, sizeof(rd));
    rd_log_level = RD_LOG_ERROR;
    rd.conf.max_redirects = 5;
    rd.conf.tryagain_delay = 100;
    rd.db.name = "cdb";
    rd_timers_init(&rd.w.loop.timers);
    rd.w.loop.now = 1000;
    rd.conn.closed = 1;                 /* nothing is really sent */
    rd.s.conn = &rd.conn;
    rd.s.db_user = "default";
    rd.t.db = &rd.db;
    rd.t.conf = &rd.conf;
    rd.t.worker = &rd.w;
    rd.t.refreshing = 1;                /* a MOVED starts no refresh */
    for (size_t i = 0; i < RD_CLUSTER_SLOTS; i++) {
        rd.t.slot[i] = -1;
    }
    rd.cs.session = &rd.s;
    rd.cs.topo = &rd.t;
    rd.cr.cs = &rd.cs;
    rd.cr.worker = &rd.w;
    rd.cr.parts = &rd.p;
    rd.cr.nparts = 1;
    rd.cr.left = 1;
    rd.cr.seq = 5;
    rd.p.cr = &rd.cr;
    rd.p.slot = -1;
    rd.p.node = -1;
    rd.p.ask_node = -1;
}

static void
rd_teardown(void)
{
    for (size_t i = 0; i < rd.t.nnodes; i++) {
        free(rd.t.nodes[i]);
    }
    free(rd.t.nodes);
    if (rd.cs.lanes != &rd.lane) {
        free(rd.cs.lanes);
    }
    rd_buf_free(&rd.p.reply);
    rd_timers_free(&rd.w.loop.timers);
}

static int
redirect(const char *reply)
{
    rd_buf_reset(&rd.p.reply);
    rd_buf_append_str(&rd.p.reply, reply);
    rd.p.type = '-';
    return rd_cpart_redirect(&rd.p);
}

/* An error for the client: the part and the map are left as they were. */
static void
expect_for_client(const char *reply)
{
    unsigned before = rd.p.redirects;
    size_t nodes = rd.t.nnodes;
    ck_assert_msg(redirect(reply) == 0, "\"%s\" was followed", reply);
    ck_assert_msg(buf_is(&rd.p.reply, reply), "\"%s\" changed", reply);
    ck_assert_int_eq(rd.p.type, '-');
    ck_assert_uint_eq(rd.p.redirects, before);
    ck_assert_uint_eq(rd.t.nnodes, nodes);
    ck_assert(!rd_timer_armed(&rd.p.retry));
    ck_assert_int_eq(rd.p.ask_node, -1);
}

/* The part is to go again: its reply is forgotten. */
static void
expect_followed(const char *reply)
{
    ck_assert_msg(redirect(reply) == 1, "\"%s\" went to the client", reply);
    ck_assert_uint_eq(rd_buf_used(&rd.p.reply), 0);
    ck_assert_int_eq(rd.p.type, 0);
}

START_TEST(test_moved_updates_the_map)
{
    expect_followed("-MOVED 3999 127.0.0.1:7001\r\n");
    ck_assert_uint_eq(rd.t.nnodes, 1);
    ck_assert_str_eq(rd.t.nodes[0]->text, "127.0.0.1:7001");
    ck_assert_int_eq(rd.t.slot[3999], 0);
    ck_assert(rd.t.nodes[0]->master);
    ck_assert_int_eq(rd.p.node, 0);           /* keyless: goes there */
    ck_assert_int_eq(rd.p.ask_node, -1);
    ck_assert_uint_eq(rd.p.redirects, 1);
    ck_assert_uint_eq(rd.cs.nparked, 0);

    /* The same node again is found, not added. */
    expect_followed("-MOVED 0 127.0.0.1:7001");
    ck_assert_uint_eq(rd.t.nnodes, 1);
    ck_assert_int_eq(rd.t.slot[0], 0);
    ck_assert_uint_eq(rd.p.redirects, 2);
}
END_TEST

START_TEST(test_moved_slot_part_parks_in_its_lane)
{
    rd.p.slot = 3999;
    expect_followed("-MOVED 3999 127.0.0.1:7001\r\n");
    ck_assert_int_eq(rd.t.slot[3999], 0);
    ck_assert_int_eq(rd.p.node, -1);          /* its lane decides */
    ck_assert_uint_eq(rd.cs.nparked, 1);
    rd_clane_t *l = rd_clane_find(&rd.cs, 3999);
    ck_assert_ptr_nonnull(l);
    ck_assert_ptr_eq(l->head, &rd.p);
    ck_assert_int_eq(rd.p.wait, RD_CWAIT_NONE);
}
END_TEST

START_TEST(test_ask_targets_one_send_only)
{
    expect_followed("-ASK 12 127.0.0.1:7002\r\n");
    ck_assert_uint_eq(rd.t.nnodes, 1);
    ck_assert_int_eq(rd.p.ask_node, 0);
    ck_assert_int_eq(rd.t.slot[12], -1);      /* the map is unchanged */
    ck_assert(!rd.t.nodes[0]->master);
    ck_assert_uint_eq(rd.p.redirects, 1);
}
END_TEST

START_TEST(test_addresses)
{
    /* IPv6 in brackets; an empty host is the node that was asked. */
    expect_followed("-MOVED 7 [::1]:7001\r\n");
    ck_assert_str_eq(rd.t.nodes[0]->text, "[::1]:7001");
    rd.p.node = 0;
    rd.p.slot = -1;
    expect_followed("-ASK 8 :7005\r\n");
    ck_assert_uint_eq(rd.t.nnodes, 2);
    ck_assert_str_eq(rd.t.nodes[1]->host, "::1");
    ck_assert_uint_eq(rd.t.nodes[1]->port, 7005);
    ck_assert_int_eq(rd.p.ask_node, 1);
}
END_TEST

START_TEST(test_tryagain_retries_after_the_delay)
{
    expect_followed("-TRYAGAIN Multiple keys request during rehashing "
                    "of slot\r\n");
    ck_assert(rd_timer_armed(&rd.p.retry));
    ck_assert_int_eq(rd.p.retry.when, 1000 + 100);
    ck_assert_uint_eq(rd.cs.nparked, 0);
    ck_assert_uint_eq(rd.t.nnodes, 0);
    ck_assert_uint_eq(rd.p.redirects, 1);
}
END_TEST

START_TEST(test_tryagain_slot_part_waits_in_its_lane)
{
    rd.p.slot = 100;
    expect_followed("-TRYAGAIN\r\n");
    ck_assert(rd_timer_armed(&rd.p.retry));
    ck_assert_uint_eq(rd.cs.nparked, 1);
    ck_assert_int_eq(rd.p.wait, RD_CWAIT_DELAY);
    ck_assert_ptr_eq(rd_clane_find(&rd.cs, 100)->head, &rd.p);
}
END_TEST

START_TEST(test_tryagain_behind_later_parts_goes_to_client)
{
    /* A later part for the slot is in flight behind this one. */
    rd.p.slot = 100;
    rd.lane.slot = 100;
    rd.lane.inflight = 1;
    rd.cs.lanes = &rd.lane;
    rd.cs.lanes_cap = 1;
    rd.cs.nlanes = 1;
    expect_for_client("-TRYAGAIN\r\n");

    /* Nothing in flight: it waits. */
    rd.lane.inflight = 0;
    rd.cs.lanes = NULL;
    rd.cs.lanes_cap = 0;
    rd.cs.nlanes = 0;
    expect_followed("-TRYAGAIN\r\n");
}
END_TEST

START_TEST(test_other_errors_go_to_the_client)
{
    expect_for_client("-ERR wrong number of arguments\r\n");
    expect_for_client("-MOVED\r\n");
    expect_for_client("-MOVED \r\n");
    expect_for_client("-ASK\r\n");
    expect_for_client("-TRYAGAI\r\n");
    expect_for_client("-moved 1 127.0.0.1:7001\r\n");
    expect_for_client("-MOVEDX 1 127.0.0.1:7001\r\n");
    expect_for_client("-CLUSTERDOWN Hash slot not served\r\n");
}
END_TEST

START_TEST(test_malformed_redirects_go_to_the_client)
{
    expect_for_client("-MOVED 16384 127.0.0.1:7001\r\n");
    expect_for_client("-MOVED 99999999999 127.0.0.1:7001\r\n");
    expect_for_client("-MOVED 12a 127.0.0.1:7001\r\n");
    expect_for_client("-MOVED 12x127.0.0.1:7001\r\n");
    expect_for_client("-MOVED 12\r\n");
    expect_for_client("-ASK 12 \r\n");
    expect_for_client("-MOVED 12 127.0.0.1\r\n");
    expect_for_client("-MOVED 12 127.0.0.1:\r\n");
    expect_for_client("-MOVED 12 127.0.0.1:70000x\r\n");
    expect_for_client("-ASK 12 127.0.0.1:0\r\n");
    expect_for_client("-MOVED 12 :7001\r\n");       /* no node was asked */
    expect_for_client("-MOVED 12 redis.example:7001\r\n");
    for (size_t i = 0; i < RD_CLUSTER_SLOTS; i++) {
        ck_assert_int_eq(rd.t.slot[i], -1);
    }
}
END_TEST

START_TEST(test_redirects_are_bounded)
{
    rd.p.redirects = 4;
    expect_followed("-ASK 1 127.0.0.1:7001\r\n");
    ck_assert_uint_eq(rd.p.redirects, 5);
    rd.p.ask_node = -1;
    expect_for_client("-ASK 1 127.0.0.1:7001\r\n");
    expect_for_client("-MOVED 1 127.0.0.1:7001\r\n");
    expect_for_client("-TRYAGAIN\r\n");
}
END_TEST

START_TEST(test_no_redirect_behind_a_later_barrier)
{
    /* A barrier of the session went out after this part: sent again, the
     * part would run after it. */
    rd.cs.barrier_seq = (rd.cr.seq + 1) << 16;
    expect_for_client("-MOVED 1 127.0.0.1:7001\r\n");
    expect_for_client("-TRYAGAIN\r\n");
    /* The part itself was the barrier: it may go again. */
    rd.cs.barrier_seq = rd.cr.seq << 16;
    expect_followed("-MOVED 1 127.0.0.1:7001\r\n");
}
END_TEST

static Suite *
cluster_merge_suite(void)
{
    Suite *s = suite_create("cluster_merge");
    TCase *tc = tcase_create("merge");
    tcase_add_unchecked_fixture(tc, ts_load, ts_unload);
    tcase_add_checked_fixture(tc, mg_setup, mg_teardown);
    tcase_add_test(tc, test_dbsize_sums_the_nodes);
    tcase_add_test(tc, test_dbsize_refuses_a_non_integer);
    tcase_add_test(tc, test_keys_concatenates_in_node_order);
    tcase_add_test(tc, test_keys_refuses_a_non_array);
    tcase_add_test(tc, test_mget_puts_values_back_in_key_order);
    tcase_add_test(tc, test_mget_refuses_a_short_part);
    tcase_add_test(tc, test_script_exists_ands_the_nodes);
    tcase_add_test(tc, test_script_exists_refuses_different_lengths);
    tcase_add_test(tc, test_flush_needs_ok_everywhere);
    tcase_add_test(tc, test_flush_refuses_another_status);
    tcase_add_test(tc, test_first_error_wins);
    tcase_add_test(tc, test_script_load_needs_the_same_answer);
    tcase_add_test(tc, test_script_load_refuses_different_answers);
    tcase_add_test(tc, test_direct_reply_passes_through);
    tcase_add_test(tc, test_split_sum_adds_the_parts);
    tcase_add_test(tc, test_split_ok_needs_ok_everywhere);
    tcase_add_test(tc, test_split_ok_gives_a_part_error);
    tcase_add_test(tc, test_one_ok_is_enough);
    tcase_add_test(tc, test_one_ok_none_gives_the_first_error);
    tcase_add_test(tc, test_randomkey_nil_when_every_master_is_empty);
    tcase_add_test(tc, test_randomkey_finds_the_only_key);
    tcase_add_test(tc, test_randomkey_refuses_a_non_bulk);
    tcase_add_test(tc, test_pubsub_channels_once_in_first_seen_order);
    tcase_add_test(tc, test_pubsub_channels_many_with_duplicates);
    tcase_add_test(tc, test_pubsub_channels_refuses_a_non_array);
    tcase_add_test(tc, test_pubsub_channels_first_error_wins);
    tcase_add_test(tc, test_pubsub_numsub_sums_per_channel);
    tcase_add_test(tc, test_pubsub_numsub_none_asked);
    tcase_add_test(tc, test_pubsub_numsub_refuses_other_channels);
    tcase_add_test(tc, test_pubsub_numsub_refuses_other_lengths);
    tcase_add_test(tc, test_pubsub_numsub_refuses_a_bad_count);
    tcase_add_test(tc, test_scan_pattern_pins_a_slot);
    tcase_add_test(tc, test_scan_refuses_cursors_it_cannot_have_made);
    tcase_add_test(tc, test_auth_accepted_everywhere_is_kept);
    tcase_add_test(tc, test_auth_refused_everywhere_is_forgotten);
    tcase_add_test(tc, test_auth_accepted_by_some_closes_the_session);
    suite_add_tcase(s, tc);

    tc = tcase_create("redirect");
    tcase_add_checked_fixture(tc, rd_setup, rd_teardown);
    tcase_add_test(tc, test_moved_updates_the_map);
    tcase_add_test(tc, test_moved_slot_part_parks_in_its_lane);
    tcase_add_test(tc, test_ask_targets_one_send_only);
    tcase_add_test(tc, test_addresses);
    tcase_add_test(tc, test_tryagain_retries_after_the_delay);
    tcase_add_test(tc, test_tryagain_slot_part_waits_in_its_lane);
    tcase_add_test(tc, test_tryagain_behind_later_parts_goes_to_client);
    tcase_add_test(tc, test_other_errors_go_to_the_client);
    tcase_add_test(tc, test_malformed_redirects_go_to_the_client);
    tcase_add_test(tc, test_redirects_are_bounded);
    tcase_add_test(tc, test_no_redirect_behind_a_later_barrier);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cluster_merge_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

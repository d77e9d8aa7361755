/*
 * test_command.c - the command table: lookup, arity, key positions (as
 * Redis's key specs give them), ACL categories, flags and tips.
 *
 * Requests are written as one string, words split on spaces, "" standing
 * for an empty argument; key positions come back as "1 3 5", or "error"
 * when rd_command_keys() refuses the arguments.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_command.h"

#define MAX_ARGS 64

typedef struct {
    char     buf[1024];
    rd_str_t argv[MAX_ARGS];
    size_t   argc;
} req_t;

static void
req_parse(req_t *r, const char *line)
{
    snprintf(r->buf, sizeof(r->buf), "%s", line);
    r->argc = 0;
    for (char *save = NULL, *w = strtok_r(r->buf, " ", &save); w != NULL;
         w = strtok_r(NULL, " ", &save)) {
        ck_assert_uint_lt(r->argc, MAX_ARGS);
        if (strcmp(w, "\"\"") == 0) {
            w[0] = '\0';
        }
        r->argv[r->argc++] = (rd_str_t){ w, strlen(w) };
    }
}

static const rd_command_t *
lookup(const char *line)
{
    req_t r;
    req_parse(&r, line);
    return rd_command_lookup(r.argc, r.argv);
}

/* The key positions of a request, as text, with the given options. */
static const char *
keys_ex(const char *line, unsigned opts)
{
    static char out[256];
    req_t r;
    size_t idx[MAX_ARGS];

    req_parse(&r, line);
    const rd_command_t *c = rd_command_lookup(r.argc, r.argv);
    ck_assert_msg(c != NULL, "unknown command in \"%s\"", line);
    int n = rd_command_keys_ex(c, r.argc, r.argv, opts, idx, NULL, MAX_ARGS);
    if (n < 0) {
        return "error";
    }
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, sizeof(out) - len, "%s%zu", i ? " " : "", idx[i]);
    }
    return out;
}

static const char *
keys(const char *line)
{
    return keys_ex(line, 0);
}

#define ck_keys(line, expected) ck_assert_str_eq(keys(line), (expected))

static const rd_command_t *
must_find(const char *name)
{
    const rd_command_t *c = rd_command_find((rd_str_t){ name, strlen(name) });
    ck_assert_msg(c != NULL, "no row for %s", name);
    return c;
}

/* --- lookup --------------------------------------------------------------- */

START_TEST(test_lookup_ignores_case)
{
    const rd_command_t *c = lookup("get k");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->name, "get");
    ck_assert_ptr_eq(lookup("GET k"), c);
    ck_assert_ptr_eq(lookup("gEt k"), c);
    ck_assert_ptr_eq(lookup("ZUNIONSTORE d 1 a"), must_find("zunionstore"));
    ck_assert_ptr_eq(lookup("georadius_RO k 0 0 1 km"), must_find("georadius_ro"));
}
END_TEST

START_TEST(test_lookup_unknown_is_null)
{
    ck_assert_ptr_null(lookup("NOSUCHCOMMAND a b"));
    ck_assert_ptr_null(lookup("ge"));
    ck_assert_ptr_null(lookup("gett"));
    ck_assert_ptr_null(rd_command_lookup(0, NULL));
    /* a name that cannot fit the lookup buffer, and one with a NUL in it */
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_ptr_null(lookup(longname));
    rd_str_t nul[] = { { "get\0x", 5 }, { "k", 1 } };
    ck_assert_ptr_null(rd_command_lookup(2, nul));
}
END_TEST

START_TEST(test_lookup_subcommand)
{
    const rd_command_t *c = lookup("CLIENT SETNAME app");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->name, "client|setname");
    ck_assert_int_eq(c->arity, 3);
    ck_assert_ptr_eq(lookup("client setName app"), c);
    ck_assert_str_eq(lookup("CONFIG GET maxmemory")->name, "config|get");
    ck_assert_str_eq(lookup("script load x")->name, "script|load");
    ck_assert_str_eq(lookup("CLUSTER SLOTS")->name, "cluster|slots");
    ck_assert_str_eq(lookup("XINFO STREAM s")->name, "xinfo|stream");
    ck_assert_str_eq(lookup("command getkeys get k")->name, "command|getkeys");
}
END_TEST

START_TEST(test_lookup_unknown_subcommand_gives_container)
{
    const rd_command_t *c = lookup("CLIENT NOSUCH x");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->name, "client");
    ck_assert_uint_gt(c->subcommands, 10);
    ck_assert_int_eq(c->arity, -2);
    ck_assert_ptr_eq(lookup("CLIENT"), c);      /* no argv[1] at all */
    /* a container's row has no keys and fails arity alone */
    ck_keys("CLIENT NOSUCH", "");
    ck_keys("CLIENT", "error");
}
END_TEST

START_TEST(test_lookup_plain_command_ignores_argv1)
{
    /* GET is no container: "get|client" must not be looked for */
    ck_assert_str_eq(lookup("GET client")->name, "get");
    ck_assert_uint_eq(must_find("get")->subcommands, 0);
}
END_TEST

START_TEST(test_find_by_full_name)
{
    ck_assert_str_eq(must_find("CONFIG|GET")->name, "config|get");
    ck_assert_ptr_null(rd_command_find(RD_STR("config|nosuch")));
    ck_assert_ptr_null(rd_command_find(RD_STR("")));
}
END_TEST

START_TEST(test_table_sorted_unique_and_consistent)
{
    size_t n;
    const rd_command_t *t = rd_command_table(&n);

    ck_assert_uint_gt(n, 300);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            ck_assert_msg(strcmp(t[i - 1].name, t[i].name) < 0,
                          "%s before %s", t[i - 1].name, t[i].name);
        }
        ck_assert_uint_le(t[i].nspecs, RD_CMD_MAX_KEY_SPECS);
        ck_assert_uint_ne(t[i].acl & (RD_CAT_FAST | RD_CAT_SLOW), 0);
        /* every container is followed by exactly its subcommands */
        size_t len = strlen(t[i].name);
        for (size_t k = 1; k <= t[i].subcommands; k++) {
            ck_assert(strncmp(t[i + k].name, t[i].name, len) == 0);
            ck_assert_int_eq(t[i + k].name[len], '|');
        }
    }
    ck_assert(strncmp(rd_command_table_version(), "7.", 2) == 0);
}
END_TEST

/* Every row, with as many dummy arguments as its arity asks and a few
 * more: positions stay inside argv, and nothing but a count can fail. */
START_TEST(test_every_row_gives_sane_positions)
{
    size_t n;
    const rd_command_t *t = rd_command_table(&n);
    rd_str_t argv[16];
    size_t idx[16];

    for (size_t i = 0; i < n; i++) {
        size_t min = (size_t)abs(t[i].arity);
        for (size_t argc = min; argc < min + 4 && argc <= 16; argc++) {
            for (size_t a = 0; a < argc; a++) {
                argv[a] = RD_STR("1");
            }
            int k = rd_command_keys(&t[i], argc, argv, idx, 16);
            if (t[i].arity > 0 && argc != min) {
                ck_assert_int_eq(k, -1);
                continue;
            }
            ck_assert_msg(k >= 0 || t[i].nspecs > 0, "%s", t[i].name);
            for (int j = 0; j < k && j < 16; j++) {
                ck_assert_uint_ge(idx[j], 1);
                ck_assert_uint_lt(idx[j], argc);
            }
        }
    }
}
END_TEST

/* --- arity ----------------------------------------------------------------- */

START_TEST(test_arity)
{
    const rd_command_t *get = must_find("get"), *set = must_find("set");

    ck_assert(rd_command_arity_ok(get, 2));
    ck_assert(!rd_command_arity_ok(get, 1));
    ck_assert(!rd_command_arity_ok(get, 3));
    ck_assert(!rd_command_arity_ok(set, 2));
    ck_assert(rd_command_arity_ok(set, 3));
    ck_assert(rd_command_arity_ok(set, 30));
    ck_keys("GET", "error");
    ck_keys("GET a b", "error");
    ck_keys("SET a", "error");
    ck_keys("MGET", "error");
    ck_keys("CLIENT SETNAME", "error");
    ck_keys("CLIENT SETNAME a b", "error");
    ck_keys("EVAL s", "error");
}
END_TEST

/* --- key positions ------------------------------------------------------- */

START_TEST(test_keys_get_set)
{
    ck_keys("GET a", "1");
    ck_keys("SET a v", "1");
    ck_keys("SET a v EX 10 GET", "1");
    ck_keys("GETEX a PERSIST", "1");
}
END_TEST

START_TEST(test_keys_mget_del)
{
    ck_keys("MGET a", "1");
    ck_keys("MGET a b c", "1 2 3");
    ck_keys("DEL a b c d", "1 2 3 4");
    ck_keys("EXISTS a a", "1 2");              /* not de-duplicated */
    ck_keys("UNLINK a", "1");
}
END_TEST

START_TEST(test_keys_mset_step_two)
{
    ck_keys("MSET a 1 b 2 c 3", "1 3 5");
    ck_keys("MSETNX a 1 b 2", "1 3");
    /* an odd count is Redis's error to give; the spec still names 1, 3 */
    ck_keys("MSET a 1 b", "1 3");
}
END_TEST

START_TEST(test_keys_eval_numkeys)
{
    ck_keys("EVAL s 0", "");
    ck_keys("EVAL s 0 arg1 arg2", "");
    ck_keys("EVAL s 2 a b arg", "3 4");
    ck_keys("EVAL s 1 a", "3");
    ck_keys("EVALSHA sha 1 a arg", "3");
    ck_keys("EVAL_RO s 2 a b", "3 4");
    ck_keys("EVALSHA_RO sha 0", "");
}
END_TEST

START_TEST(test_keys_eval_numkeys_malformed)
{
    ck_keys("EVAL s 3 a b", "error");          /* more keys than arguments */
    ck_keys("EVAL s 99999999999999999999 a", "error");
    ck_keys("EVAL s x a b", "error");          /* not a number */
    ck_keys("EVAL s -1 a", "error");
    ck_keys("EVAL s 01 a", "error");           /* string2ll's strictness */
    ck_keys("EVAL s +1 a", "error");
    ck_keys("EVAL s \"\" a", "error");
    ck_keys("EVALSHA sha two a b", "error");
}
END_TEST

START_TEST(test_keys_zunionstore_dest_and_numkeys)
{
    ck_keys("ZUNIONSTORE d 2 a b", "1 3 4");
    ck_keys("ZUNIONSTORE d 2 a b WEIGHTS 1 2 AGGREGATE MAX", "1 3 4");
    ck_keys("ZINTERSTORE d 1 a", "1 3");
    ck_keys("ZDIFFSTORE d 2 a b", "1 3 4");
    ck_keys("ZUNIONSTORE d 3 a b", "error");
    /* numkeys 0: the destination only; Redis refuses the command itself */
    ck_keys("ZUNIONSTORE d 0 a", "1");
    ck_keys("ZUNION 2 a b WITHSCORES", "2 3");
}
END_TEST

START_TEST(test_keys_intercard)
{
    ck_keys("ZINTERCARD 2 a b", "2 3");
    ck_keys("ZINTERCARD 2 a b LIMIT 5", "2 3");
    ck_keys("SINTERCARD 3 a b c", "2 3 4");
    ck_keys("SINTERCARD 1 a LIMIT 1", "2");
    ck_keys("SINTERCARD 4 a b", "error");
    ck_keys("SINTERCARD x a", "error");
}
END_TEST

START_TEST(test_keys_xread_streams)
{
    ck_keys("XREAD STREAMS a 0", "2");
    ck_keys("XREAD COUNT 2 STREAMS a b 0 0", "4 5");
    ck_keys("XREAD BLOCK 0 COUNT 1 STREAMS a b c 0 0 0", "6 7 8");
    /* a stream named "streams": the first STREAMS is the keyword */
    ck_keys("XREAD STREAMS streams 0", "2");
    ck_keys("xread streams a 0", "2");
    /* a key without its ID: half of one argument is no key */
    ck_keys("XREAD COUNT 1 STREAMS a", "error");
    /* the last argument is never taken for the keyword (no key could
     * follow it), so the spec finds nothing; XREAD itself will refuse */
    ck_keys("XREAD COUNT 1 STREAMS", "");
}
END_TEST

START_TEST(test_keys_xreadgroup)
{
    ck_keys("XREADGROUP GROUP g c STREAMS a 0", "5");
    ck_keys("XREADGROUP GROUP g c COUNT 1 NOACK STREAMS a b > >", "8 9");
    /* the search starts at argv[4]: a group named "streams" is no keyword */
    ck_keys("XREADGROUP GROUP streams c STREAMS a >", "5");
}
END_TEST

START_TEST(test_keys_migrate)
{
    ck_keys("MIGRATE host 6379 a 0 5000", "3");
    ck_keys("MIGRATE host 6379 a 0 5000 COPY REPLACE", "3");
    ck_keys("MIGRATE host 6379 \"\" 0 5000 KEYS a b c", "7 8 9");
    ck_keys("MIGRATE host 6379 \"\" 0 5000 COPY KEYS a", "8");
    /* a password "keys" is skipped; a key named KEYS is a key */
    ck_keys("MIGRATE host 6379 \"\" 0 5000 AUTH keys KEYS a b", "9 10");
    ck_keys("MIGRATE host 6379 \"\" 0 5000 AUTH2 u keys KEYS a", "10");
    ck_keys("MIGRATE host 6379 \"\" 0 5000 KEYS a KEYS b", "7 8 9");
    /* KEYS with a non-empty key argument: Redis's syntax error, no keys */
    ck_keys("MIGRATE host 6379 x 0 5000 KEYS a", "");
    /* Redis marks the KEYS spec incomplete; our finder covers it */
    const rd_command_t *c = must_find("migrate");
    ck_assert_uint_ne(c->specs[1].flags & RD_KS_INCOMPLETE, 0);
    ck_assert(rd_command_keys_exact(c));
}
END_TEST

START_TEST(test_keys_sort_store)
{
    /* Redis 7's SORT specs: the sorted key by index, then two "unknown"
     * specs (BY/GET patterns, STORE anywhere); keys come from our finder */
    const rd_command_t *c = must_find("sort");
    ck_assert_uint_eq(c->nspecs, 3);
    ck_assert_int_eq(c->specs[0].bs_type, RD_BS_INDEX);
    ck_assert_int_eq(c->specs[1].bs_type, RD_BS_UNKNOWN);
    ck_assert_int_eq(c->specs[2].bs_type, RD_BS_UNKNOWN);
    ck_assert_uint_ne(c->specs[2].flags & RD_KS_OW, 0);
    ck_assert(rd_command_keys_exact(c));
    ck_keys("SORT a", "1");
    ck_keys("SORT a ALPHA DESC", "1");
    ck_keys("SORT a STORE d", "1 3");
    ck_keys("SORT a BY w_* GET g_* GET # STORE d", "1 9");
    ck_keys("SORT a LIMIT 0 10 ALPHA STORE d", "1 7");
    ck_keys("SORT a STORE d1 STORE d2", "1 5");    /* the last STORE counts */
    ck_keys("SORT a GET store STORE d", "1 5");    /* a GET pattern "store" */
    ck_keys("SORT_RO a BY w_* GET g_*", "1");
    ck_assert(rd_command_keys_exact(must_find("sort_ro")));
}
END_TEST

START_TEST(test_keys_sort_flags)
{
    req_t r;
    size_t idx[4];
    uint32_t kf[4];

    req_parse(&r, "SORT a STORE d");
    int n = rd_command_keys_ex(must_find("sort"), r.argc, r.argv, 0, idx, kf, 4);
    ck_assert_int_eq(n, 2);
    ck_assert_uint_eq(kf[0], RD_KS_RO | RD_KS_ACCESS);
    ck_assert_uint_eq(kf[1], RD_KS_OW | RD_KS_UPDATE);
}
END_TEST

START_TEST(test_keys_georadius_store)
{
    ck_keys("GEORADIUS a 0 0 1 km", "1");
    ck_keys("GEORADIUS a 0 0 1 km WITHDIST COUNT 5", "1");
    ck_keys("GEORADIUS a 0 0 1 km STORE d", "1 7");
    ck_keys("GEORADIUS a 0 0 1 km STOREDIST d", "1 7");
    /* both: each spec finds its own keyword (GEORADIUS writes the last;
     * see RD_KEYS_TOUCHED) */
    ck_keys("GEORADIUS a 0 0 1 km STORE d STOREDIST e", "1 7 9");
    ck_keys("GEORADIUSBYMEMBER a m 1 km STORE d", "1 6");
    ck_keys("GEORADIUS_RO a 0 0 1 km", "1");
    ck_keys("GEOSEARCHSTORE d a FROMMEMBER m BYRADIUS 1 km", "1 2");
}
END_TEST

START_TEST(test_keys_object_and_container_subcommands)
{
    ck_keys("OBJECT ENCODING a", "2");
    ck_keys("object freq a", "2");
    ck_keys("OBJECT HELP", "");
    ck_keys("MEMORY USAGE a SAMPLES 5", "2");
    ck_keys("XINFO STREAM a FULL", "2");
    ck_keys("XGROUP CREATE a g $ MKSTREAM", "2");
    ck_keys("CLIENT SETNAME app", "");
}
END_TEST

START_TEST(test_keys_bitop)
{
    ck_keys("BITOP AND d a b", "2 3 4");
    ck_keys("BITOP NOT d a", "2 3");
    ck_keys("BITCOUNT a 0 -1", "1");
}
END_TEST

START_TEST(test_keys_mpop_numkeys)
{
    ck_keys("LMPOP 2 a b LEFT", "2 3");
    ck_keys("LMPOP 1 a RIGHT COUNT 3", "2");
    ck_keys("ZMPOP 2 a b MIN", "2 3");
    ck_keys("BLMPOP 0 2 a b LEFT", "3 4");
    ck_keys("BZMPOP 1.5 1 a MAX COUNT 2", "3");
    ck_keys("LMPOP 3 a b", "error");
    ck_keys("BLMPOP 0 x a LEFT", "error");
}
END_TEST

START_TEST(test_keys_fcall)
{
    ck_keys("FCALL f 0", "");
    ck_keys("FCALL f 2 a b arg", "3 4");
    ck_keys("FCALL_RO f 1 a", "3");
    ck_keys("FCALL f 2 a", "error");
}
END_TEST

START_TEST(test_keys_none)
{
    ck_keys("PING", "");
    ck_keys("PING hello", "");
    ck_keys("ECHO hello", "");
    ck_keys("DBSIZE", "");
    ck_keys("KEYS *", "");
    ck_keys("FLUSHALL ASYNC", "");
    ck_keys("PUBLISH ch msg", "");
}
END_TEST

START_TEST(test_keys_two_key_and_blocking)
{
    ck_keys("RENAME a b", "1 2");
    ck_keys("SMOVE a b m", "1 2");
    ck_keys("LMOVE a b LEFT RIGHT", "1 2");
    ck_keys("BLPOP a b c 0", "1 2 3");       /* lastkey -2: not the timeout */
    ck_keys("COPY a b DB 1 REPLACE", "1 2");
    ck_keys("PFMERGE d a b", "1 2 3");
}
END_TEST

START_TEST(test_keys_shard_channels_are_not_keys)
{
    ck_keys("SSUBSCRIBE a b", "");
    ck_assert_str_eq(keys_ex("SSUBSCRIBE a b", RD_KEYS_NOT_KEYS), "1 2");
    ck_assert_str_eq(keys_ex("SPUBLISH ch msg", RD_KEYS_NOT_KEYS), "1");
    /* unsubscribe from every channel: an empty "rest of the arguments" */
    ck_assert_str_eq(keys_ex("SUNSUBSCRIBE", RD_KEYS_NOT_KEYS), "");
    ck_assert_str_eq(keys_ex("SUNSUBSCRIBE a", RD_KEYS_NOT_KEYS), "1");
}
END_TEST

START_TEST(test_keys_count_beyond_max)
{
    req_t r;
    size_t idx[3] = { 0, 0, 99 };

    req_parse(&r, "MGET a b c d e");
    const rd_command_t *c = rd_command_lookup(r.argc, r.argv);
    ck_assert_int_eq(rd_command_keys(c, r.argc, r.argv, idx, 2), 5);
    ck_assert_uint_eq(idx[0], 1);
    ck_assert_uint_eq(idx[1], 2);
    ck_assert_uint_eq(idx[2], 99);            /* nothing past max */
    ck_assert_int_eq(rd_command_keys(c, r.argc, r.argv, NULL, 0), 5);
}
END_TEST

START_TEST(test_keys_flags_per_key)
{
    req_t r;
    size_t idx[4];
    uint32_t kf[4];

    req_parse(&r, "ZUNIONSTORE d 2 a b");
    const rd_command_t *c = rd_command_lookup(r.argc, r.argv);
    ck_assert_int_eq(rd_command_keys_ex(c, r.argc, r.argv, 0, idx, kf, 4), 3);
    ck_assert_uint_eq(kf[0], RD_KS_OW | RD_KS_UPDATE);
    ck_assert_uint_eq(kf[1], RD_KS_RO | RD_KS_ACCESS);
    ck_assert_uint_eq(kf[2], RD_KS_RO | RD_KS_ACCESS);

    req_parse(&r, "DEL a");
    c = rd_command_lookup(r.argc, r.argv);
    ck_assert_int_eq(rd_command_keys_ex(c, r.argc, r.argv, 0, idx, kf, 4), 1);
    ck_assert_uint_eq(kf[0], RD_KS_RM | RD_KS_DELETE);

    /* SET's flags vary with GET; the spec states the worst case */
    ck_assert_uint_eq(must_find("set")->specs[0].flags,
                      RD_KS_RW | RD_KS_ACCESS | RD_KS_UPDATE | RD_KS_VARIABLE_FLAGS);
}
END_TEST

/* Redis walks MIGRATE's specs first and asks migrateGetKeys only when the
 * walk fails: KEYS found by the backward search (from argv[argc-2]) fails
 * it, being incomplete; no KEYS, or KEYS last, leaves argv[3]. */
START_TEST(test_keys_migrate_walk_first)
{
    ck_keys("MIGRATE host 6379 \"\" 0 5000", "3");
    ck_keys("MIGRATE host 6379 \"\" 0 5000 KEYS", "3");
    ck_keys("MIGRATE host 6379 a 0 5000 COPY AUTH2 u p KEYS", "3");
    ck_keys("MIGRATE host 6379 \"\" 0 5000 KEYS a", "7");
    ck_keys("MIGRATE host 6379 \"\" 0 5000 AUTH KEYS", "3");
}
END_TEST

/* PFMERGE dst with no source: Redis's walk gives up on the empty range of
 * sources and names nothing (COMMAND GETKEYS: "Invalid arguments"), but
 * PFMERGE creates dst; we name it. */
START_TEST(test_keys_pfmerge_no_source)
{
    ck_keys("PFMERGE d", "1");
    ck_keys("PFMERGE d a b", "1 2 3");
}
END_TEST

#define ck_touched(line, expected) \
    ck_assert_str_eq(keys_ex(line, RD_KEYS_TOUCHED), (expected))

/* RD_KEYS_TOUCHED: GEORADIUS writes the last STORE/STOREDIST, the specs
 * find the first of each; every occurrence is returned after them. */
START_TEST(test_touched_georadius_every_store)
{
    ck_keys("GEORADIUS a 0 0 1 km STORE d STORE e", "1 7");
    ck_touched("GEORADIUS a 0 0 1 km STORE d STORE e", "1 7 9");
    ck_touched("GEORADIUS a 0 0 1 km STOREDIST d STOREDIST e", "1 7 9");
    ck_touched("GEORADIUS a 0 0 1 km STORE d STOREDIST e", "1 7 9");
    /* "STORE storedist STOREDIST b" writes b: the STOREDIST spec's first
     * hit is the word "storedist" */
    ck_keys("GEORADIUS a 0 0 1 km STORE storedist STOREDIST b", "1 7 8");
    ck_touched("GEORADIUS a 0 0 1 km STORE storedist STOREDIST b", "1 7 8 9");
    ck_touched("GEORADIUS a 0 0 1 km STORE STORE STORE b", "1 7 8 9");
    ck_touched("GEORADIUSBYMEMBER a m 1 km STORE d STORE e", "1 6 8");
    /* nothing more to find: the plain answer */
    ck_touched("GEORADIUS a 0 0 1 km STORE d", "1 7");
    ck_touched("GEORADIUS a 0 0 1 km WITHDIST", "1");
    ck_touched("GEORADIUS a 0 0 1 km STORE d STORE", "1 7");

    req_t r;
    size_t idx[4];
    uint32_t kf[4];
    req_parse(&r, "GEORADIUS a 0 0 1 km STORE d STORE e");
    ck_assert_int_eq(rd_command_keys_ex(must_find("georadius"), r.argc, r.argv,
                                        RD_KEYS_TOUCHED, idx, kf, 4), 3);
    ck_assert_uint_eq(kf[1], kf[2]);
    ck_assert_uint_ne(kf[2] & RD_KS_OW, 0);
}
END_TEST

/* XREADGROUP's STREAMS search starts at argv[4]; with GROUP after COUNT a
 * consumer or group named "streams" is taken for the keyword. */
START_TEST(test_touched_xreadgroup_streams_name)
{
    ck_keys("XREADGROUP COUNT 1 GROUP g streams STREAMS s >", "6");
    ck_touched("XREADGROUP COUNT 1 GROUP g streams STREAMS s >", "6 7");
    ck_keys("XREADGROUP COUNT 1 GROUP streams c STREAMS s >", "5 6");
    ck_touched("XREADGROUP COUNT 1 GROUP streams c STREAMS s >", "5 6 7");
    ck_touched("XREADGROUP NOACK GROUP g streams STREAMS a b > >", "5 6 6 7");
    ck_touched("XREADGROUP GROUP g c STREAMS a b > >", "5 6");
    ck_touched("XREAD COUNT 1 STREAMS a b 0 0", "4 5");
}
END_TEST

/* SORT: Redis's procedure does not skip STORE's own argument, so in
 * "STORE get STORE d" it skips the second STORE as GET's pattern. */
START_TEST(test_touched_sort_every_store)
{
    ck_keys("SORT a STORE get STORE d", "1 3");
    ck_touched("SORT a STORE get STORE d", "1 3 5");
    ck_keys("SORT a STORE limit STORE d", "1 3");
    ck_touched("SORT a STORE limit STORE d", "1 3 5");
    ck_touched("SORT a STORE d1 STORE d2", "1 3 5");
    ck_touched("SORT a BY w_* GET g_* STORE d", "1 7");
    ck_touched("SORT a STORE", "1");
    ck_touched("SORT a", "1");
    ck_touched("SORT_RO a BY w_* GET g_*", "1");
    ck_touched("MIGRATE host 6379 \"\" 0 5000 KEYS a b", "7 8");
}
END_TEST

/* DEBUG has no key specs; the subcommands that read a key name it. */
START_TEST(test_touched_debug_keys)
{
    ck_keys("DEBUG OBJECT a", "");
    ck_touched("DEBUG OBJECT a", "2");
    ck_touched("debug sdslen a", "2");
    ck_touched("DEBUG QUICKLIST a 1", "2");
    ck_touched("DEBUG DIGEST-VALUE a b c", "2 3 4");
    ck_touched("DEBUG DIGEST-VALUE", "");
    ck_touched("DEBUG OBJECT", "");
    ck_touched("DEBUG SLEEP 0", "");
    ck_touched("DEBUG HTSTATS 0", "");
}
END_TEST

/* Malformed stays malformed, and every row's plain keys come first. */
START_TEST(test_touched_keeps_plain_answer)
{
    ck_touched("EVAL s 3 a b", "error");
    ck_touched("XREAD STREAMS a", "error");
    ck_touched("GET", "error");
    ck_touched("EVAL s 2 a b c", "3 4");
    ck_touched("MSET a 1 b 2", "1 3");

    size_t n;
    const rd_command_t *t = rd_command_table(&n);
    const char *words[] = { "1", "STORE", "streams", "keys", "2", "STREAMS" };
    rd_str_t argv[12];
    size_t plain[32], touched[32];

    for (size_t i = 0; i < n; i++) {
        size_t min = (size_t)abs(t[i].arity);
        for (size_t argc = min; argc < min + 5 && argc <= 12; argc++) {
            for (size_t a = 0; a < argc; a++) {
                argv[a] = RD_STR(words[(a * 7 + argc + i) % rd_countof(words)]);
            }
            int k = rd_command_keys(&t[i], argc, argv, plain, 32);
            int kt = rd_command_keys_ex(&t[i], argc, argv, RD_KEYS_TOUCHED,
                                        touched, NULL, 32);
            ck_assert_msg((k < 0) == (kt < 0), "%s", t[i].name);
            ck_assert_msg(kt >= k, "%s", t[i].name);
            if (strcmp(t[i].name, "sort") == 0) {
                continue;       /* every STORE, not the last one */
            }
            for (int j = 0; j < k && j < 32; j++) {
                ck_assert_msg(plain[j] == touched[j], "%s", t[i].name);
            }
            for (int j = 0; j < kt && j < 32; j++) {
                ck_assert_uint_ge(touched[j], 1);
                ck_assert_uint_lt(touched[j], argc);
            }
        }
    }
}
END_TEST

/* A spec nobody can follow, on a command without a hand-written finder:
 * the other specs still give their keys and the row says it is inexact. */
START_TEST(test_keys_inexact_spec_without_finder)
{
    rd_command_t fake = {
        .name = "fake", .arity = -2, .nspecs = 2,
        .specs = {
            { .flags = RD_KS_RO | RD_KS_ACCESS,
              .bs_type = RD_BS_INDEX, .bs.index = 1,
              .fk_type = RD_FK_RANGE, .fk.range = { 0, 1, 0 } },
            { .flags = RD_KS_RW, .bs_type = RD_BS_UNKNOWN,
              .fk_type = RD_FK_UNKNOWN },
        },
    };
    req_t r;
    size_t idx[4];

    req_parse(&r, "FAKE a b c");
    ck_assert(!rd_command_keys_exact(&fake));
    ck_assert_int_eq(rd_command_keys(&fake, r.argc, r.argv, idx, 4), 1);
    ck_assert_uint_eq(idx[0], 1);
    ck_assert(rd_command_keys_exact(must_find("get")));
}
END_TEST

/* --- categories, flags, tips ------------------------------------------- */

START_TEST(test_categories_get_set)
{
    const rd_command_t *get = must_find("get"), *set = must_find("set");

    ck_assert_uint_eq(get->acl, RD_CAT_READ | RD_CAT_STRING | RD_CAT_FAST);
    ck_assert_uint_eq(set->acl & RD_CAT_WRITE, RD_CAT_WRITE);
    ck_assert_uint_eq(set->acl & RD_CAT_READ, 0);
    ck_assert_uint_eq(set->acl & RD_CAT_STRING, RD_CAT_STRING);
}
END_TEST

START_TEST(test_categories_dangerous)
{
    const rd_command_t *flushall = must_find("flushall"), *k = must_find("keys");

    ck_assert_uint_eq(flushall->acl, RD_CAT_KEYSPACE | RD_CAT_WRITE
                                     | RD_CAT_SLOW | RD_CAT_DANGEROUS);
    ck_assert_uint_eq(k->acl, RD_CAT_KEYSPACE | RD_CAT_READ | RD_CAT_SLOW
                              | RD_CAT_DANGEROUS);
    ck_assert_uint_ne(must_find("config|set")->acl & RD_CAT_ADMIN, 0);
    ck_assert_uint_ne(must_find("eval")->acl & RD_CAT_SCRIPTING, 0);
    ck_assert_uint_ne(must_find("multi")->acl & RD_CAT_TRANSACTION, 0);
}
END_TEST

START_TEST(test_command_flags)
{
    ck_assert_uint_eq(must_find("get")->flags, RD_CMD_READONLY | RD_CMD_FAST);
    ck_assert_uint_eq(must_find("set")->flags, RD_CMD_WRITE | RD_CMD_DENYOOM);
    ck_assert_uint_eq(must_find("flushall")->flags & RD_CMD_WRITE, RD_CMD_WRITE);
    ck_assert_uint_ne(must_find("blpop")->flags & RD_CMD_BLOCKING, 0);
    ck_assert_uint_ne(must_find("eval")->flags & RD_CMD_MOVABLEKEYS, 0);
    ck_assert_uint_ne(must_find("auth")->flags & RD_CMD_NO_AUTH, 0);
    ck_assert_uint_ne(must_find("subscribe")->flags & RD_CMD_PUBSUB, 0);
    ck_assert_uint_eq(must_find("get")->flags & RD_CMD_WRITE, 0);
}
END_TEST

START_TEST(test_tips_request_response_policy)
{
    ck_assert_uint_eq(must_find("mget")->tips, RD_TIP_REQ_MULTI_SHARD);
    ck_assert_uint_eq(must_find("dbsize")->tips,
                      RD_TIP_REQ_ALL_SHARDS | RD_TIP_RESP_AGG_SUM);
    ck_assert_uint_eq(must_find("keys")->tips,
                      RD_TIP_REQ_ALL_SHARDS | RD_TIP_NONDETERMINISTIC_OUTPUT_ORDER);
    ck_assert_uint_eq(must_find("del")->tips,
                      RD_TIP_REQ_MULTI_SHARD | RD_TIP_RESP_AGG_SUM);
    ck_assert_uint_ne(must_find("script|load")->tips & RD_TIP_REQ_ALL_NODES, 0);
    ck_assert_uint_eq(must_find("get")->tips, 0);
}
END_TEST

START_TEST(test_acl_category_names)
{
    ck_assert_uint_eq(rd_acl_category("@read"), RD_CAT_READ);
    ck_assert_uint_eq(rd_acl_category("read"), RD_CAT_READ);
    ck_assert_uint_eq(rd_acl_category("@DANGEROUS"), RD_CAT_DANGEROUS);
    ck_assert_uint_eq(rd_acl_category("sortedset"), RD_CAT_SORTEDSET);
    ck_assert_uint_eq(rd_acl_category("@all"), RD_CAT_ALL);
    ck_assert_uint_eq(rd_acl_category("@nope"), 0);
    ck_assert_uint_eq(rd_acl_category(""), 0);
    ck_assert_uint_eq(rd_acl_category("@"), 0);
    for (int bit = 0; bit < RD_CAT_COUNT; bit++) {
        const char *name = rd_acl_category_name(bit);
        ck_assert_ptr_nonnull(name);
        ck_assert_uint_eq(rd_acl_category(name), UINT64_C(1) << bit);
    }
    ck_assert_str_eq(rd_acl_category_name(1), "read");
    ck_assert_ptr_null(rd_acl_category_name(-1));
    ck_assert_ptr_null(rd_acl_category_name(RD_CAT_COUNT));
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("command");
    TCase *tc = tcase_create("command");

    tcase_add_test(tc, test_lookup_ignores_case);
    tcase_add_test(tc, test_lookup_unknown_is_null);
    tcase_add_test(tc, test_lookup_subcommand);
    tcase_add_test(tc, test_lookup_unknown_subcommand_gives_container);
    tcase_add_test(tc, test_lookup_plain_command_ignores_argv1);
    tcase_add_test(tc, test_find_by_full_name);
    tcase_add_test(tc, test_table_sorted_unique_and_consistent);
    tcase_add_test(tc, test_every_row_gives_sane_positions);
    tcase_add_test(tc, test_arity);
    tcase_add_test(tc, test_keys_get_set);
    tcase_add_test(tc, test_keys_mget_del);
    tcase_add_test(tc, test_keys_mset_step_two);
    tcase_add_test(tc, test_keys_eval_numkeys);
    tcase_add_test(tc, test_keys_eval_numkeys_malformed);
    tcase_add_test(tc, test_keys_zunionstore_dest_and_numkeys);
    tcase_add_test(tc, test_keys_intercard);
    tcase_add_test(tc, test_keys_xread_streams);
    tcase_add_test(tc, test_keys_xreadgroup);
    tcase_add_test(tc, test_keys_migrate);
    tcase_add_test(tc, test_keys_sort_store);
    tcase_add_test(tc, test_keys_sort_flags);
    tcase_add_test(tc, test_keys_georadius_store);
    tcase_add_test(tc, test_keys_object_and_container_subcommands);
    tcase_add_test(tc, test_keys_bitop);
    tcase_add_test(tc, test_keys_mpop_numkeys);
    tcase_add_test(tc, test_keys_fcall);
    tcase_add_test(tc, test_keys_none);
    tcase_add_test(tc, test_keys_two_key_and_blocking);
    tcase_add_test(tc, test_keys_shard_channels_are_not_keys);
    tcase_add_test(tc, test_keys_count_beyond_max);
    tcase_add_test(tc, test_keys_flags_per_key);
    tcase_add_test(tc, test_keys_inexact_spec_without_finder);
    tcase_add_test(tc, test_keys_migrate_walk_first);
    tcase_add_test(tc, test_keys_pfmerge_no_source);
    tcase_add_test(tc, test_touched_georadius_every_store);
    tcase_add_test(tc, test_touched_xreadgroup_streams_name);
    tcase_add_test(tc, test_touched_sort_every_store);
    tcase_add_test(tc, test_touched_debug_keys);
    tcase_add_test(tc, test_touched_keeps_plain_answer);
    tcase_add_test(tc, test_categories_get_set);
    tcase_add_test(tc, test_categories_dangerous);
    tcase_add_test(tc, test_command_flags);
    tcase_add_test(tc, test_tips_request_response_policy);
    tcase_add_test(tc, test_acl_category_names);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

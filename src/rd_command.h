/*
 * rd_command.h - the Redis command table: arity, flags, ACL categories,
 * routing tips and key positions of every command redoubt knows.
 *
 * The rows live in rd_commands.def, which contrib/gen-commands.py writes
 * from a real redis-server's COMMAND INFO (never edit it by hand). The table
 * has one row per command and one per subcommand ("client|setname"), sorted
 * by name with strcmp, names in lower case.
 *
 * Contract:
 *
 *  - rd_command_lookup() finds the row for a request, case-insensitively.
 *    For a container command (CLIENT, CONFIG, SCRIPT, ...) it returns the
 *    subcommand's row when argv[1] names a known subcommand, else the
 *    container's own row (whose arity, -2, lets the caller answer "unknown
 *    subcommand" or "wrong number of arguments" as Redis would). It returns
 *    NULL for an unknown command. It does not check the arity.
 *
 *  - rd_command_arity_ok() applies Redis's arity rule: a positive arity is
 *    the exact argc, a negative one the minimum (both count the name).
 *
 *  - rd_command_keys() returns the argv positions of the keys, following
 *    the row's key specifications the way Redis's getKeysUsingKeySpecs()
 *    does: begin search by index or by keyword (forwards from startfrom, or
 *    backwards from argc+startfrom when it is negative), then find keys by
 *    range (lastkey relative to the first key, or from the end when
 *    negative, or a 1/limit share of the remaining arguments) or by keynum
 *    (the count read from an argument). Keys are in spec order and are not
 *    de-duplicated; specs flagged RD_KS_NOT_KEY (SSUBSCRIBE's shard
 *    channels) are skipped unless rd_command_keys_ex() is given
 *    RD_KEYS_NOT_KEYS. It returns the number of keys, which may exceed
 *    max: only the first max positions are written, so a caller with a
 *    small array calls again with a bigger one. It returns -1 when argc
 *    breaks the arity, when a key count is not a non-negative integer or
 *    names more keys than there are arguments, and when a spec points past
 *    the arguments (XREAD ... STREAMS a, a key without its ID): Redis answers
 *    those itself with an error, so a caller may forward the command or
 *    refuse it, but must not guess keys.
 *
 *    Where Redis's walk fails, COMMAND GETKEYS (and Redis's ACL and
 *    cluster routing) fall back to the command's own getkeys procedure.
 *    We do so for SORT, SORT_RO and MIGRATE, whose specs are "unknown" or
 *    "incomplete": their walk fails on an unknown spec, or on an
 *    incomplete one whose keyword is there (MIGRATE ... KEYS k: with the
 *    keyword absent, or last, the walk's argv[3] stands, as in Redis). Any
 *    other command with such a spec (none in Redis 7.0) gets the keys the
 *    complete specs give; rd_command_keys_exact() says false for it so a
 *    key rule can refuse it rather than trust a partial answer.
 *
 *    Departures from Redis, all deliberate (t/integration/t_getkeys.sh
 *    checks each against a real redis-server):
 *      * A malformed count is -1 here, where Redis's fallback procedures
 *        read it with atoi: COMMAND GETKEYS EVAL s 01 k names k, and EVAL
 *        itself refuses "01".
 *      * A keynum of 0 (EVAL script 0), and a range of "all remaining
 *        arguments" when none remain, yield no keys from that spec where
 *        Redis's walk gives up and asks the getkeys procedure, which
 *        answers "no keys" for them too. The command's other specs still
 *        count: ZUNIONSTORE dst 0 gives the destination (Redis then
 *        refuses the command itself), and PFMERGE dst, with no source,
 *        gives dst, which PFMERGE creates, though COMMAND GETKEYS (with no
 *        procedure to ask) names no key at all. SUNSUBSCRIBE with no
 *        channel gives none (with RD_KEYS_NOT_KEYS).
 *
 *    What COMMAND GETKEYS names is not always what the command touches:
 *    a keyword search takes the keyword's first occurrence, the command's
 *    own parser may take another one. RD_KEYS_TOUCHED asks for every key
 *    argument the command may touch: the keys above, followed by those
 *    every further occurrence of a begin-search keyword would give (where
 *    they fit the arguments), so it may repeat a position. It covers
 *      * GEORADIUS, GEORADIUSBYMEMBER ... STORE a STORE b (or STOREDIST):
 *        the last one is written, the spec finds the first;
 *      * XREADGROUP with GROUP after another option and a group or
 *        consumer named "streams" (XREADGROUP COUNT 1 GROUP g streams
 *        STREAMS s >): the spec's search from argv[4] takes the name for
 *        the keyword, the command reads s;
 *      * SORT ... STORE get STORE d: Redis's procedure skips a word after
 *        GET, BY and LIMIT, not after STORE, and names "get"; SORT writes
 *        d. Every argument after a STORE is returned;
 *      * DEBUG OBJECT, SDSLEN, LISTPACK, QUICKLIST, HTSTATS-KEY key and
 *        DIGEST-VALUE key...: no key specs, but they read those keys.
 *    It cannot name keys that no argument names: SORT's BY and GET
 *    patterns, scripts and functions (EVAL, FCALL), keyspace-wide
 *    commands (KEYS, SCAN, RANDOMKEY, FLUSHALL, SWAPDB, DEBUG POPULATE or
 *    RELOAD, ...); a caller refuses those by command. -1 stays -1.
 *
 *  - Categories: rd_acl_category("@read") and ("read") give the RD_CAT_*
 *    bit, "all" gives RD_CAT_ALL, anything else 0. rd_acl_category_name()
 *    maps a bit index (RD_CAT_READ == 1 << n gives "read" for n) back to
 *    the name without '@', or NULL.
 *
 * When Redis grows a flag, category, key-spec flag or tip, add a line below
 * (the generator reads this header and refuses names it does not find); a
 * new category also needs its name in rd_command.c (a static assertion
 * counts them).
 */
#ifndef RD_COMMAND_H
#define RD_COMMAND_H

#include "rd_core.h"

/* Command flags, as COMMAND INFO names them (lower case). */
#define RD_CMD_WRITE                  (UINT64_C(1) << 0)
#define RD_CMD_READONLY               (UINT64_C(1) << 1)
#define RD_CMD_DENYOOM                (UINT64_C(1) << 2)
#define RD_CMD_MODULE                 (UINT64_C(1) << 3)
#define RD_CMD_ADMIN                  (UINT64_C(1) << 4)
#define RD_CMD_PUBSUB                 (UINT64_C(1) << 5)
#define RD_CMD_NOSCRIPT               (UINT64_C(1) << 6)
#define RD_CMD_BLOCKING               (UINT64_C(1) << 7)
#define RD_CMD_LOADING                (UINT64_C(1) << 8)
#define RD_CMD_STALE                  (UINT64_C(1) << 9)
#define RD_CMD_SKIP_MONITOR           (UINT64_C(1) << 10)
#define RD_CMD_SKIP_SLOWLOG           (UINT64_C(1) << 11)
#define RD_CMD_ASKING                 (UINT64_C(1) << 12)
#define RD_CMD_FAST                   (UINT64_C(1) << 13)
#define RD_CMD_NO_AUTH                (UINT64_C(1) << 14)
#define RD_CMD_MAY_REPLICATE          (UINT64_C(1) << 15)
#define RD_CMD_SENTINEL               (UINT64_C(1) << 16)
#define RD_CMD_ONLY_SENTINEL          (UINT64_C(1) << 17)
#define RD_CMD_NO_MANDATORY_KEYS      (UINT64_C(1) << 18)
#define RD_CMD_PROTECTED              (UINT64_C(1) << 19)
#define RD_CMD_MODULE_GETKEYS         (UINT64_C(1) << 20)
#define RD_CMD_MODULE_NO_CLUSTER      (UINT64_C(1) << 21)
#define RD_CMD_NO_ASYNC_LOADING       (UINT64_C(1) << 22)
#define RD_CMD_NO_MULTI               (UINT64_C(1) << 23)
#define RD_CMD_MOVABLEKEYS            (UINT64_C(1) << 24)
#define RD_CMD_ALLOW_BUSY             (UINT64_C(1) << 25)
#define RD_CMD_MODULE_GETCHANNELS     (UINT64_C(1) << 26)
#define RD_CMD_TOUCHES_ARBITRARY_KEYS (UINT64_C(1) << 27)

/* ACL categories, in the order rd_acl_category_name() knows them. */
#define RD_CAT_KEYSPACE    (UINT64_C(1) << 0)
#define RD_CAT_READ        (UINT64_C(1) << 1)
#define RD_CAT_WRITE       (UINT64_C(1) << 2)
#define RD_CAT_SET         (UINT64_C(1) << 3)
#define RD_CAT_SORTEDSET   (UINT64_C(1) << 4)
#define RD_CAT_LIST        (UINT64_C(1) << 5)
#define RD_CAT_HASH        (UINT64_C(1) << 6)
#define RD_CAT_STRING      (UINT64_C(1) << 7)
#define RD_CAT_BITMAP      (UINT64_C(1) << 8)
#define RD_CAT_HYPERLOGLOG (UINT64_C(1) << 9)
#define RD_CAT_GEO         (UINT64_C(1) << 10)
#define RD_CAT_STREAM      (UINT64_C(1) << 11)
#define RD_CAT_PUBSUB      (UINT64_C(1) << 12)
#define RD_CAT_ADMIN       (UINT64_C(1) << 13)
#define RD_CAT_FAST        (UINT64_C(1) << 14)
#define RD_CAT_SLOW        (UINT64_C(1) << 15)
#define RD_CAT_BLOCKING    (UINT64_C(1) << 16)
#define RD_CAT_DANGEROUS   (UINT64_C(1) << 17)
#define RD_CAT_CONNECTION  (UINT64_C(1) << 18)
#define RD_CAT_TRANSACTION (UINT64_C(1) << 19)
#define RD_CAT_SCRIPTING   (UINT64_C(1) << 20)
#define RD_CAT_COUNT       21
/* "@all": every command has @fast or @slow, so this matches them all. */
#define RD_CAT_ALL         ((UINT64_C(1) << RD_CAT_COUNT) - 1)

/* Tips: cluster request and response policies and output determinism.
 * "request_policy:all_shards" is RD_TIP_REQ_ALL_SHARDS, and so on. */
#define RD_TIP_REQ_ALL_NODES                  (UINT32_C(1) << 0)
#define RD_TIP_REQ_ALL_SHARDS                 (UINT32_C(1) << 1)
#define RD_TIP_REQ_MULTI_SHARD                (UINT32_C(1) << 2)
#define RD_TIP_REQ_SPECIAL                    (UINT32_C(1) << 3)
#define RD_TIP_RESP_ONE_SUCCEEDED             (UINT32_C(1) << 4)
#define RD_TIP_RESP_ALL_SUCCEEDED             (UINT32_C(1) << 5)
#define RD_TIP_RESP_AGG_LOGICAL_AND           (UINT32_C(1) << 6)
#define RD_TIP_RESP_AGG_LOGICAL_OR            (UINT32_C(1) << 7)
#define RD_TIP_RESP_AGG_MIN                   (UINT32_C(1) << 8)
#define RD_TIP_RESP_AGG_MAX                   (UINT32_C(1) << 9)
#define RD_TIP_RESP_AGG_SUM                   (UINT32_C(1) << 10)
#define RD_TIP_RESP_SPECIAL                   (UINT32_C(1) << 11)
#define RD_TIP_NONDETERMINISTIC_OUTPUT        (UINT32_C(1) << 12)
#define RD_TIP_NONDETERMINISTIC_OUTPUT_ORDER  (UINT32_C(1) << 13)

/* Key-spec flags: how the command uses the keys the spec finds. */
#define RD_KS_RO             (UINT32_C(1) << 0)
#define RD_KS_RW             (UINT32_C(1) << 1)
#define RD_KS_OW             (UINT32_C(1) << 2)
#define RD_KS_RM             (UINT32_C(1) << 3)
#define RD_KS_ACCESS         (UINT32_C(1) << 4)
#define RD_KS_UPDATE         (UINT32_C(1) << 5)
#define RD_KS_INSERT         (UINT32_C(1) << 6)
#define RD_KS_DELETE         (UINT32_C(1) << 7)
#define RD_KS_NOT_KEY        (UINT32_C(1) << 8)
#define RD_KS_INCOMPLETE     (UINT32_C(1) << 9)
#define RD_KS_VARIABLE_FLAGS (UINT32_C(1) << 10)

#define RD_CMD_MAX_KEY_SPECS 4     /* the most any command has, plus room */
#define RD_CMD_NAME_MAX      64    /* "container|subcommand", with the NUL */

typedef enum {
    RD_BS_UNKNOWN = 0,
    RD_BS_INDEX,               /* bs.index: the first key's argv position */
    RD_BS_KEYWORD              /* bs.keyword: the first key follows it */
} rd_begin_search_t;

typedef enum {
    RD_FK_UNKNOWN = 0,
    RD_FK_RANGE,               /* fk.range */
    RD_FK_KEYNUM               /* fk.keynum */
} rd_find_keys_t;

typedef struct {
    uint32_t           flags;  /* RD_KS_* */
    rd_begin_search_t  bs_type;
    union {
        int index;
        struct {
            const char *keyword;
            int         startfrom;  /* < 0: search backwards from the end */
        } keyword;
    } bs;
    rd_find_keys_t     fk_type;
    union {
        struct {
            int lastkey;       /* >= 0: relative to the first key; < 0: from the end */
            int keystep;
            int limit;         /* > 1: keys are 1/limit of the remaining args */
        } range;
        struct {
            int keynumidx;     /* the count's position, relative to the first key */
            int firstkey;      /* the first key's position, relative likewise */
            int keystep;
        } keynum;
    } fk;
} rd_key_spec_t;

typedef struct {
    const char   *name;        /* lower case, "container|sub" for subcommands */
    int           arity;
    uint64_t      flags;       /* RD_CMD_* */
    uint64_t      acl;         /* RD_CAT_* */
    uint32_t      tips;        /* RD_TIP_* */
    unsigned      subcommands; /* rows named "name|..." (containers only) */
    unsigned      nspecs;
    rd_key_spec_t specs[RD_CMD_MAX_KEY_SPECS];
} rd_command_t;

const rd_command_t *rd_command_lookup(size_t argc, const rd_str_t *argv);
/* The row for an exact (case-insensitive) name, "client|setname" form. */
const rd_command_t *rd_command_find(rd_str_t name);
bool rd_command_arity_ok(const rd_command_t *c, size_t argc);
int rd_command_keys(const rd_command_t *c, size_t argc, const rd_str_t *argv,
                    size_t *idx, size_t max);

/* Options for rd_command_keys_ex(). */
#define RD_KEYS_NOT_KEYS  0x1   /* also return RD_KS_NOT_KEY positions */
#define RD_KEYS_TOUCHED   0x2   /* every key argument it may touch (above) */

/* As rd_command_keys(), with options and, when kflags is not NULL, each
 * key's RD_KS_* flags in kflags[i] (for a spec with RD_KS_VARIABLE_FLAGS,
 * SET's and BITFIELD's, Redis's spec states the worst case, read-write). */
int rd_command_keys_ex(const rd_command_t *c, size_t argc,
                       const rd_str_t *argv, unsigned opts,
                       size_t *idx, uint32_t *kflags, size_t max);
/* False when some key spec is incomplete or unknown and no hand-written
 * procedure covers it: rd_command_keys() may then miss keys. */
bool rd_command_keys_exact(const rd_command_t *c);

/* The whole table, for listings and tests. */
const rd_command_t *rd_command_table(size_t *n);
/* The Redis version the table was generated from. */
const char *rd_command_table_version(void);

uint64_t rd_acl_category(const char *name);
const char *rd_acl_category_name(int bit);

#endif

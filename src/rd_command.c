/*
 * rd_command.c - look up commands and find their keys (see rd_command.h).
 *
 * The table is data generated from Redis (rd_commands.def); this file only
 * searches it and walks key specs. Lookup is a binary search on the
 * lower-cased name, so the table must stay sorted in strcmp order: the
 * generator sorts it, and a unit test checks it.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "rd_command.h"

static const rd_command_t rd_commands[] = {
#include "rd_commands.def"
};

static const char *const rd_cat_names[] = {
    "keyspace", "read", "write", "set", "sortedset", "list", "hash",
    "string", "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin",
    "fast", "slow", "blocking", "dangerous", "connection", "transaction",
    "scripting",
};

_Static_assert(rd_countof(rd_cat_names) == RD_CAT_COUNT,
               "one name per RD_CAT_* bit, in bit order");

/* --- lookup ---------------------------------------------------------- */

/* Order a NUL-terminated table name against a counted key byte by byte,
 * as strcmp would order two names (a key holding a NUL just never
 * matches). */
static int
rd_name_cmp(const char *name, const char *key, size_t len)
{
    size_t i;

    for (i = 0; i < len && name[i] != '\0'; i++) {
        unsigned char a = (unsigned char)name[i], b = (unsigned char)key[i];
        if (a != b) {
            return a < b ? -1 : 1;
        }
    }
    if (i == len) {
        return name[i] == '\0' ? 0 : 1;
    }
    return -1;
}

static const rd_command_t *
rd_command_search(const char *key, size_t len)
{
    size_t lo = 0, hi = rd_countof(rd_commands);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = rd_name_cmp(rd_commands[mid].name, key, len);
        if (cmp == 0) {
            return &rd_commands[mid];
        }
        if (cmp < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Append s, lower-cased, to buf at *len; false when it does not fit. */
static bool
rd_lower_append(char *buf, size_t *len, rd_str_t s)
{
    if (s.len > RD_CMD_NAME_MAX - 1 - *len) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.data[i];
        buf[(*len)++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    return true;
}

const rd_command_t *
rd_command_find(rd_str_t name)
{
    char buf[RD_CMD_NAME_MAX];
    size_t len = 0;

    if (!rd_lower_append(buf, &len, name)) {
        return NULL;
    }
    return rd_command_search(buf, len);
}

const rd_command_t *
rd_command_lookup(size_t argc, const rd_str_t *argv)
{
    char buf[RD_CMD_NAME_MAX];
    size_t len = 0;

    if (argc == 0 || !rd_lower_append(buf, &len, argv[0])) {
        return NULL;
    }
    const rd_command_t *c = rd_command_search(buf, len);
    if (c == NULL || c->subcommands == 0 || argc < 2) {
        return c;
    }
    buf[len++] = '|';
    if (rd_lower_append(buf, &len, argv[1])) {
        const rd_command_t *sub = rd_command_search(buf, len);
        if (sub != NULL) {
            return sub;
        }
    }
    return c;
}

bool
rd_command_arity_ok(const rd_command_t *c, size_t argc)
{
    if (c->arity >= 0) {
        return argc == (size_t)c->arity;
    }
    return argc >= (size_t)-(long)c->arity;
}

const rd_command_t *
rd_command_table(size_t *n)
{
    *n = rd_countof(rd_commands);
    return rd_commands;
}

const char *
rd_command_table_version(void)
{
    return RD_COMMANDS_REDIS_VERSION;
}

/* --- key extraction ---------------------------------------------------- */

/* Where found keys go: the caller's arrays, written up to max, while n
 * counts every key found. */
typedef struct {
    size_t   *idx;
    uint32_t *kflags;
    size_t    max;
    size_t    n;
} rd_keys_out_t;

static void
rd_keys_add(rd_keys_out_t *out, long pos, uint32_t flags)
{
    if (out->n < out->max) {
        out->idx[out->n] = (size_t)pos;
        if (out->kflags != NULL) {
            out->kflags[out->n] = flags;
        }
    }
    out->n++;
}

/* A key count as Redis's string2ll reads it: decimal digits, no sign, no
 * leading zero, no spaces. Negative counts are as malformed as words, and
 * so are counts of 19 digits or more, which no request can satisfy. */
static bool
rd_parse_count(rd_str_t s, long long *out)
{
    long long v = 0;

    if (s.len == 0 || s.len > 18 || (s.len > 1 && s.data[0] == '0')) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.data[i] < '0' || s.data[i] > '9') {
            return false;
        }
        v = v * 10 + (s.data[i] - '0');
    }
    *out = v;
    return true;
}

/* An argument equals a word, ignoring case on both sides (Redis's key
 * spec keywords are upper case, our own words lower case). */
static bool
rd_arg_is(rd_str_t s, const char *word)
{
    return strlen(word) == s.len && strncasecmp(s.data, word, s.len) == 0;
}

/* A spec Redis itself cannot follow to the end: "unknown" searches, or
 * "incomplete" results (a keyword that may also be a key's name). */
static bool
rd_spec_inexact(const rd_key_spec_t *ks)
{
    return ks->bs_type == RD_BS_UNKNOWN || ks->fk_type == RD_FK_UNKNOWN
           || (ks->flags & RD_KS_INCOMPLETE);
}

/* Where a keyword begin search starts: startfrom, or argc + startfrom
 * when it searches backwards. */
static long
rd_keyword_start(const rd_key_spec_t *ks, long argc)
{
    long from = ks->bs.keyword.startfrom;
    return from > 0 ? from : argc + from;
}

/* The first argument from i on that is the spec's keyword, as Redis
 * searches: forwards up to the second-last argument, or backwards down to
 * argument 2. 0 when there is none. */
static long
rd_keyword_next(const rd_key_spec_t *ks, long argc, const rd_str_t *argv,
                long i)
{
    if (ks->bs.keyword.startfrom > 0) {
        for (; i >= 1 && i < argc - 1; i++) {
            if (rd_arg_is(argv[i], ks->bs.keyword.keyword)) {
                return i;
            }
        }
    } else {
        for (; i >= 2 && i < argc; i--) {
            if (rd_arg_is(argv[i], ks->bs.keyword.keyword)) {
                return i;
            }
        }
    }
    return 0;
}

/* The first key's position by the spec's begin search; 0 when its keyword
 * is absent (the spec then gives no keys). */
static long
rd_spec_begin(const rd_key_spec_t *ks, long argc, const rd_str_t *argv)
{
    if (ks->bs_type == RD_BS_INDEX) {
        return ks->bs.index;
    }
    long k = rd_keyword_next(ks, argc, argv, rd_keyword_start(ks, argc));
    return k == 0 ? 0 : k + 1;
}

/* The last key's position and the step, from the first one (which a
 * keynum spec moves past the count). Returns false when the count is
 * malformed; the caller checks the positions against argc. */
static bool
rd_spec_find(const rd_key_spec_t *ks, long argc, const rd_str_t *argv,
             long *first, long *last, long *step)
{
    if (ks->fk_type == RD_FK_RANGE) {
        *step = ks->fk.range.keystep;
        if (ks->fk.range.lastkey >= 0) {
            *last = *first + ks->fk.range.lastkey;
        } else if (ks->fk.range.limit == 0) {
            *last = argc + ks->fk.range.lastkey;
        } else {
            *last = *first + ((argc - *first) / ks->fk.range.limit
                              + ks->fk.range.lastkey);
        }
        return true;
    }

    long long numkeys;
    long at = *first + ks->fk.keynum.keynumidx;
    *step = ks->fk.keynum.keystep;
    if (at < 1 || at >= argc || !rd_parse_count(argv[at], &numkeys) || numkeys > argc) {
        return false;
    }
    *first += ks->fk.keynum.firstkey;
    *last = *first + (long)numkeys - 1;
    return true;
}

/* Whether an empty result is an answer rather than a malformed request:
 * a count of 0 (EVAL script 0), or "all the remaining arguments" when none
 * remain (SUNSUBSCRIBE with no channel). See the header. */
static bool
rd_spec_may_be_empty(const rd_key_spec_t *ks)
{
    if (ks->fk_type == RD_FK_KEYNUM) {
        return true;
    }
    return ks->fk.range.lastkey < 0 && ks->fk.range.limit == 0;
}

/* The keys of one spec whose first key the begin search put at first,
 * into out: 0, or -1 (and nothing added) when the arguments are
 * malformed. */
static int
rd_spec_keys(const rd_key_spec_t *ks, long argc, const rd_str_t *argv,
             long first, rd_keys_out_t *out)
{
    long last, step;

    if (!rd_spec_find(ks, argc, argv, &first, &last, &step) || step < 1) {
        return -1;
    }
    if (last == first - 1 && rd_spec_may_be_empty(ks)) {
        return 0;
    }
    if (first >= argc || last >= argc || last < first) {
        return -1;
    }
    for (long i = first; i <= last; i += step) {
        rd_keys_add(out, i, ks->flags);
    }
    return 0;
}

static bool
rd_spec_skipped(const rd_key_spec_t *ks, unsigned opts)
{
    return (ks->flags & RD_KS_NOT_KEY) && !(opts & RD_KEYS_NOT_KEYS);
}

/* Walk the key specs into out: 0, or -1 when the arguments are malformed.
 * strict is Redis's own walk, for a command with a hand-written finder to
 * fall back on: an unknown spec, or an incomplete one whose keyword is
 * there, also fails it. Otherwise such specs are skipped and the others
 * give their keys. */
static int
rd_specs_walk(const rd_command_t *c, long argc, const rd_str_t *argv,
              unsigned opts, bool strict, rd_keys_out_t *out)
{
    for (unsigned i = 0; i < c->nspecs; i++) {
        const rd_key_spec_t *ks = &c->specs[i];
        if (rd_spec_skipped(ks, opts)) {
            continue;
        }
        if (ks->bs_type == RD_BS_UNKNOWN || ks->fk_type == RD_FK_UNKNOWN) {
            if (strict) {
                return -1;
            }
            continue;
        }
        long first = rd_spec_begin(ks, argc, argv);
        if (first == 0) {
            continue;
        }
        if (rd_spec_keys(ks, argc, argv, first, out) < 0
            || (strict && (ks->flags & RD_KS_INCOMPLETE))) {
            return -1;
        }
    }
    return 0;
}

/* RD_KEYS_TOUCHED: after the keys the walk found, the ones every further
 * occurrence of a begin-search keyword would give. The command's own
 * parser may take any of them for the option (GEORADIUS keeps the last
 * STORE, the spec finds the first; XREADGROUP's GROUP may come after
 * COUNT with a consumer named "streams"); an occurrence whose keys would
 * not fit the arguments gives none. */
static void
rd_specs_touched(const rd_command_t *c, long argc, const rd_str_t *argv,
                 unsigned opts, rd_keys_out_t *out)
{
    for (unsigned i = 0; i < c->nspecs; i++) {
        const rd_key_spec_t *ks = &c->specs[i];
        if (rd_spec_skipped(ks, opts) || ks->bs_type != RD_BS_KEYWORD
            || ks->fk_type == RD_FK_UNKNOWN) {
            continue;
        }
        long dir = ks->bs.keyword.startfrom > 0 ? 1 : -1;
        long k = rd_keyword_next(ks, argc, argv, rd_keyword_start(ks, argc));
        while (k != 0 && (k = rd_keyword_next(ks, argc, argv, k + dir)) != 0) {
            (void)rd_spec_keys(ks, argc, argv, k + 1, out);
        }
    }
}

/*
 * Hand-written key finders for the commands whose specs Redis marks
 * unknown or incomplete, reading the arguments as Redis's sortGetKeys,
 * sortROGetKeys and migrateGetKeys do; Redis uses them when its spec walk
 * fails, and so do we. With RD_KEYS_TOUCHED they return what the command
 * itself may touch.
 */

/* SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC]
 *      [ALPHA] [STORE destination]: the sorted key, and the last STORE's
 * destination as sortGetKeys finds it: it skips the arguments of LIMIT,
 * GET and BY but not STORE's own, so in "STORE get STORE d" it takes
 * "get" where SORT writes d; RD_KEYS_TOUCHED gives every argument that
 * follows a STORE. BY and GET patterns name keys only through the data,
 * which no proxy can see; no option returns them. */
static void
rd_keys_sort(size_t argc, const rd_str_t *argv, unsigned opts,
             rd_keys_out_t *out)
{
    const uint32_t store_flags = RD_KS_OW | RD_KS_UPDATE;
    long store = 0;

    rd_keys_add(out, 1, RD_KS_RO | RD_KS_ACCESS);
    for (size_t i = 2; i < argc; i++) {
        if ((opts & RD_KEYS_TOUCHED) && rd_arg_is(argv[i], "store") && i + 1 < argc) {
            rd_keys_add(out, (long)i + 1, store_flags);
        }
    }
    if (opts & RD_KEYS_TOUCHED) {
        return;
    }
    for (size_t i = 2; i < argc; i++) {
        if (rd_arg_is(argv[i], "limit")) {
            i += 2;
        } else if (rd_arg_is(argv[i], "get") || rd_arg_is(argv[i], "by")) {
            i += 1;
        } else if (rd_arg_is(argv[i], "store") && i + 1 < argc) {
            store = (long)i + 1;
        }
    }
    if (store != 0) {
        rd_keys_add(out, store, store_flags);
    }
}

static void
rd_keys_sort_ro(size_t argc, const rd_str_t *argv, unsigned opts,
                rd_keys_out_t *out)
{
    (void)argc;
    (void)argv;
    (void)opts;
    rd_keys_add(out, 1, RD_KS_RO | RD_KS_ACCESS);
}

/* MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw]
 *         [AUTH2 user pw] [KEYS key ...]: argv[3], or every argument after
 * KEYS when argv[3] is empty (with a non-empty argv[3] KEYS is a syntax
 * error and there are no keys). MIGRATE reads its options the same way. */
static void
rd_keys_migrate(size_t argc, const rd_str_t *argv, unsigned opts,
                rd_keys_out_t *out)
{
    const uint32_t flags = RD_KS_RW | RD_KS_ACCESS | RD_KS_DELETE;

    (void)opts;
    for (size_t i = 6; i < argc; i++) {
        if (rd_arg_is(argv[i], "keys")) {
            if (argv[3].len == 0) {
                for (size_t k = i + 1; k < argc; k++) {
                    rd_keys_add(out, (long)k, flags);
                }
            }
            return;
        }
        if (rd_arg_is(argv[i], "auth")) {
            i += 1;
        } else if (rd_arg_is(argv[i], "auth2")) {
            i += 2;
        }
    }
    rd_keys_add(out, 3, flags);
}

/* DEBUG has no key specs, but some of its subcommands read the key they
 * name (RD_KEYS_TOUCHED only): OBJECT, SDSLEN, LISTPACK, QUICKLIST,
 * HTSTATS-KEY key, DIGEST-VALUE key... Others touch keys no argument
 * names (POPULATE, RELOAD, LOADAOF, REPLICATE). */
static void
rd_touched_debug(size_t argc, const rd_str_t *argv, rd_keys_out_t *out)
{
    static const char *const one_key[] = {
        "object", "sdslen", "listpack", "quicklist", "htstats-key",
    };
    const uint32_t flags = RD_KS_RO | RD_KS_ACCESS;

    if (argc < 3) {
        return;
    }
    if (rd_arg_is(argv[1], "digest-value")) {
        for (size_t i = 2; i < argc; i++) {
            rd_keys_add(out, (long)i, flags);
        }
        return;
    }
    for (size_t i = 0; i < rd_countof(one_key); i++) {
        if (rd_arg_is(argv[1], one_key[i])) {
            rd_keys_add(out, 2, flags);
            return;
        }
    }
}

typedef void (*rd_keys_proc_t)(size_t argc, const rd_str_t *argv,
                               unsigned opts, rd_keys_out_t *out);

static const struct {
    const char     *name;
    rd_keys_proc_t  proc;
} rd_keys_procs[] = {
    { "migrate", rd_keys_migrate },
    { "sort",    rd_keys_sort },
    { "sort_ro", rd_keys_sort_ro },
};

/* The hand-written finder for c, if c needs one and has one. */
static rd_keys_proc_t
rd_command_keys_proc(const rd_command_t *c)
{
    bool inexact = false;

    for (unsigned i = 0; i < c->nspecs; i++) {
        inexact = inexact || rd_spec_inexact(&c->specs[i]);
    }
    if (!inexact) {
        return NULL;
    }
    for (size_t i = 0; i < rd_countof(rd_keys_procs); i++) {
        if (strcmp(c->name, rd_keys_procs[i].name) == 0) {
            return rd_keys_procs[i].proc;
        }
    }
    return NULL;
}

bool
rd_command_keys_exact(const rd_command_t *c)
{
    for (unsigned i = 0; i < c->nspecs; i++) {
        if (rd_spec_inexact(&c->specs[i])) {
            return rd_command_keys_proc(c) != NULL;
        }
    }
    return true;
}

int
rd_command_keys_ex(const rd_command_t *c, size_t argc, const rd_str_t *argv,
                   unsigned opts, size_t *idx, uint32_t *kflags, size_t max)
{
    rd_keys_out_t out = { idx, kflags, max, 0 };

    if (!rd_command_arity_ok(c, argc) || argc > (size_t)INT32_MAX) {
        return -1;
    }
    rd_keys_proc_t proc = rd_command_keys_proc(c);
    if (rd_specs_walk(c, (long)argc, argv, opts, proc != NULL, &out) < 0) {
        if (proc == NULL) {
            return -1;
        }
        out.n = 0;
        proc(argc, argv, opts, &out);
        return (int)out.n;
    }
    if (opts & RD_KEYS_TOUCHED) {
        rd_specs_touched(c, (long)argc, argv, opts, &out);
        if (c->nspecs == 0 && strcmp(c->name, "debug") == 0) {
            rd_touched_debug(argc, argv, &out);
        }
    }
    return (int)out.n;
}

int
rd_command_keys(const rd_command_t *c, size_t argc, const rd_str_t *argv,
                size_t *idx, size_t max)
{
    return rd_command_keys_ex(c, argc, argv, 0, idx, NULL, max);
}

/* --- ACL categories ------------------------------------------------------ */

uint64_t
rd_acl_category(const char *name)
{
    if (name[0] == '@') {
        name++;
    }
    if (strcasecmp(name, "all") == 0) {
        return RD_CAT_ALL;
    }
    for (size_t i = 0; i < rd_countof(rd_cat_names); i++) {
        if (strcasecmp(name, rd_cat_names[i]) == 0) {
            return UINT64_C(1) << i;
        }
    }
    return 0;
}

const char *
rd_acl_category_name(int bit)
{
    if (bit < 0 || bit >= RD_CAT_COUNT) {
        return NULL;
    }
    return rd_cat_names[bit];
}

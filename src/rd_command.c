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

/* The first key's position by the spec's begin search; 0 when its keyword
 * is absent (the spec then gives no keys), as in Redis: forwards from
 * startfrom up to the second-last argument, or backwards from
 * argc + startfrom down to argument 2. */
static long
rd_spec_begin(const rd_key_spec_t *ks, long argc, const rd_str_t *argv)
{
    if (ks->bs_type == RD_BS_INDEX) {
        return ks->bs.index;
    }

    long i, from = ks->bs.keyword.startfrom;
    if (from > 0) {
        for (i = from; i < argc - 1; i++) {
            if (rd_arg_is(argv[i], ks->bs.keyword.keyword)) {
                return i + 1;
            }
        }
    } else {
        for (i = argc + from; i >= 2 && i < argc; i--) {
            if (rd_arg_is(argv[i], ks->bs.keyword.keyword)) {
                return i + 1;
            }
        }
    }
    return 0;
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

/* One spec's keys into out: 0, or -1 when the arguments are malformed. */
static int
rd_spec_keys(const rd_key_spec_t *ks, long argc, const rd_str_t *argv,
             rd_keys_out_t *out)
{
    long first, last, step;

    if (ks->bs_type == RD_BS_UNKNOWN || ks->fk_type == RD_FK_UNKNOWN) {
        return 0;
    }
    first = rd_spec_begin(ks, argc, argv);
    if (first == 0) {
        return 0;
    }
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

/*
 * Hand-written key finders for the commands whose specs Redis marks
 * unknown or incomplete, reading the arguments as Redis's sortGetKeys,
 * sortROGetKeys and migrateGetKeys do.
 */

/* SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC]
 *      [ALPHA] [STORE destination]: the sorted key, and the last STORE's
 * destination. BY and GET patterns name keys only through the data, which
 * no proxy can see; Redis's ACL treats them the same way. */
static void
rd_keys_sort(size_t argc, const rd_str_t *argv, rd_keys_out_t *out)
{
    long store = 0;

    rd_keys_add(out, 1, RD_KS_RO | RD_KS_ACCESS);
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
        rd_keys_add(out, store, RD_KS_OW | RD_KS_UPDATE);
    }
}

static void
rd_keys_sort_ro(size_t argc, const rd_str_t *argv, rd_keys_out_t *out)
{
    (void)argc;
    (void)argv;
    rd_keys_add(out, 1, RD_KS_RO | RD_KS_ACCESS);
}

/* MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw]
 *         [AUTH2 user pw] [KEYS key ...]: argv[3], or every argument after
 * KEYS when argv[3] is empty (with a non-empty argv[3] KEYS is a syntax
 * error and there are no keys). */
static void
rd_keys_migrate(size_t argc, const rd_str_t *argv, rd_keys_out_t *out)
{
    const uint32_t flags = RD_KS_RW | RD_KS_ACCESS | RD_KS_DELETE;

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

typedef void (*rd_keys_proc_t)(size_t argc, const rd_str_t *argv,
                               rd_keys_out_t *out);

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
    if (proc != NULL) {
        proc(argc, argv, &out);
        return (int)out.n;
    }
    for (unsigned i = 0; i < c->nspecs; i++) {
        const rd_key_spec_t *ks = &c->specs[i];
        if ((ks->flags & RD_KS_NOT_KEY) && !(opts & RD_KEYS_NOT_KEYS)) {
            continue;
        }
        if (rd_spec_keys(ks, (long)argc, argv, &out) < 0) {
            return -1;
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

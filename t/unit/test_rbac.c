/*
 * test_rbac.c - the role matcher (rd_rbac.h): one table of cases, each a
 * configuration, an identity, a database, a database user and optionally
 * a command, with the expected verdict and the role and rule that decide
 * it (and, for sessions, the strictest limits). The configurations are
 * read with rd_cycle_load, as the server reads them; identities are built
 * by hand.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_identity.h"
#include "rd_log.h"
#include "rd_module.h"
#include "rd_rbac.h"
#include "rd_session.h"

/* --- configurations ----------------------------------------------------- */

#define BASE                                                              \
    "listen = ( { address = \"127.0.0.1:7000\"; database = \"cache\";\n"  \
    "             tls = false; } );\n"

/* The issue's roles, and a few more for globs, regexes, missing labels,
 * user-level denies, subcommands and limits. */
static const char conf_main[] = BASE
    "roles = (\n"
    "  { name = \"access\";\n"
    "    allow = { db_labels = { * = \"*\"; };\n"
    "              db_users = [ \"{{internal.db_users}}\" ];\n"
    "              db_names = [ \"{{internal.db_names}}\" ]; }; },\n"
    "  { name = \"by-names\";\n"
    "    allow = { db_labels = { * = \"*\"; };\n"
    "              db_users = [ \"{{internal.db_names}}\" ]; }; },\n"
    "  { name = \"dev-only\";\n"
    "    allow = { db_labels = { env = \"dev\"; }; db_users = [ \"*\" ]; }; },\n"
    "  { name = \"readonly\";\n"
    "    allow = { db_labels = { env = [ \"prod\", \"^prod-[0-9]+$\", \"stag*\" ]; };\n"
    "              db_users = [ \"reader\" ]; commands = [ \"@read\", \"ping\" ];\n"
    "              keys = [ \"app:*\" ]; };\n"
    "    options = { max_session_ttl = \"1h\"; client_idle_timeout = \"10m\"; }; },\n"
    "  { name = \"no-prod\";\n"
    "    deny = { db_labels = { env = \"prod\"; }; }; },\n"
    "  { name = \"no-flush\";\n"
    "    deny = { db_labels = { * = \"*\"; };\n"
    "             commands = [ \"flushall\", \"flushdb\", \"@dangerous\" ];\n"
    "             keys = [ \"secret:*\" ]; }; },\n"
    "  { name = \"web-team\";\n"
    "    allow = { db_labels = { team = \"w?b\"; env = \"prod\"; };\n"
    "              db_users = [ \"alice\", \"bob\" ]; }; },\n"
    "  { name = \"api-regex\";\n"
    "    allow = { db_labels = { team = \"^(api|ops)-[a-z]+$\"; };\n"
    "              db_users = [ \"*\" ]; }; },\n"
    "  { name = \"in-region\";\n"
    "    allow = { db_labels = { region = \"*\"; }; db_users = [ \"*\" ]; }; },\n"
    "  { name = \"deny-bob\";\n"
    "    deny = { db_labels = { * = \"*\"; }; db_users = [ \"bob\" ]; }; },\n"
    "  { name = \"no-staging-write\";\n"
    "    deny = { db_labels = { env = \"stag*\"; }; commands = [ \"@write\" ]; }; },\n"
    "  { name = \"killer\";\n"
    "    allow = { db_labels = { * = \"*\"; }; db_users = [ \"ops\" ];\n"
    "              commands = [ \"get\", \"client|kill\" ]; }; },\n"
    "  { name = \"clients\";\n"
    "    allow = { db_labels = { * = \"*\"; }; db_users = [ \"ops\" ];\n"
    "              commands = [ \"client\" ]; }; },\n"
    "  { name = \"short\";\n"
    "    allow = { db_labels = { env = \"prod\"; }; db_users = [ \"reader\", \"alice\" ]; };\n"
    "    options = { max_session_ttl = \"30m\"; client_idle_timeout = \"1h\"; }; },\n"
    "  { name = \"regex-keys\";\n"
    "    allow = { db_labels = { * = \"*\"; }; db_users = [ \"*\" ];\n"
    "              keys = [ \"^user:[0-9]+$\" ]; }; }\n"
    ");\n"
    "databases = (\n"
    "  { name = \"cache\"; uri = \"redis://127.0.0.1:7001\";\n"
    "    labels = { env = \"prod\"; team = \"web\"; };\n"
    "    description = \"Production cache\"; },\n"
    "  { name = \"prod7\"; uri = \"redis://127.0.0.1:7002\";\n"
    "    labels = { env = \"prod-7\"; team = \"api-core\"; }; },\n"
    "  { name = \"prodx\"; uri = \"redis://127.0.0.1:7003\";\n"
    "    labels = { env = \"prod-x\"; }; },\n"
    "  { name = \"staging\"; uri = \"redis://127.0.0.1:7004\";\n"
    "    labels = { env = \"staging\"; }; },\n"
    "  { name = \"dev\"; uri = \"redis://127.0.0.1:7005\";\n"
    "    labels = { env = \"dev\"; }; },\n"
    "  { name = \"eu\"; uri = \"redis://127.0.0.1:7006\";\n"
    "    labels = { env = \"dev\"; region = \"eu\"; }; },\n"
    "  { name = \"bare\"; uri = \"redis://127.0.0.1:7007\"; }\n"
    ");\n";

/* Issue 10's rules: fail closed, unchecked, channels, deny blocks without
 * labels. */
static const char conf_rules[] = BASE
    "roles = (\n"
    "  { name = \"all\";\n"
    "    allow = { db_labels = { * = \"*\"; }; db_users = [ \"*\" ]; }; },\n"
    "  { name = \"no-flush\";\n"
    "    deny = { commands = [ \"flushall\" ]; }; },\n"
    "  { name = \"no-bob\";\n"
    "    deny = { db_users = [ \"bob\" ]; }; },\n"
    "  { name = \"empty-deny\";\n"
    "    allow = { db_labels = { * = \"*\"; }; db_users = [ \"*\" ]; };\n"
    "    deny = { }; },\n"
    "  { name = \"app\";\n"
    "    allow = { db_labels = { * = \"*\"; }; db_users = [ \"*\" ];\n"
    "              keys = [ \"app:*\" ]; }; },\n"
    "  { name = \"app-eval\";\n"
    "    allow = { db_labels = { * = \"*\"; }; db_users = [ \"*\" ];\n"
    "              keys = [ \"app:*\" ]; unchecked = [ \"eval\", \"sort\", \"@admin\" ];\n"
    "              channels = [ \"news.*\" ]; }; },\n"
    "  { name = \"named\";\n"
    "    allow = { db_labels = { * = \"*\"; }; db_users = [ \"*\" ];\n"
    "              commands = [ \"@read\", \"keys\", \"@scripting\" ]; }; },\n"
    "  { name = \"no-secret\";\n"
    "    deny = { keys = [ \"secret:*\", \"^private:.*$\" ];\n"
    "             channels = [ \"admin.*\" ]; }; }\n"
    ");\n"
    "databases = ( { name = \"cache\"; uri = \"redis://127.0.0.1:7001\";\n"
    "                labels = { env = \"prod\"; }; } );\n";

/* No roles at all: nobody gets anywhere. */
static const char conf_noroles[] = BASE
    "databases = ( { name = \"cache\"; uri = \"redis://127.0.0.1:7001\";\n"
    "                labels = { env = \"prod\"; }; } );\n";

enum { C_MAIN, C_NOROLES, C_RULES, C_COUNT };

static const char *const conf_text[C_COUNT] = { conf_main, conf_noroles,
                                                conf_rules };
static rd_cycle_t *cycles[C_COUNT];
static char tmpdir[256];

/* --- the table ------------------------------------------------------------ */

#define MIN   60000LL
#define HOUR  (60 * MIN)

typedef struct {
    const char *what;
    int         conf;
    const char *roles;      /* comma-separated; NULL: none */
    const char *users;      /* trait db_users; NULL: empty */
    const char *names;      /* trait db_names; NULL: empty */
    const char *route;      /* route database user; NULL: none */
    const char *db;
    const char *db_user;    /* NULL: the route user, else any user */
    const char *command;    /* space-separated argv; NULL: a session */
    int         allowed;
    const char *role;       /* the deciding role; NULL: none */
    const char *rule;       /* "allow", "deny" or NULL */
    int64_t     ttl;        /* expected limits (sessions; -1: unchecked) */
    int64_t     idle;
} rbac_case_t;

#define ALLOW(r) 1, (r), "allow"
#define DENY(r)  0, (r), "deny"
#define NOROLE   0, NULL, NULL
#define NOLIM    -1, -1

#define R(what, roles, cmd, verdict) \
    { what, C_RULES, roles, NULL, NULL, NULL, "cache", "alice", cmd, verdict, \
      NOLIM }

static const rbac_case_t cases[] = {
    /* --- issue 10: rules that cannot see what a command touches --------- */
    R("deny flushall: FLUSHALL", "all,no-flush", "FLUSHALL", DENY("no-flush")),
    R("deny flushall: EVAL may run it", "all,no-flush", "EVAL x 0", NOROLE),
    R("deny flushall: EVALSHA", "all,no-flush", "EVALSHA abc 0", NOROLE),
    R("deny flushall: SCRIPT LOAD", "all,no-flush", "SCRIPT LOAD x", NOROLE),
    R("deny flushall: FUNCTION LOAD", "all,no-flush", "FUNCTION LOAD x",
      NOROLE),
    R("deny flushall: FCALL", "all,no-flush", "FCALL f 0", NOROLE),
    R("deny flushall: FUNCTION FLUSH", "all,no-flush", "FUNCTION FLUSH",
      NOROLE),
    R("deny flushall: SWAPDB", "all,no-flush", "SWAPDB 0 1", NOROLE),
    R("deny flushall: an unknown command", "all,no-flush", "NOSUCH x",
      NOROLE),
    R("deny flushall: GET still works", "all,no-flush", "GET k",
      ALLOW("all")),
    R("no rules anywhere: EVAL", "all", "EVAL x 0", ALLOW("all")),
    R("no rules anywhere: an unknown command", "all", "NOSUCH x",
      ALLOW("all")),
    R("an empty deny block is no rule", "empty-deny", "EVAL x 0",
      ALLOW("empty-deny")),
    R("keys: EVAL with the key in ARGV", "app", "EVAL x 0 other:1", NOROLE),
    R("keys: EVAL with app keys", "app", "EVAL x 1 app:1", NOROLE),
    R("keys: SORT BY pattern", "app", "SORT app:l BY other:*", NOROLE),
    R("keys: SORT is @dangerous", "app", "SORT app:l BY nosort", NOROLE),
    R("unchecked sort: SORT BY without a star", "app-eval",
      "SORT app:l BY nosort", ALLOW("app-eval")),
    R("unchecked sort: SORT BY a pattern", "app-eval",
      "SORT app:l BY other:*", NOROLE),
    R("unchecked sort: SORT GET", "app-eval", "SORT app:l GET #", NOROLE),
    R("unchecked sort: SORT STORE other", "app-eval",
      "SORT app:l STORE other:x", NOROLE),
    R("keys: SORT_RO GET", "app", "SORT_RO app:l GET #", NOROLE),
    R("unchecked sort: SORT STORE app", "app-eval", "SORT app:l STORE app:x",
      ALLOW("app-eval")),
    R("keys: SORT STORE other", "app", "SORT app:l STORE other:x", NOROLE),
    R("keys: DEBUG OBJECT", "app", "DEBUG OBJECT other:1", NOROLE),
    R("keys: CONFIG GET", "app", "CONFIG GET requirepass", NOROLE),
    R("keys: CLIENT LIST", "app", "CLIENT LIST", NOROLE),
    R("keys: CLIENT SETNAME is harmless", "app", "CLIENT SETNAME x",
      ALLOW("app")),
    R("keys: ACL SETUSER", "app", "ACL SETUSER x on", NOROLE),
    R("keys: KEYS", "app", "KEYS *", NOROLE),
    R("keys: an unknown command", "app", "NOSUCH app:1", NOROLE),
    R("keys: PUBLISH without channel rules", "app", "PUBLISH news.1 x",
      NOROLE),
    R("keys: GEORADIUS, the last STORE is written", "app",
      "GEORADIUS app:g 0 0 1 km STORE app:ok STORE other:x", NOROLE),
    R("keys: GEORADIUS STORE app", "app",
      "GEORADIUS app:g 0 0 1 km STORE app:ok", ALLOW("app")),
    R("unchecked eval: EVAL with app keys", "app-eval", "EVAL x 1 app:1",
      ALLOW("app-eval")),
    R("unchecked eval: the keys are still checked", "app-eval",
      "EVAL x 1 other:1", NOROLE),
    R("unchecked eval: FCALL is not eval", "app-eval", "FCALL f 0", NOROLE),
    R("unchecked @admin: CONFIG GET", "app-eval", "CONFIG GET x",
      ALLOW("app-eval")),
    R("channels: PUBLISH news.1", "app-eval", "PUBLISH news.1 x",
      ALLOW("app-eval")),
    R("channels: PUBLISH other", "app-eval", "PUBLISH other x", NOROLE),
    R("channels: SPUBLISH news.1", "app-eval", "SPUBLISH news.1 x",
      ALLOW("app-eval")),
    R("channels: SUBSCRIBE one bad", "app-eval", "SUBSCRIBE news.1 other",
      NOROLE),
    R("channels: PSUBSCRIBE the rule's pattern", "app-eval",
      "PSUBSCRIBE news.*", ALLOW("app-eval")),
    R("channels: PSUBSCRIBE a wider pattern", "app-eval", "PSUBSCRIBE *",
      NOROLE),
    R("deny channels", "all,no-secret", "PUBLISH admin.x y",
      DENY("no-secret")),
    R("deny channels: PSUBSCRIBE may reach them", "all,no-secret",
      "PSUBSCRIBE n*", DENY("no-secret")),
    /* A role without rules reaches every channel, whatever deny applies
     * besides (channels are the allow's own rule, as keys are). */
    R("channels: an open role with an unrelated deny", "all,no-flush",
      "PUBLISH ch x", ALLOW("all")),
    R("channels: an open role, SUBSCRIBE, a deny with keys", "all,no-secret",
      "SUBSCRIBE news.1 other", ALLOW("all")),
    R("channels: an open role beside one with key rules", "app,all",
      "PUBLISH other x", ALLOW("all")),
    R("named commands: KEYS by name", "named", "KEYS *", ALLOW("named")),
    R("named commands: @scripting names EVAL's category only", "named",
      "EVAL x 0", NOROLE),
    R("named commands: SCAN is @read, not named", "named", "SCAN 0",
      NOROLE),
    { "deny without labels applies to every database", C_RULES,
      "all,no-bob", NULL, NULL, NULL, "cache", "bob", NULL, DENY("no-bob"),
      NOLIM },
    { "deny without labels: other users", C_RULES, "all,no-bob", NULL, NULL,
      NULL, "cache", "alice", NULL, ALLOW("all"), NOLIM },
    R("deny key glob", "all,no-secret", "GET secret:x", DENY("no-secret")),
    R("deny key regex", "all,no-secret", "GET private:x", DENY("no-secret")),

    /* --- wildcard labels and the db_users template --------------------- */
    { "wildcard label, user from the trait", C_MAIN, "access", "alice", NULL,
      NULL, "cache", "alice", NULL, ALLOW("access"), 0, 0 },
    { "wildcard label, user not in the trait", C_MAIN, "access", "alice",
      NULL, NULL, "cache", "bob", NULL, NOROLE, NOLIM },
    { "wildcard label matches a database without labels", C_MAIN, "access",
      "alice", NULL, NULL, "bare", "alice", NULL, ALLOW("access"), NOLIM },
    { "trait with several users: the second", C_MAIN, "access",
      "alice,bob,carol", NULL, NULL, "cache", "bob", NULL, ALLOW("access"),
      NOLIM },
    { "trait with several users: the last", C_MAIN, "access",
      "alice,bob,carol", NULL, NULL, "cache", "carol", NULL,
      ALLOW("access"), NOLIM },
    { "trait with several users: another", C_MAIN, "access",
      "alice,bob,carol", NULL, NULL, "cache", "dave", NULL, NOROLE, NOLIM },
    { "empty trait expands to nothing", C_MAIN, "access", NULL, NULL, NULL,
      "cache", "alice", NULL, NOROLE, NOLIM },
    { "empty trait: not even \"default\"", C_MAIN, "access", NULL, NULL,
      NULL, "cache", "default", NULL, NOROLE, NOLIM },
    { "empty trait: no user at all, so no session", C_MAIN, "access", NULL,
      NULL, NULL, "cache", NULL, NULL, NOROLE, NOLIM },
    { "trait \"*\" allows any user", C_MAIN, "access", "*", NULL, NULL,
      "cache", "whoever", NULL, ALLOW("access"), NOLIM },
    { "db_names template in db_users", C_MAIN, "by-names", NULL, "x,y",
      NULL, "cache", "y", NULL, ALLOW("by-names"), NOLIM },
    { "db_users trait is not the db_names template", C_MAIN, "by-names",
      "y", NULL, NULL, "cache", "y", NULL, NOROLE, NOLIM },

    /* --- exact, glob, regex and multi-value labels ----------------------- */
    { "exact label", C_MAIN, "dev-only", NULL, NULL, NULL, "dev", "anyone",
      NULL, ALLOW("dev-only"), 0, 0 },
    { "exact label, other value", C_MAIN, "dev-only", NULL, NULL, NULL,
      "cache", "anyone", NULL, NOROLE, NOLIM },
    { "exact label, database lacks it", C_MAIN, "dev-only", NULL, NULL, NULL,
      "bare", "anyone", NULL, NOROLE, NOLIM },
    { "multi-value: exact value", C_MAIN, "readonly", NULL, NULL, NULL,
      "cache", "reader", NULL, ALLOW("readonly"), 1 * HOUR, 10 * MIN },
    { "multi-value: regex value", C_MAIN, "readonly", NULL, NULL, NULL,
      "prod7", "reader", NULL, ALLOW("readonly"), NOLIM },
    { "multi-value: glob value", C_MAIN, "readonly", NULL, NULL, NULL,
      "staging", "reader", NULL, ALLOW("readonly"), NOLIM },
    { "multi-value: no value matches (regex anchored)", C_MAIN, "readonly",
      NULL, NULL, NULL, "prodx", "reader", NULL, NOROLE, NOLIM },
    { "multi-value: other environment", C_MAIN, "readonly", NULL, NULL,
      NULL, "dev", "reader", NULL, NOROLE, NOLIM },
    { "labels match, user not listed", C_MAIN, "readonly", NULL, NULL, NULL,
      "cache", "alice", NULL, NOROLE, NOLIM },
    { "no user yet: some user is allowed", C_MAIN, "readonly", NULL, NULL,
      NULL, "cache", NULL, NULL, ALLOW("readonly"), 1 * HOUR, 10 * MIN },
    { "glob label and a second label, both match", C_MAIN, "web-team", NULL,
      NULL, NULL, "cache", "bob", NULL, ALLOW("web-team"), NOLIM },
    { "glob label does not match", C_MAIN, "web-team", NULL, NULL, NULL,
      "prod7", "bob", NULL, NOROLE, NOLIM },
    { "one of two labels missing", C_MAIN, "web-team", NULL, NULL, NULL,
      "staging", "bob", NULL, NOROLE, NOLIM },
    { "regex label with alternation", C_MAIN, "api-regex", NULL, NULL, NULL,
      "prod7", "x", NULL, ALLOW("api-regex"), NOLIM },
    { "regex label does not match", C_MAIN, "api-regex", NULL, NULL, NULL,
      "cache", "x", NULL, NOROLE, NOLIM },
    { "value \"*\" needs the label", C_MAIN, "in-region", NULL, NULL, NULL,
      "dev", "x", NULL, NOROLE, NOLIM },
    { "value \"*\" with the label present", C_MAIN, "in-region", NULL, NULL,
      NULL, "eu", "x", NULL, ALLOW("in-region"), NOLIM },

    /* --- deny over allow ------------------------------------------------------ */
    { "session deny on labels beats an allow", C_MAIN, "access,no-prod",
      "alice", NULL, NULL, "cache", "alice", NULL, DENY("no-prod"), NOLIM },
    { "session deny, order of roles irrelevant", C_MAIN, "no-prod,access",
      "alice", NULL, NULL, "cache", "alice", NULL, DENY("no-prod"), NOLIM },
    { "session deny also without a user", C_MAIN, "access,no-prod", "alice",
      NULL, NULL, "cache", NULL, NULL, DENY("no-prod"), NOLIM },
    { "session deny on other labels", C_MAIN, "access,no-prod", "alice",
      NULL, NULL, "dev", "alice", NULL, ALLOW("access"), NOLIM },
    { "deny with users: that user", C_MAIN, "access,deny-bob", "alice,bob",
      NULL, NULL, "cache", "bob", NULL, DENY("deny-bob"), NOLIM },
    { "deny with users: another user", C_MAIN, "access,deny-bob",
      "alice,bob", NULL, NULL, "cache", "alice", NULL, ALLOW("access"),
      NOLIM },
    { "deny with users: no user yet", C_MAIN, "access,deny-bob", "alice,bob",
      NULL, NULL, "cache", NULL, NULL, ALLOW("access"), NOLIM },
    { "command-level deny does not refuse the session", C_MAIN,
      "access,no-flush", "alice", NULL, NULL, "cache", "alice", NULL,
      ALLOW("access"), NOLIM },
    { "a deny alone allows nothing", C_MAIN, "no-flush", "alice", NULL, NULL,
      "cache", "alice", NULL, NOROLE, NOLIM },

    /* --- unknown roles, no roles, route user ---------------------------------- */
    { "unknown role ignored", C_MAIN, "nosuch,dev-only", NULL, NULL, NULL,
      "dev", "x", NULL, ALLOW("dev-only"), NOLIM },
    { "only unknown roles", C_MAIN, "nosuch,other", "*", NULL, NULL, "dev",
      "x", NULL, NOROLE, NOLIM },
    { "no roles in the identity", C_MAIN, NULL, "*", NULL, NULL, "dev", "x",
      NULL, NOROLE, NOLIM },
    { "no roles in the configuration", C_NOROLES, "access", "*", NULL, NULL,
      "cache", "x", NULL, NOROLE, NOLIM },
    { "route user allowed", C_MAIN, "access", "alice", NULL, "alice",
      "cache", NULL, NULL, ALLOW("access"), NOLIM },
    { "route user not allowed", C_MAIN, "access", "alice", NULL, "bob",
      "cache", NULL, NULL, NOROLE, NOLIM },
    { "route user denied by a user-level deny", C_MAIN, "access,deny-bob",
      "*", NULL, "bob", "cache", NULL, NULL, DENY("deny-bob"), NOLIM },

    /* --- the strictest limits ---------------------------------------------------- */
    { "limits of two roles: shortest of each", C_MAIN, "readonly,short",
      NULL, NULL, NULL, "cache", "reader", NULL, ALLOW("readonly"),
      30 * MIN, 10 * MIN },
    { "limits: order of roles irrelevant", C_MAIN, "short,readonly", NULL,
      NULL, NULL, "cache", "reader", NULL, ALLOW("short"), 30 * MIN,
      10 * MIN },
    { "limits only from roles that grant", C_MAIN, "readonly,short", NULL,
      NULL, NULL, "cache", "alice", NULL, ALLOW("short"), 30 * MIN, 1 * HOUR },
    { "no limits", C_MAIN, "access", "alice", NULL, NULL, "cache", "alice",
      NULL, ALLOW("access"), 0, 0 },

    /* --- commands by name and category ---------------------------------------- */
    { "@read allows GET", C_MAIN, "readonly", NULL, NULL, NULL, "cache",
      "reader", "GET app:1", ALLOW("readonly"), NOLIM },
    { "@read refuses SET", C_MAIN, "readonly", NULL, NULL, NULL, "cache",
      "reader", "SET app:1 v", NOROLE, NOLIM },
    { "command by name", C_MAIN, "readonly", NULL, NULL, NULL, "cache",
      "reader", "ping", ALLOW("readonly"), NOLIM },
    { "command names are case-insensitive", C_MAIN, "readonly", NULL, NULL,
      NULL, "cache", "reader", "gEt app:1", ALLOW("readonly"), NOLIM },
    { "unknown command outside a command list", C_MAIN, "readonly", NULL,
      NULL, NULL, "cache", "reader", "NOSUCHCMD app:1", NOROLE, NOLIM },
    { "command deny by name", C_MAIN, "access,no-flush", "alice", NULL, NULL,
      "cache", "alice", "FLUSHALL", DENY("no-flush"), NOLIM },
    { "command deny by name, lower case", C_MAIN, "access,no-flush", "alice",
      NULL, NULL, "cache", "alice", "flushdb", DENY("no-flush"), NOLIM },
    { "command deny by category", C_MAIN, "access,no-flush", "alice", NULL,
      NULL, "cache", "alice", "KEYS *", DENY("no-flush"), NOLIM },
    { "command deny does not touch others", C_MAIN, "access,no-flush",
      "alice", NULL, NULL, "cache", "alice", "SET app:1 v", ALLOW("access"),
      NOLIM },
    { "command deny on labels: matching database", C_MAIN,
      "access,no-staging-write", "*", NULL, NULL, "staging", "x",
      "SET app:1 v", DENY("no-staging-write"), NOLIM },
    { "command deny on labels: other database", C_MAIN,
      "access,no-staging-write", "*", NULL, NULL, "dev", "x", "SET app:1 v",
      ALLOW("access"), NOLIM },
    { "no command list: every command", C_MAIN, "access", "alice", NULL,
      NULL, "cache", "alice", "FLUSHALL", ALLOW("access"), NOLIM },
    { "commands as a user the roles do not allow", C_MAIN, "access", "alice",
      NULL, NULL, "cache", "default", "GET app:1", NOROLE, NOLIM },
    { "a role for other labels lends no commands", C_MAIN,
      "readonly,dev-only", NULL, NULL, NULL, "staging", "reader",
      "SET app:1 v", NOROLE, NOLIM },

    /* --- subcommands ------------------------------------------------------------- */
    { "subcommand allowed by its full name", C_MAIN, "killer", NULL, NULL,
      NULL, "cache", "ops", "CLIENT KILL ID 1", ALLOW("killer"), NOLIM },
    { "another subcommand of it", C_MAIN, "killer", NULL, NULL, NULL,
      "cache", "ops", "client list", NOROLE, NOLIM },
    { "a command besides the subcommand", C_MAIN, "killer", NULL, NULL, NULL,
      "cache", "ops", "GET x", ALLOW("killer"), NOLIM },
    { "a parent command allows every subcommand", C_MAIN, "clients", NULL,
      NULL, NULL, "cache", "ops", "CLIENT LIST", ALLOW("clients"), NOLIM },

    /* --- keys --------------------------------------------------------------------- */
    { "key inside the pattern", C_MAIN, "readonly", NULL, NULL, NULL,
      "cache", "reader", "GET app:1", ALLOW("readonly"), NOLIM },
    { "key outside the pattern", C_MAIN, "readonly", NULL, NULL, NULL,
      "cache", "reader", "GET other:1", NOROLE, NOLIM },
    { "MGET with every key inside", C_MAIN, "readonly", NULL, NULL, NULL,
      "cache", "reader", "MGET app:1 app:2 app:3", ALLOW("readonly"), NOLIM },
    { "MGET with one key outside", C_MAIN, "readonly", NULL, NULL, NULL,
      "cache", "reader", "MGET app:1 other:2 app:3", NOROLE, NOLIM },
    { "key deny", C_MAIN, "access,no-flush", "alice", NULL, NULL, "cache",
      "alice", "GET secret:x", DENY("no-flush"), NOLIM },
    { "key deny on MGET with one bad key", C_MAIN, "access,no-flush",
      "alice", NULL, NULL, "cache", "alice", "MGET app:1 secret:x app:2",
      DENY("no-flush"), NOLIM },
    { "key deny on MSET's keys, not its values", C_MAIN, "access,no-flush",
      "alice", NULL, NULL, "cache", "alice", "MSET app:1 secret:v app:2 w",
      ALLOW("access"), NOLIM },
    { "key deny on MSET's second key", C_MAIN, "access,no-flush", "alice",
      NULL, NULL, "cache", "alice", "MSET app:1 v secret:2 w",
      DENY("no-flush"), NOLIM },
    { "EVAL's keys after numkeys", C_MAIN, "access,no-flush", "alice", NULL,
      NULL, "cache", "alice", "EVAL return 1 secret:a",
      DENY("no-flush"), NOLIM },
    { "regex key pattern", C_MAIN, "regex-keys", NULL, NULL, NULL, "cache",
      "x", "GET user:42", ALLOW("regex-keys"), NOLIM },
    { "regex key pattern is anchored", C_MAIN, "regex-keys", NULL, NULL,
      NULL, "cache", "x", "GET user:42x", NOROLE, NOLIM },
};

/* --- helpers ----------------------------------------------------------------- */

/* Split a comma- or space-separated list into a NULL-terminated array. */
static char **
split(const char *s, const char *sep, size_t *n)
{
    *n = 0;
    if (s == NULL) {
        return calloc(1, sizeof(char *));
    }
    char *copy = strdup(s), *save = NULL;
    char **v = calloc(strlen(s) + 2, sizeof(char *));
    for (char *t = strtok_r(copy, sep, &save); t;
         t = strtok_r(NULL, sep, &save)) {
        v[(*n)++] = strdup(t);
    }
    free(copy);
    return v;
}

static void
free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static rd_database_t *
find_db(rd_cycle_t *c, const char *name)
{
    for (size_t i = 0; i < c->ndatabases; i++) {
        if (strcmp(c->databases[i].name, name) == 0) {
            return &c->databases[i];
        }
    }
    ck_abort_msg("no database \"%s\" in the test configuration", name);
    return NULL;
}

static const char *
str_or(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

static void
load_configs(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rd_test_rbac.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    rd_modules_init();
    rd_log_level = RD_LOG_WARN;
    for (int i = 0; i < C_COUNT; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/conf%d.conf", tmpdir, i);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(conf_text[i], f);
        fclose(f);
        char *err = NULL;
        cycles[i] = rd_cycle_load(path, &err);
        ck_assert_msg(cycles[i] != NULL, "configuration %d: %s", i, err);
    }
}

static void
free_configs(void)
{
    for (int i = 0; i < C_COUNT; i++) {
        if (cycles[i]) {
            rd_cycle_destroy(cycles[i]);
            cycles[i] = NULL;
        }
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* --- the loop ------------------------------------------------------------ */

START_TEST(test_case)
{
    const rbac_case_t *t = &cases[_i];
    rd_cycle_t *cycle = cycles[t->conf];
    ck_assert_ptr_nonnull(cycle);
    rd_database_t *db = find_db(cycle, t->db);

    rd_identity_t id;
    memset(&id, 0, sizeof(id));
    id.user = "tester";
    id.roles = split(t->roles, ",", &id.nroles);
    id.db_users = split(t->users, ",", &id.ndb_users);
    id.db_names = split(t->names, ",", &id.ndb_names);
    id.route_db_user = (char *)t->route;
    if (t->route) {
        id.route_db = (char *)t->db;
    }
    /* As the server: the route's user when the case names none. */
    const char *user = t->db_user ? t->db_user : t->route;

    rd_rbac_decision_t d;
    rd_rbac_limits_t lim = { -7, -7 };
    int got;
    if (t->command == NULL) {
        got = rd_rbac_check_db(cycle, &id, db, user, &d, &lim);
    } else {
        size_t argc;
        char **words = split(t->command, " ", &argc);
        rd_str_t argv[16];
        ck_assert_uint_le(argc, rd_countof(argv));
        for (size_t i = 0; i < argc; i++) {
            argv[i].data = words[i];
            argv[i].len = strlen(words[i]);
        }
        ck_assert_ptr_nonnull(user);
        rd_request_t r;
        rd_request_from_argv(&r, argc, argv);
        got = rd_rbac_check_command(cycle, &id, db, user, &r, &d);
        rd_request_unclassify(&r);
        free_list(words, argc);
    }

    ck_assert_msg(!!got == t->allowed, "case %d \"%s\": expected %s, got %s "
                  "(role %s, rule %s, reason \"%s\")", _i, t->what,
                  t->allowed ? "allowed" : "denied",
                  got ? "allowed" : "denied", str_or(d.role, "-"),
                  str_or(d.rule, "-"), d.reason);
    ck_assert_msg(d.allowed == got, "case %d \"%s\": d.allowed %d, returned "
                  "%d", _i, t->what, d.allowed, got);
    ck_assert_msg((t->role == NULL && d.role == NULL)
                  || (t->role && d.role && strcmp(t->role, d.role) == 0),
                  "case %d \"%s\": deciding role: expected %s, got %s",
                  _i, t->what, str_or(t->role, "none"),
                  str_or(d.role, "none"));
    ck_assert_msg((t->rule == NULL && d.rule == NULL)
                  || (t->rule && d.rule && strcmp(t->rule, d.rule) == 0),
                  "case %d \"%s\": rule: expected %s, got %s", _i, t->what,
                  str_or(t->rule, "none"), str_or(d.rule, "none"));
    if (!got) {
        /* A refusal says what, and never shows a role's definition. */
        ck_assert_msg(d.reason[0] != '\0', "case %d \"%s\": no reason", _i,
                      t->what);
        ck_assert_msg(strstr(d.reason, t->db) != NULL, "case %d \"%s\": "
                      "reason \"%s\" does not name the database", _i,
                      t->what, d.reason);
        ck_assert_msg(strstr(d.reason, "{{") == NULL
                      && strstr(d.reason, "db_labels") == NULL,
                      "case %d \"%s\": reason \"%s\" shows the role", _i,
                      t->what, d.reason);
        if (user && t->command) {
            ck_assert_msg(strstr(d.reason, user) != NULL, "case %d \"%s\": "
                          "reason \"%s\" does not name the user", _i,
                          t->what, d.reason);
        }
    }
    if (t->command == NULL && got && t->ttl >= 0) {
        ck_assert_msg(lim.max_session_ttl == t->ttl, "case %d \"%s\": "
                      "max_session_ttl %lld, expected %lld", _i, t->what,
                      (long long)lim.max_session_ttl, (long long)t->ttl);
        ck_assert_msg(lim.client_idle_timeout == t->idle, "case %d \"%s\": "
                      "client_idle_timeout %lld, expected %lld", _i, t->what,
                      (long long)lim.client_idle_timeout, (long long)t->idle);
    }

    free_list(id.roles, id.nroles);
    free_list(id.db_users, id.ndb_users);
    free_list(id.db_names, id.ndb_names);
}
END_TEST

/* --- beside the table: listing and configuration errors ------------------- */

START_TEST(test_db_users_and_labels)
{
    rd_cycle_t *cycle = cycles[C_MAIN];
    rd_database_t *db = find_db(cycle, "cache");
    char *roles[] = { "access", "readonly", "nosuch" };
    char *users[] = { "alice", "bob" };
    rd_identity_t id = {
        .user = "tester", .roles = roles, .nroles = 3,
        .db_users = users, .ndb_users = 2,
    };
    char **list = NULL;
    size_t n = rd_rbac_db_users(cycle, &id, db, &list);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(list[0], "alice");
    ck_assert_str_eq(list[1], "bob");
    ck_assert_str_eq(list[2], "reader");
    rd_rbac_free_list(list, n);

    /* readonly does not reach "dev": only the trait's users. */
    n = rd_rbac_db_users(cycle, &id, find_db(cycle, "dev"), &list);
    ck_assert_uint_eq(n, 2);
    rd_rbac_free_list(list, n);

    char buf[256];
    rd_rbac_db_labels(db, buf, sizeof(buf));
    ck_assert_str_eq(buf, "env=prod,team=web");
    ck_assert_str_eq(rd_rbac_db_description(db), "Production cache");
    rd_rbac_db_labels(find_db(cycle, "bare"), buf, sizeof(buf));
    ck_assert_str_eq(buf, "");
    ck_assert_str_eq(rd_rbac_db_description(find_db(cycle, "bare")), "");
}
END_TEST

static void
expect_conf_error(const char *roles, const char *fragment)
{
    char path[512], *err = NULL;
    snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s%s\ndatabases = ( { name = \"cache\"; "
            "uri = \"redis://127.0.0.1:7001\"; } );\n", BASE, roles);
    fclose(f);
    rd_cycle_t *c = rd_cycle_load(path, &err);
    ck_assert_msg(c == NULL, "accepted: %s", roles);
    ck_assert_msg(strstr(err, fragment) != NULL, "error \"%s\" lacks \"%s\"",
                  err, fragment);
    ck_assert_msg(strstr(err, "bad.conf:") != NULL, "error \"%s\" lacks the "
                  "file and line", err);
    free(err);
}

START_TEST(test_config_errors)
{
    expect_conf_error("roles = ( { name = \"r\"; allow = { db_labels = "
                      "{ env = \"^(prod$\"; }; }; } );",
                      "bad regular expression");
    expect_conf_error("roles = ( { name = \"r\"; allow = { db_labels = "
                      "{ * = \"*\"; }; commands = [ \"@nosuch\" ]; }; } );",
                      "@nosuch");
    expect_conf_error("roles = ( { name = \"r\"; allow = { db_labels = "
                      "{ * = \"*\"; }; db_users = [ \"{{internal.x}}\" ]; "
                      "}; } );", "{{internal.x}}");
    expect_conf_error("roles = ( { name = \"r\"; }, { name = \"r\"; } );",
                      "twice");
}
END_TEST

static Suite *
rbac_suite(void)
{
    Suite *s = suite_create("rbac");
    TCase *tc = tcase_create("rbac");
    tcase_add_unchecked_fixture(tc, load_configs, free_configs);
    tcase_add_loop_test(tc, test_case, 0, (int)rd_countof(cases));
    tcase_add_test(tc, test_db_users_and_labels);
    tcase_add_test(tc, test_config_errors);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(rbac_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

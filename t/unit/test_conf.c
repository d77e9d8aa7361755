/*
 * test_conf.c - configuration reader, directive setters, duration and
 * size parsing.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_module.h"

static char tmpdir[256];

static void
setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rd_test_conf.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    rd_modules_init();
}

static void
teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *
write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#define GOOD_BASE                                                         \
    "listen = ( { address = \"127.0.0.1:7000\"; database = \"db\"; } );\n" \
    "databases = ( { name = \"db\"; uri = \"redis://127.0.0.1:7001\"; } );\n"

/* Load text as a config; returns the cycle or NULL with *err set. */
static rd_cycle_t *
load(const char *text, char **err)
{
    *err = NULL;
    return rd_cycle_load(write_file("redoubt.conf", text), err);
}

static void
expect_error(const char *text, const char *fragment)
{
    char *err;
    rd_cycle_t *c = load(text, &err);
    ck_assert_msg(c == NULL, "config was accepted, expected \"%s\"",
                  fragment);
    ck_assert_msg(strstr(err, fragment) != NULL, "error \"%s\" lacks \"%s\"",
                  err, fragment);
    free(err);
}

START_TEST(test_duration_units)
{
    ck_assert_int_eq(rd_parse_duration("250ms"), 250);
    ck_assert_int_eq(rd_parse_duration("30s"), 30000);
    ck_assert_int_eq(rd_parse_duration("5m"), 300000);
    ck_assert_int_eq(rd_parse_duration("8h"), 8 * 3600000LL);
    ck_assert_int_eq(rd_parse_duration("1d"), 86400000LL);
    ck_assert_int_eq(rd_parse_duration("0"), 0);
}
END_TEST

START_TEST(test_duration_rejects_garbage)
{
    ck_assert_int_eq(rd_parse_duration("30"), -1);      /* unit required */
    ck_assert_int_eq(rd_parse_duration("s"), -1);
    ck_assert_int_eq(rd_parse_duration("-5s"), -1);
    ck_assert_int_eq(rd_parse_duration("5 s"), -1);
    ck_assert_int_eq(rd_parse_duration("5sec"), -1);
    ck_assert_int_eq(rd_parse_duration(""), -1);
    ck_assert_int_eq(rd_parse_duration("99999999999999999999d"), -1);
    ck_assert_int_eq(rd_parse_duration("9999999999999999d"), -1);
}
END_TEST

START_TEST(test_size_units)
{
    ck_assert_int_eq(rd_parse_size("512"), 512);
    ck_assert_int_eq(rd_parse_size("512b"), 512);
    ck_assert_int_eq(rd_parse_size("64kb"), 65536);
    ck_assert_int_eq(rd_parse_size("64k"), 65536);
    ck_assert_int_eq(rd_parse_size("16mb"), 16777216);
    ck_assert_int_eq(rd_parse_size("512MB"), 536870912);
    ck_assert_int_eq(rd_parse_size("1gb"), 1073741824);
    ck_assert_int_eq(rd_parse_size("1tb"), -1);
    ck_assert_int_eq(rd_parse_size("mb"), -1);
    ck_assert_int_eq(rd_parse_size("-1"), -1);
    ck_assert_int_eq(rd_parse_size("99999999999999gb"), -1);
}
END_TEST

START_TEST(test_minimal_config_gets_defaults)
{
    char *err;
    rd_cycle_t *c = load(GOOD_BASE, &err);
    ck_assert_msg(c != NULL, "%s", err);
    rd_core_conf_t *ccf = rd_core_conf(c);
    ck_assert_int_eq(ccf->worker_processes, 0);               /* auto */
    ck_assert_int_eq(ccf->worker_shutdown_timeout, 30000);
    ck_assert_int_eq(ccf->max_pipeline, 1024);
    ck_assert_int_eq(ccf->client_output_limit, 64LL << 20);
    ck_assert_int_eq(ccf->idle_timeout, 600000);              /* 10m */
    ck_assert_int_eq(ccf->request_timeout, 30000);            /* 30s */
    ck_assert_int_eq(ccf->worker_rlimit_nofile, 0);           /* inherited */
    ck_assert_int_eq(c->nlisteners, 1);
    ck_assert_int_eq(c->ndatabases, 1);
    ck_assert_str_eq(c->databases[0].host, "127.0.0.1");
    ck_assert_int_eq(c->databases[0].port, 7001);
    ck_assert_int_eq(c->databases[0].connect_timeout, 5000);
    ck_assert_ptr_eq(c->listeners[0].database, &c->databases[0]);
    ck_assert_int_eq(c->listeners[0].backlog, 511);
    rd_cycle_destroy(c);
}
END_TEST

START_TEST(test_values_are_applied)
{
    char *err;
    rd_cycle_t *c = load(
        "worker_processes = 3;\n"
        "pid_file = \"run/r.pid\";\n"
        "worker_shutdown_timeout = \"250ms\";\n"
        "worker_rlimit_nofile = 4096;\n"
        "error_log = { path = \"stderr\"; level = \"debug\"; };\n"
        "limits = { max_pipeline = 16; client_output_limit = \"1mb\";\n"
        "           idle_timeout = \"1h\"; max_bulk_length = \"1kb\";\n"
        "           request_timeout = \"0\"; };\n"
        GOOD_BASE, &err);
    ck_assert_msg(c != NULL, "%s", err);
    rd_core_conf_t *ccf = rd_core_conf(c);
    ck_assert_int_eq(ccf->worker_processes, 3);
    ck_assert_int_eq(ccf->worker_shutdown_timeout, 250);
    ck_assert_int_eq(ccf->error_log_level, RD_LOG_DEBUG);
    ck_assert_int_eq(ccf->max_pipeline, 16);
    ck_assert_int_eq(ccf->client_output_limit, 1 << 20);
    ck_assert_int_eq(ccf->idle_timeout, 3600000);
    ck_assert_int_eq(ccf->request_timeout, 0);
    ck_assert_int_eq(ccf->worker_rlimit_nofile, 4096);
    /* relative paths are resolved against the file's directory */
    char want[512];
    snprintf(want, sizeof(want), "%s/run/r.pid", tmpdir);
    ck_assert_str_eq(ccf->pid_file, want);
    rd_cycle_destroy(c);
}
END_TEST

START_TEST(test_unknown_directive_has_file_and_line)
{
    char want[512];
    snprintf(want, sizeof(want), "%s/redoubt.conf:2: bogus: unknown "
             "directive", tmpdir);
    expect_error("worker_processes = 1;\nbogus = 1;\n" GOOD_BASE, want);
}
END_TEST

START_TEST(test_unknown_nested_directive)
{
    expect_error("limits = { max_pipelin = 5; };\n" GOOD_BASE,
                 ":1: limits.max_pipelin: unknown directive");
    expect_error(GOOD_BASE "databases2 = 1;\n", "databases2: unknown");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; colour = 1; } );\n"
                 "databases = ();\n", ":1: colour: unknown directive");
}
END_TEST

START_TEST(test_wrong_types)
{
    expect_error("worker_processes = \"many\";\n" GOOD_BASE,
                 ":1: worker_processes: must be a number or \"auto\"");
    expect_error("limits = { max_pipeline = \"10\"; };\n" GOOD_BASE,
                 "limits.max_pipeline: must be an integer");
    expect_error("limits = { idle_timeout = 30; };\n" GOOD_BASE,
                 "limits.idle_timeout: must be a duration");
    expect_error("limits = { idle_timeout = \"30\"; };\n" GOOD_BASE,
                 "limits.idle_timeout: must be a duration");
    expect_error("limits = { request_timeout = 30; };\n" GOOD_BASE,
                 "limits.request_timeout: must be a duration");
    expect_error("worker_rlimit_nofile = \"lots\";\n" GOOD_BASE,
                 "worker_rlimit_nofile: must be an integer");
    expect_error("limits = { client_output_limit = \"lots\"; };\n" GOOD_BASE,
                 "limits.client_output_limit: must be a size");
    expect_error("error_log = { level = \"loud\"; };\n" GOOD_BASE,
                 "error_log.level: must be one of \"error\"");
    expect_error("limits = 5;\n" GOOD_BASE, "limits: must be a group");
    expect_error("listen = { address = \"127.0.0.1:1\"; };\n",
                 "listen: must be a list");
}
END_TEST

START_TEST(test_out_of_range)
{
    expect_error("limits = { max_pipeline = 0; };\n" GOOD_BASE,
                 "limits.max_pipeline: must be between 1 and");
    expect_error("worker_processes = 0;\n" GOOD_BASE,
                 "worker_processes: must be between 1 and 1024");
    expect_error("worker_rlimit_nofile = 8;\n" GOOD_BASE,
                 "worker_rlimit_nofile: must be between 32 and");
    expect_error("limits = { max_nesting_depth = 1000; };\n" GOOD_BASE,
                 "limits.max_nesting_depth: must be between 1 and 128");
    expect_error("listen = ( { address = \"127.0.0.1:70000\"; } );\n",
                 "address: port must be a number between 1 and 65535");
}
END_TEST

START_TEST(test_missing_required)
{
    expect_error("databases = ();\n", "listen: at least one listener");
    expect_error("listen = ( { database = \"db\"; } );\n",
                 ":1: listen: each listener needs an address");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "databases = ( { uri = \"redis://127.0.0.1:2\"; } );\n",
                 ":2: databases: each database needs a name");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "databases = ( { name = \"x\"; } );\n",
                 "\"x\" needs a uri");
}
END_TEST

START_TEST(test_references_are_checked)
{
    expect_error("listen = ( { address = \"127.0.0.1:1\"; database = \"nope\";"
                 " } );\n", ":1: listen: database \"nope\" is not defined");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "databases = ( { name = \"a\"; uri = \"redis://127.0.0.1:1\"; },\n"
                 "  { name = \"a\"; uri = \"redis://127.0.0.1:2\"; } );\n",
                 ":3: databases: the name \"a\" is used twice");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; },\n"
                 "  { address = \"127.0.0.1:1\"; } );\n",
                 ":2: listen: the address \"127.0.0.1:1\" is used twice");
}
END_TEST

START_TEST(test_uri_forms)
{
    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "databases = ( { name = \"a\"; uri = \"http://x:1\"; } );\n",
                 "uri: must start with redis://");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "databases = ( { name = \"a\"; uri = \"redis://127.0.0.1:1"
                 "?mode=weird\"; } );\n", "uri: the only query parameter");
    char *err;
    rd_cycle_t *c = load("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                         "databases = ( { name = \"a\"; uri = "
                         "\"redis://127.0.0.1/?mode=standalone\"; } );\n",
                         &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->databases[0].port, 6379);
    rd_cycle_destroy(c);
}
END_TEST

START_TEST(test_uri_database_number)
{
    char *err;
    rd_cycle_t *c = load("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                         "databases = (\n"
                         " { name = \"a\"; uri = \"redis://127.0.0.1:7000/3"
                         "?mode=standalone\"; },\n"
                         " { name = \"b\"; uri = \"redis://127.0.0.1/12\"; },\n"
                         " { name = \"c\"; uri = \"redis://[::1]\"; },\n"
                         " { name = \"d\"; uri = \"redis://127.0.0.1:7001/0"
                         "?mode=cluster\"; } );\n", &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->databases[0].port, 7000);
    ck_assert_int_eq(c->databases[0].select_db, 3);
    ck_assert_int_eq(c->databases[1].port, 6379);
    ck_assert_int_eq(c->databases[1].select_db, 12);
    ck_assert_int_eq(c->databases[2].port, 6379);
    ck_assert_str_eq(c->databases[2].host, "::1");
    ck_assert_int_eq(c->databases[2].select_db, 0);
    ck_assert_int_eq(c->databases[3].mode, RD_DB_CLUSTER);
    rd_cycle_destroy(c);

    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "databases = ( { name = \"a\";\n"
                 "  uri = \"redis://127.0.0.1:7000/2?mode=cluster\"; } );\n",
                 "redoubt.conf:3: uri: a Redis Cluster has only database 0");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "databases = ( { name = \"a\";\n"
                 "  uri = \"redis://127.0.0.1:7000/two\"; } );\n",
                 "redoubt.conf:3: uri: the path after host:port must be a "
                 "database number");

    /* Credentials: refused, with where they belong, and never repeated
     * in the message. */
    const char *text = "listen = ( { address = \"127.0.0.1:1\"; } );\n"
                       "databases = ( { name = \"a\";\n"
                       "  uri = \"redis://alice:s3cr3t@127.0.0.1:7000/1\"; } );\n";
    expect_error(text, "redoubt.conf:3: uri: must not hold a user or "
                 "password");
    expect_error(text, "cluster.discovery_user");
    c = load(text, &err);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "s3cr3t") == NULL, "%s", err);
    free(err);
}
END_TEST

/* A module's start-up error (init_master) names the directive, its file
 * and line, as a reading error does. */
START_TEST(test_init_master_errors_have_directive_and_line)
{
    char *err;
    rd_cycle_t *c = load("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                         "tls = {\n"
                         "  certificate = \"/nonexistent/a.crt\";\n"
                         "  certificate_key = \"/nonexistent/a.key\";\n"
                         "  client_ca = \"/nonexistent/ca.crt\";\n"
                         "};\n", &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_ne(rd_cycle_init_master(c, &err), 0);
    ck_assert_msg(strstr(err, "redoubt.conf:3: tls.certificate: cannot open "
                          "\"/nonexistent/a.crt\": No such file") != NULL,
                  "%s", err);
    free(err);
    rd_cycle_destroy(c);

    /* Nothing set: the error points at the element that needs it. */
    c = load("listen = (\n"
             "  { address = \"127.0.0.1:1\"; tls = false; },\n"
             "  { address = \"127.0.0.1:2\"; } );\n", &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_ne(rd_cycle_init_master(c, &err), 0);
    ck_assert_msg(strstr(err, "redoubt.conf:3: listen: a TLS listener needs "
                          "tls.certificate") != NULL, "%s", err);
    free(err);
    rd_cycle_destroy(c);

    /* And a database's own directives point at its lines. */
    c = load("listen = ( { address = \"127.0.0.1:1\"; tls = false; } );\n"
             "databases = ( { name = \"a\"; uri = \"rediss://127.0.0.1:2\";\n"
             "  tls = { mode = \"insecure\";\n"
             "    certificate = \"/nonexistent/c.crt\";\n"
             "    certificate_key = \"/nonexistent/c.key\"; }; } );\n", &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_ne(rd_cycle_init_master(c, &err), 0);
    ck_assert_msg(strstr(err, "redoubt.conf:4: tls.certificate: cannot open "
                          "\"/nonexistent/c.crt\"") != NULL, "%s", err);
    free(err);
    rd_cycle_destroy(c);
}
END_TEST

START_TEST(test_user_must_exist)
{
    expect_error("user = \"no-such-user-here\";\n" GOOD_BASE,
                 ":1: user: no such user");
    char *err;
    rd_cycle_t *c = load("user = \"root\";\n" GOOD_BASE, &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(rd_core_conf(c)->uid, 0);
    rd_cycle_destroy(c);
}
END_TEST

START_TEST(test_tls_directives)
{
    char *err;
    rd_cycle_t *c = load(
        "tls = { certificate = \"a.crt\"; certificate_key = \"a.key\";\n"
        "        client_ca = \"ca.crt\"; min_protocol = \"TLSv1.3\"; };\n"
        "upstream_tls = { ca_cert = \"c.crt\"; ca_key = \"c.key\";\n"
        "                 cert_ttl = \"2h\"; };\n"
        "listen = ( { address = \"127.0.0.1:1\"; tls = false; } );\n"
        "databases = ( { name = \"d\"; uri = \"rediss://127.0.0.1:2\";\n"
        "  tls = { mode = \"verify-ca\"; server_name = \"redis1\"; }; } );\n",
        &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(c->databases[0].tls, 1);
    rd_cycle_destroy(c);

    expect_error("tls = { certificate = \"a.crt\"; };\n" GOOD_BASE,
                 "redoubt.conf:1: tls.certificate: tls.certificate and "
                 "tls.certificate_key go together");
    expect_error("tls = { min_protocol = \"SSLv3\"; };\n" GOOD_BASE,
                 ":1: tls.min_protocol: must be one of \"TLSv1.2\"");
    expect_error("upstream_tls = { cert_ttl = \"10ms\"; };\n" GOOD_BASE,
                 ":1: upstream_tls.cert_ttl: must be between 1000 and");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; tls = 1; } );\n",
                 ":1: tls: must be true or false");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "databases = ( { name = \"d\"; uri = \"redis://127.0.0.1:2\";"
                 "\n tls = { mode = \"sloppy\"; }; } );\n",
                 ":3: tls.mode: must be one of \"verify-full\"");
}
END_TEST

START_TEST(test_syntax_error_has_line)
{
    expect_error("worker_processes = 1\nlisten = (;\n", "redoubt.conf:2:");
}
END_TEST

START_TEST(test_include_reports_included_file)
{
    write_file("dbs.conf", "databases = ( { name = \"db\"; uri = "
               "\"redis://127.0.0.1:1\"; bad = 1; } );\n");
    expect_error("listen = ( { address = \"127.0.0.1:1\"; } );\n"
                 "@include \"dbs.conf\"\n", "dbs.conf:1: bad: unknown");

    write_file("dbs.conf", "databases = ( { name = \"db\"; uri = "
               "\"redis://127.0.0.1:1\"; } );\n");
    char *err;
    rd_cycle_t *c = load("listen = ( { address = \"127.0.0.1:1\"; "
                         "database = \"db\"; } );\n@include \"dbs.conf\"\n",
                         &err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_ptr_eq(c->listeners[0].database, &c->databases[0]);
    rd_cycle_destroy(c);
}
END_TEST

START_TEST(test_missing_file)
{
    char *err = NULL;
    rd_cycle_t *c = rd_cycle_load("/nonexistent/redoubt.conf", &err);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "cannot read file") != NULL, "%s", err);
    free(err);
}
END_TEST

START_TEST(test_sample_config_is_valid)
{
    const char *src = getenv("RD_SRCDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/conf/redoubt.conf", src ? src : ".");
    char *err = NULL;
    rd_cycle_t *c = rd_cycle_load(path, &err);
    ck_assert_msg(c != NULL, "%s", err);
    rd_cycle_destroy(c);
}
END_TEST

static Suite *
conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_duration_units);
    tcase_add_test(tc, test_duration_rejects_garbage);
    tcase_add_test(tc, test_size_units);
    tcase_add_test(tc, test_minimal_config_gets_defaults);
    tcase_add_test(tc, test_values_are_applied);
    tcase_add_test(tc, test_unknown_directive_has_file_and_line);
    tcase_add_test(tc, test_unknown_nested_directive);
    tcase_add_test(tc, test_wrong_types);
    tcase_add_test(tc, test_out_of_range);
    tcase_add_test(tc, test_missing_required);
    tcase_add_test(tc, test_references_are_checked);
    tcase_add_test(tc, test_uri_forms);
    tcase_add_test(tc, test_uri_database_number);
    tcase_add_test(tc, test_init_master_errors_have_directive_and_line);
    tcase_add_test(tc, test_user_must_exist);
    tcase_add_test(tc, test_tls_directives);
    tcase_add_test(tc, test_syntax_error_has_line);
    tcase_add_test(tc, test_include_reports_included_file);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_sample_config_is_valid);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

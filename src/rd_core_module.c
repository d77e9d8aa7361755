/*
 * rd_core_module.c - the core module: processes, logs, limits, listeners
 * and databases; the default target database; QUIT. And the route module:
 * each request's filter and route step, handed to its database's router.
 *
 * The elements of the listen and databases lists are the core's own
 * confs at the LISTEN and DB levels (rd_listener_t, rd_database_t), so
 * their directives are plain rows with offsets like any other.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_resp.h"
#include "rd_session.h"
#include "rd_stats.h"

#ifndef RD_LOCALSTATEDIR
#define RD_LOCALSTATEDIR "/var"
#endif

static const char *rd_core_set_workers(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);
static const char *rd_core_set_user(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);
static const char *rd_core_set_listen(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);
static const char *rd_core_set_databases(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);
static const char *rd_core_set_address(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);
static const char *rd_core_set_uri(rd_conf_t *cf,
    const config_setting_t *s, const rd_directive_t *d, void *conf);

static const rd_conf_enum_t rd_core_log_levels[] = {
    { "error", RD_LOG_ERROR }, { "warn", RD_LOG_WARN },
    { "notice", RD_LOG_NOTICE }, { "info", RD_LOG_INFO },
    { "debug", RD_LOG_DEBUG }, { NULL, 0 }
};

static const rd_conf_range_t rd_core_sessions_range = { 1, 10000000 };
static const rd_conf_range_t rd_core_pipeline_range = { 1, 1000000 };
static const rd_conf_range_t rd_core_output_range = { 1024, INT64_MAX };
static const rd_conf_range_t rd_core_pubsub_range = { 0, INT64_MAX };
static const rd_conf_range_t rd_core_soft_range = { 0, 365LL * 86400 };
static const rd_conf_range_t rd_core_subs_range = { 0, 100000000 };
static const rd_conf_range_t rd_core_backlog_range = { 1, 65535 };
static const rd_conf_range_t rd_core_timeout_range = { 0, 365LL * 86400000 };
static const rd_conf_range_t rd_core_connect_range = { 1, 3600000 };
static const rd_conf_range_t rd_core_grace_range = { 0, 3600000 };
/* Linux caps RLIMIT_NOFILE at fs.nr_open, at most 1073741816. */
static const rd_conf_range_t rd_core_nofile_range = { 32, 1073741816 };

#define M(field) offsetof(rd_core_conf_t, field)
#define L(field) offsetof(rd_listener_t, field)
#define D(field) offsetof(rd_database_t, field)

static const rd_directive_t rd_core_directives[] = {
    { "worker_processes", RD_CONF_MAIN, rd_core_set_workers,
      M(worker_processes), NULL },
    { "pid_file", RD_CONF_MAIN, rd_conf_set_path, M(pid_file), NULL },
    { "user", RD_CONF_MAIN, rd_core_set_user, M(user), NULL },
    { "worker_shutdown_timeout", RD_CONF_MAIN, rd_conf_set_msec,
      M(worker_shutdown_timeout), &rd_core_timeout_range },
    { "worker_shutdown_grace", RD_CONF_MAIN, rd_conf_set_msec,
      M(worker_shutdown_grace), &rd_core_grace_range },
    { "worker_rlimit_nofile", RD_CONF_MAIN, rd_conf_set_num,
      M(worker_rlimit_nofile), &rd_core_nofile_range },
    { "error_log.path", RD_CONF_MAIN, rd_conf_set_path, M(error_log), NULL },
    { "error_log.level", RD_CONF_MAIN, rd_conf_set_enum,
      M(error_log_level), rd_core_log_levels },
    { "limits.max_sessions", RD_CONF_MAIN, rd_conf_set_num,
      M(max_sessions), &rd_core_sessions_range },
    { "limits.idle_timeout", RD_CONF_MAIN, rd_conf_set_msec,
      M(idle_timeout), &rd_core_timeout_range },
    { "limits.handshake_timeout", RD_CONF_MAIN, rd_conf_set_msec,
      M(handshake_timeout), &rd_core_timeout_range },
    { "limits.request_timeout", RD_CONF_MAIN, rd_conf_set_msec,
      M(request_timeout), &rd_core_timeout_range },
    { "limits.max_pipeline", RD_CONF_MAIN, rd_conf_set_num,
      M(max_pipeline), &rd_core_pipeline_range },
    { "limits.client_output_limit", RD_CONF_MAIN, rd_conf_set_size,
      M(client_output_limit), &rd_core_output_range },
    { "limits.pubsub_output_limit.hard", RD_CONF_MAIN, rd_conf_set_size,
      M(pubsub_hard_limit), &rd_core_pubsub_range },
    { "limits.pubsub_output_limit.soft", RD_CONF_MAIN, rd_conf_set_size,
      M(pubsub_soft_limit), &rd_core_pubsub_range },
    { "limits.pubsub_output_limit.soft_seconds", RD_CONF_MAIN,
      rd_conf_set_num, M(pubsub_soft_seconds), &rd_core_soft_range },
    { "limits.max_subscriptions", RD_CONF_MAIN, rd_conf_set_num,
      M(max_subscriptions), &rd_core_subs_range },
    { "listen", RD_CONF_MAIN, rd_core_set_listen, 0, NULL },
    { "databases", RD_CONF_MAIN, rd_core_set_databases, 0, NULL },

    { "address", RD_CONF_LISTEN, rd_core_set_address, L(addr), NULL },
    { "database", RD_CONF_LISTEN, rd_conf_set_str, L(database_name), NULL },
    { "backlog", RD_CONF_LISTEN, rd_conf_set_num, L(backlog),
      &rd_core_backlog_range },

    { "name", RD_CONF_DB, rd_conf_set_str, D(name), NULL },
    { "uri", RD_CONF_DB, rd_core_set_uri, 0, NULL },
    { "connect_timeout", RD_CONF_DB, rd_conf_set_msec, D(connect_timeout),
      &rd_core_connect_range },
    rd_null_directive
};

/* --- main level ----------------------------------------------------------- */

static void *
rd_core_create_main(rd_conf_t *cf)
{
    rd_core_conf_t *c = rd_palloc(cf->pool, sizeof(*c));
    c->worker_processes = RD_CONF_UNSET;
    c->worker_shutdown_timeout = RD_CONF_UNSET;
    c->worker_shutdown_grace = RD_CONF_UNSET;
    c->worker_rlimit_nofile = RD_CONF_UNSET;
    c->error_log_level = RD_CONF_UNSET;
    c->max_sessions = RD_CONF_UNSET;
    c->idle_timeout = RD_CONF_UNSET;
    c->handshake_timeout = RD_CONF_UNSET;
    c->request_timeout = RD_CONF_UNSET;
    c->max_pipeline = RD_CONF_UNSET;
    c->client_output_limit = RD_CONF_UNSET;
    c->pubsub_hard_limit = RD_CONF_UNSET;
    c->pubsub_soft_limit = RD_CONF_UNSET;
    c->pubsub_soft_seconds = RD_CONF_UNSET;
    c->max_subscriptions = RD_CONF_UNSET;
    return c;
}

#define RD_DEFAULT(field, value)                                        \
    do {                                                                \
        if ((field) == RD_CONF_UNSET) {                                 \
            (field) = (value);                                          \
        }                                                               \
    } while (0)

static const char *
rd_core_init_main(rd_conf_t *cf, void *conf)
{
    rd_core_conf_t *c = conf;

    RD_DEFAULT(c->worker_processes, 0);
    RD_DEFAULT(c->worker_shutdown_timeout, 30000);
    /* After worker_shutdown_timeout: for the replies of the commands a
     * session had already sent to Redis (rd_session_drain). */
    RD_DEFAULT(c->worker_shutdown_grace, 5000);
    RD_DEFAULT(c->worker_rlimit_nofile, 0);        /* as inherited */
    RD_DEFAULT(c->error_log_level, RD_LOG_INFO);
    RD_DEFAULT(c->max_sessions, 10000);
    /* Ten minutes: an abandoned connection does not hold a session (and
     * a connection to Redis) for ever, and connection pools that keep
     * connections idle between bursts rarely leave one unused that
     * long (Azure Cache for Redis closes idle connections after 10 m). */
    RD_DEFAULT(c->idle_timeout, 600000);
    RD_DEFAULT(c->handshake_timeout, 10000);
    /* A command's bytes normally arrive within milliseconds; 30 s leave
     * room for a 512 MB value at about 17 MB/s. */
    RD_DEFAULT(c->request_timeout, 30000);
    RD_DEFAULT(c->max_pipeline, 1024);
    RD_DEFAULT(c->client_output_limit, 64LL * 1024 * 1024);
    /* Redis's client-output-buffer-limit pubsub 32mb 8mb 60. */
    RD_DEFAULT(c->pubsub_hard_limit, 32LL * 1024 * 1024);
    RD_DEFAULT(c->pubsub_soft_limit, 8LL * 1024 * 1024);
    RD_DEFAULT(c->pubsub_soft_seconds, 60);
    RD_DEFAULT(c->max_subscriptions, 10000);
    if (c->pid_file == NULL) {
        c->pid_file = RD_LOCALSTATEDIR "/run/redoubt.pid";
    }
    if (c->error_log == NULL) {
        c->error_log = "stderr";
    }

    if (c->nlisten == 0) {
        return "listen: at least one listener is required";
    }
    /* Errors about one element point at that element's line. */
    for (size_t i = 0; i < c->ndbs; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->dbs[i]->name, c->dbs[j]->name) == 0) {
                rd_conf_error(cf, c->dbs[i]->setting, "databases",
                              "the name \"%s\" is used twice",
                              c->dbs[i]->name);
                return NULL;
            }
        }
    }
    for (size_t i = 0; i < c->nlisten; i++) {
        rd_listener_t *l = c->listen[i];
        for (size_t j = 0; j < i; j++) {
            if (strcmp(l->addr.text, c->listen[j]->addr.text) == 0) {
                rd_conf_error(cf, l->setting, "listen", "the address \"%s\" "
                              "is used twice", l->addr.text);
                return NULL;
            }
        }
        if (l->database_name == NULL) {
            continue;
        }
        size_t k;
        for (k = 0; k < c->ndbs; k++) {
            if (strcmp(c->dbs[k]->name, l->database_name) == 0) {
                break;
            }
        }
        if (k == c->ndbs) {
            rd_conf_error(cf, l->setting, "listen", "database \"%s\" is not "
                          "defined in databases", l->database_name);
            return NULL;
        }
    }
    return NULL;
}

static const char *
rd_core_set_workers(rd_conf_t *cf, const config_setting_t *s,
                    const rd_directive_t *d, void *conf)
{
    rd_core_conf_t *c = conf;
    int t = config_setting_type(s);

    if (t == CONFIG_TYPE_STRING
        && strcmp(config_setting_get_string(s), "auto") == 0)
    {
        c->worker_processes = 0;
        return NULL;
    }
    if (t == CONFIG_TYPE_INT) {
        int v = config_setting_get_int(s);
        if (v < 1 || v > 1024) {
            return "must be between 1 and 1024, or \"auto\"";
        }
        c->worker_processes = v;
        return NULL;
    }
    return "must be a number or \"auto\"";
}

/* The user (and its primary group) workers switch to; resolved now so
 * that an unknown name is a configuration error, not a worker crash. */
static const char *
rd_core_set_user(rd_conf_t *cf, const config_setting_t *s,
                 const rd_directive_t *d, void *conf)
{
    rd_core_conf_t *c = conf;
    const char *err = rd_conf_set_str(cf, s, d, conf);
    if (err) {
        return err;
    }
    struct passwd *pw = getpwnam(c->user);
    if (pw == NULL) {
        return "no such user";
    }
    c->uid = pw->pw_uid;
    c->gid = pw->pw_gid;
    return NULL;
}

/* Read each element of a list of groups at the given level. The core's
 * conf at that level is the element itself. */
static const char *
rd_core_read_list(rd_conf_t *cf, const config_setting_t *s, unsigned level,
                  size_t elem_size, void ***out, size_t *nout)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_LIST) {
        return "must be a list: ( { ... }, { ... } )";
    }
    int n = config_setting_length(s);
    void **elems = rd_palloc(cf->pool, (size_t)(n ? n : 1) * sizeof(void *));

    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
        void *e = rd_palloc(cf->pool, elem_size);
        if (level == RD_CONF_LISTEN) {
            cf->listener = e;
        } else {
            cf->database = e;
        }
        void **ctx = rd_conf_create_level(cf, level);
        if (rd_conf_apply_group(cf, g, level, ctx) != 0
            || rd_conf_init_level(cf, level, ctx, g) != 0)
        {
            cf->listener = NULL;
            cf->database = NULL;
            return NULL;        /* cf->error says it */
        }
        if (level == RD_CONF_LISTEN) {
            ((rd_listener_t *)e)->ctx = ctx;
            ((rd_listener_t *)e)->setting = g;
        } else {
            ((rd_database_t *)e)->ctx = ctx;
            ((rd_database_t *)e)->setting = g;
        }
        elems[i] = e;
    }
    cf->listener = NULL;
    cf->database = NULL;
    *out = elems;
    *nout = (size_t)n;
    return NULL;
}

static const char *
rd_core_set_listen(rd_conf_t *cf, const config_setting_t *s,
                   const rd_directive_t *d, void *conf)
{
    rd_core_conf_t *c = conf;
    if (c->listen) {
        return "is duplicate";
    }
    return rd_core_read_list(cf, s, RD_CONF_LISTEN, sizeof(rd_listener_t),
                             (void ***)&c->listen, &c->nlisten);
}

static const char *
rd_core_set_databases(rd_conf_t *cf, const config_setting_t *s,
                      const rd_directive_t *d, void *conf)
{
    rd_core_conf_t *c = conf;
    if (c->dbs) {
        return "is duplicate";
    }
    return rd_core_read_list(cf, s, RD_CONF_DB, sizeof(rd_database_t),
                             (void ***)&c->dbs, &c->ndbs);
}

/* --- listen level ----------------------------------------------------------- */

static void *
rd_core_create_listen(rd_conf_t *cf)
{
    rd_listener_t *l = cf->listener;
    l->backlog = RD_CONF_UNSET;
    return l;
}

static const char *
rd_core_init_listen(rd_conf_t *cf, void *conf)
{
    rd_listener_t *l = conf;
    if (l->addr.text == NULL) {
        return "listen: each listener needs an address";
    }
    RD_DEFAULT(l->backlog, 511);
    return NULL;
}

static const char *
rd_core_set_address(rd_conf_t *cf, const config_setting_t *s,
                    const rd_directive_t *d, void *conf)
{
    rd_listener_t *l = conf;
    const char *err;
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        return "must be a string \"host:port\"";
    }
    if (rd_sockaddr_parse(cf->pool, config_setting_get_string(s), &l->addr,
                          &err) != 0)
    {
        return err;
    }
    return NULL;
}

/* --- database level --------------------------------------------------------- */

static void *
rd_core_create_db(rd_conf_t *cf)
{
    rd_database_t *db = cf->database;
    db->connect_timeout = RD_CONF_UNSET;
    return db;
}

static const char *
rd_core_init_db(rd_conf_t *cf, void *conf)
{
    rd_database_t *db = conf;
    if (db->name == NULL) {
        return "databases: each database needs a name";
    }
    if (db->uri == NULL) {
        return rd_psprintf(cf->pool, "databases: \"%s\" needs a uri",
                           db->name);
    }
    RD_DEFAULT(db->connect_timeout, 5000);
    return NULL;
}

/*
 * "redis://host:port" or "rediss://host:port", then an optional database
 * number "/N" (standalone databases: the standalone module sends SELECT N
 * on each new connection before the session's commands) and an optional
 * query "?mode=standalone|cluster". The address is resolved now, in the
 * master, so that workers never block on DNS. Credentials are refused:
 * redoubt has no password of its own for Redis (see below), and an error
 * message never repeats the uri, which would show the password.
 */
static const char *
rd_core_set_uri(rd_conf_t *cf, const config_setting_t *s,
                const rd_directive_t *d, void *conf)
{
    rd_database_t *db = conf;
    char hostport[300];
    const char *err;

    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        return "must be a string such as \"redis://127.0.0.1:6379\"";
    }
    const char *uri = config_setting_get_string(s);
    const char *p;
    if (strncmp(uri, "redis://", 8) == 0) {
        p = uri + 8;
        db->tls = 0;
    } else if (strncmp(uri, "rediss://", 9) == 0) {
        p = uri + 9;
        db->tls = 1;
    } else {
        return "must start with redis:// or rediss://";
    }

    /* host:port ends at the path or the query. */
    size_t n = strcspn(p, "/?");
    const char *path = p[n] == '/' ? p + n + 1 : NULL;
    const char *q = strchr(p + n, '?');
    if (memchr(p, '@', n) != NULL) {
        return "must not hold a user or password (\"user:password@\"): "
               "each session authenticates to Redis with its own AUTH (or "
               "HELLO ... AUTH), passed through, or with the client "
               "certificate minted for its database user on rediss://; a "
               "cluster database reads its slot map as "
               "cluster.discovery_user with cluster.discovery_password";
    }
    if (n == 0 || n >= sizeof(hostport) - 6) {
        return "needs host:port after the scheme";
    }
    memcpy(hostport, p, n);
    hostport[n] = '\0';

    /* "/N": the database number; "/" alone is allowed. */
    db->select_db = 0;
    if (path && path != q && *path != '?' && *path != '\0') {
        size_t m = q ? (size_t)(q - path) : strlen(path);
        int64_t v = 0;
        for (size_t i = 0; i < m; i++) {
            if (path[i] < '0' || path[i] > '9' || v > 100000000) {
                return "the path after host:port must be a database "
                       "number, such as \"/2\" (SELECT 2 when a session "
                       "connects)";
            }
            v = v * 10 + (path[i] - '0');
        }
        if (v > INT32_MAX) {
            return "the database number after host:port is too large";
        }
        db->select_db = v;
    }

    db->mode = RD_DB_STANDALONE;
    if (q) {
        if (strcmp(q, "?mode=standalone") == 0) {
            db->mode = RD_DB_STANDALONE;
        } else if (strcmp(q, "?mode=cluster") == 0) {
            db->mode = RD_DB_CLUSTER;
        } else {
            return "the only query parameter is mode=standalone or "
                   "mode=cluster";
        }
    }
    if (db->mode == RD_DB_CLUSTER && db->select_db != 0) {
        return "a Redis Cluster has only database 0: remove the \"/N\" "
               "after host:port, or use a standalone database";
    }
    if (strchr(hostport, ':') == NULL
        || (hostport[0] == '[' && hostport[n - 1] == ']'))
    {
        strcat(hostport, ":6379");
    }
    if (rd_sockaddr_parse(cf->pool, hostport, &db->addr, &err) != 0) {
        return err;
    }
    char *colon = strrchr(hostport, ':');
    *colon = '\0';
    db->host = rd_pstrdup(cf->pool, hostport[0] == '[' ? hostport + 1
                                                         : hostport);
    if (db->host[0] && db->host[strlen(db->host) - 1] == ']') {
        db->host[strlen(db->host) - 1] = '\0';
    }
    db->port = (uint16_t)atoi(colon + 1);
    db->uri = rd_pstrdup(cf->pool, uri);
    return NULL;
}

/* --- open files --------------------------------------------------------- */

/* Descriptors a worker holds besides its sessions' (standard streams,
 * logs, epoll, signalfd, ...), on top of one per listener and database. */
#define RD_NOFILE_MARGIN 32

int
rd_core_set_nofile(int64_t n, char *err, size_t len)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(err, len, "worker_rlimit_nofile: getrlimit(RLIMIT_NOFILE): "
                 "%s", strerror(errno));
        return -1;
    }
    struct rlimit want = { (rlim_t)n, rl.rlim_max };
    if (rl.rlim_max != RLIM_INFINITY && (rlim_t)n > rl.rlim_max) {
        want.rlim_max = (rlim_t)n;
    }
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
        return 0;
    }
    int e = errno;
    long long nr_open = -1;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (f) {
        if (fscanf(f, "%lld", &nr_open) != 1) {
            nr_open = -1;
        }
        fclose(f);
    }
    snprintf(err, len, "worker_rlimit_nofile = %lld: cannot set the open "
             "files limit (RLIMIT_NOFILE): %s (the hard limit is %llu and "
             "only root, or CAP_SYS_RESOURCE, may raise it; no limit may "
             "pass fs.nr_open = %lld)", (long long)n, strerror(e),
             (unsigned long long)rl.rlim_max, nr_open);
    errno = e;
    return -1;
}

/*
 * The workers set worker_rlimit_nofile for themselves when they start
 * (rd_worker.c), so that each has its own cycle's value; the master only
 * tries it here (for "redoubt -t", at start and on reload) and puts its
 * own limit back, so that a value that cannot be set is a configuration
 * error and not a worker that dies at every restart. Then it warns when
 * limits.max_sessions needs more descriptors than the workers will have.
 */
static int
rd_core_init_master(rd_cycle_t *cycle)
{
    rd_core_conf_t *c = rd_core_conf(cycle);
    struct rlimit cur;
    char err[512];

    if (getrlimit(RLIMIT_NOFILE, &cur) != 0) {
        return rd_cycle_error(cycle, cycle->main_conf, NULL,
                              "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    }
    rlim_t limit = cur.rlim_cur;
    if (c->worker_rlimit_nofile > 0) {
        if (rd_core_set_nofile(c->worker_rlimit_nofile, err,
                               sizeof(err)) != 0)
        {
            /* err starts with the directive's name: put its file and
             * line in front, "FILE:LINE: worker_rlimit_nofile = N: ..." */
            char where[1024];
            size_t k = strlen("worker_rlimit_nofile");
            rd_conf_where(cycle, cycle->main_conf, "worker_rlimit_nofile",
                          where, sizeof(where));
            int named = strncmp(err, "worker_rlimit_nofile", k) == 0;
            if (cycle->error == NULL) {
                cycle->error = rd_psprintf(cycle->pool, "%s%s%s", where,
                                           named ? "" : ": ",
                                           named ? err + k : err);
            }
            return RD_ERROR;
        }
        if (setrlimit(RLIMIT_NOFILE, &cur) != 0) {
            rd_log_warn("cannot restore the master's open files limit: %s",
                        strerror(errno));
        }
        limit = (rlim_t)c->worker_rlimit_nofile;
    }

    uint64_t margin = RD_NOFILE_MARGIN + cycle->nlisteners
                      + cycle->ndatabases;
    uint64_t need = 2 * (uint64_t)c->max_sessions + margin;
    if (limit != RLIM_INFINITY && need > (uint64_t)limit) {
        int set = c->worker_rlimit_nofile > 0;
        rd_log_warn("limits.max_sessions = %lld per worker may need %llu "
                    "open files in each worker, but %s is %llu (counting 2 "
                    "per session, the client's connection and one to Redis, "
                    "more to a Redis Cluster, plus %llu for logs, listeners "
                    "and databases); connections past the limit wait in the "
                    "listen queue and the error log says \"Too many open "
                    "files\": %s worker_rlimit_nofile or lower "
                    "limits.max_sessions to %llu",
                    (long long)c->max_sessions, (unsigned long long)need,
                    set ? "worker_rlimit_nofile"
                        : "the open files limit redoubt was started with "
                          "(RLIMIT_NOFILE)",
                    (unsigned long long)limit, (unsigned long long)margin,
                    set ? "raise" : "set",
                    (unsigned long long)(limit > margin
                                         ? (limit - margin) / 2 : 0));
    }
    return RD_OK;
}

/* --- phase handlers ----------------------------------------------------- */

/* The target database: a module earlier in the registry may have chosen
 * one (from the certificate's route or the TLS server name); otherwise
 * the listener's default. */
static int
rd_core_authorize(rd_session_t *s, rd_request_t *r)
{
    if (s->database == NULL) {
        s->database = s->listener->database;
    }
    if (s->database == NULL) {
        rd_stats_refusal(RD_REFUSAL_NO_DATABASE);
        rd_session_refuse(s, "ERR redoubt: no database selected: this "
                          "listener has no default database");
        return RD_ERROR;
    }
    return RD_OK;
}

/* QUIT is answered here, as redis-server does: +OK, then close. The
 * session engine sends QUIT past the filter phase (rd_session.c), so no
 * module can refuse it; it is counted and audited as any command. */
static int
rd_core_intercept(rd_session_t *s, rd_request_t *r)
{
    if (r->conncmd.kind == RD_CONN_QUIT) {
        rd_request_reply_append(r, "+OK\r\n", 5);
        r->close_after = 1;
        return RD_DONE;
    }
    return RD_DECLINED;
}

static int
rd_core_postconfiguration(rd_cycle_t *cycle)
{
    rd_phase_add(cycle, RD_PHASE_AUTHORIZE, rd_core_authorize);
    rd_phase_add(cycle, RD_PHASE_INTERCEPT, rd_core_intercept);
    return RD_OK;
}

rd_module_t rd_core_module = {
    .name = "core",
    .directives = rd_core_directives,
    .create_conf = { rd_core_create_main, rd_core_create_listen,
                     rd_core_create_db },
    .init_conf = { rd_core_init_main, rd_core_init_listen, rd_core_init_db },
    .postconfiguration = rd_core_postconfiguration,
    .init_master = rd_core_init_master,
};

/* --- the route module --------------------------------------------------- */

/*
 * A database's router (rd_cycle.h) is set by the module that serves its
 * mode; this module calls it. It is a registry entry of its own so that
 * the router's filter runs where the registry places it among the other
 * modules' filters (after rbac's: rd_modules.c says why), whichever
 * module routes the database.
 */

/* Every database has a router once all modules have seen it (the
 * database-level hooks ran while the list was read, before this). */
static const char *
rd_route_init_main(rd_conf_t *cf, void *conf)
{
    rd_core_conf_t *c = rd_core_conf(cf->cycle);

    for (size_t i = 0; i < c->ndbs; i++) {
        rd_database_t *db = c->dbs[i];
        if (db->router == NULL) {
            rd_conf_error_at(cf, db->ctx, "uri", "database \"%s\": no "
                             "module of this build routes a mode=%s "
                             "database", db->name,
                             db->mode == RD_DB_CLUSTER ? "cluster"
                                                       : "standalone");
            return NULL;
        }
    }
    return NULL;
}

static int
rd_route_filter(rd_session_t *s, rd_request_t *r)
{
    const rd_router_t *rt = s->database->router;
    return rt && rt->filter ? rt->filter(s, r) : RD_DECLINED;
}

/* Declined without a router: the core answers "no route". */
static int
rd_route_route(rd_session_t *s, rd_request_t *r)
{
    const rd_router_t *rt = s->database->router;
    return rt ? rt->route(s, r) : RD_DECLINED;
}

static int
rd_route_postconfiguration(rd_cycle_t *cycle)
{
    rd_phase_add(cycle, RD_PHASE_FILTER, rd_route_filter);
    return rd_phase_add(cycle, RD_PHASE_ROUTE, rd_route_route);
}

rd_module_t rd_route_module = {
    .name = "route",
    .init_conf = { rd_route_init_main, NULL, NULL },
    .postconfiguration = rd_route_postconfiguration,
};

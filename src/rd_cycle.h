/*
 * rd_cycle.h - one loaded configuration and everything made from it.
 *
 * The master builds a cycle from the file, with its listeners bound and
 * every module's master hook run. A reload builds a whole new cycle; only
 * when that succeeded are the old workers retired. A failed reload frees
 * the half-built cycle and changes nothing.
 */
#ifndef RD_CYCLE_H
#define RD_CYCLE_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "rd_core.h"
#include "rd_conf.h"
#include "rd_module.h"

typedef struct {
    struct sockaddr_storage addr;
    socklen_t               len;
    char                   *text;       /* "host:port" as configured */
} rd_sockaddr_t;

struct rd_listener_s {
    rd_sockaddr_t   addr;
    int64_t         backlog;
    char           *database_name;      /* the listener's default */
    rd_database_t  *database;
    /* One SO_REUSEPORT socket per worker slot: the kernel spreads new
     * connections evenly over the workers, and a reloaded or restarted
     * worker takes over its slot's socket and its accept queue. */
    int            *fds;
    unsigned char  *inherited;          /* fds[k] taken over from the old
                                           cycle */
    unsigned        nfds;
    void          **ctx;                /* per-module listen confs */
    const config_setting_t *setting;    /* while reading: for errors */
};

typedef enum {
    RD_DB_STANDALONE = 0,
    RD_DB_CLUSTER
} rd_db_mode_t;

/*
 * How a database's requests reach Redis, chosen once per database while
 * the configuration is read, as nginx's proxy_pass sets a server's
 * content handler: the module that serves the database's mode
 * (standalone, cluster) claims it in its database-level init_conf hook.
 * The core's route module (rd_core_module.c) then calls these in the
 * filter and route phases; a database no module claimed is a
 * configuration error. The handlers take and return what phase handlers
 * do (rd_module.h).
 */
typedef struct {
    const char          *name;          /* the module, for messages */
    rd_phase_handler_pt  filter;        /* refuse what it cannot route
                                           (RD_DONE), or NULL */
    rd_phase_handler_pt  route;         /* send the request on */
} rd_router_t;

struct rd_database_s {
    char           *name;
    char           *uri;
    int             tls;                /* rediss:// */
    rd_db_mode_t    mode;
    const rd_router_t *router;          /* set by the mode's module */
    char           *host;
    uint16_t        port;
    int64_t         select_db;          /* the uri's "/N", 0: none */
    rd_sockaddr_t   addr;
    int64_t         connect_timeout;    /* ms */
    void          **ctx;                /* per-module database confs */
    const config_setting_t *setting;    /* while reading: for errors */
};

struct rd_cycle_s {
    rd_pool_t      *pool;
    char           *conf_file;
    void          **main_conf;
    rd_conf_where_t *where;             /* where directives were set */
    char           *error;              /* first init_master error */

    rd_listener_t  *listeners;
    size_t          nlisteners;
    rd_database_t  *databases;
    size_t          ndatabases;

    int64_t         nworkers;           /* worker_processes, "auto" resolved */

    /* Services the modules install (postconfiguration): the limits for
     * replies from Redis (resp) and TLS to Redis (upstream_tls); the
     * upstream connections (rd_upstream.c) use them. */
    const struct rd_resp_limits_s  *reply_limits;
    const struct rd_upstream_io_s  *upstream_tls;
    rd_phase_handler_pt *phases[RD_PHASE_MAX];
    size_t               nphases[RD_PHASE_MAX];
};

/* Core settings (the core module's main conf). */
typedef struct {
    int64_t  worker_processes;          /* 0 = auto */
    char    *user;                      /* workers run as this user */
    uid_t    uid;
    gid_t    gid;
    char    *pid_file;
    int64_t  worker_shutdown_timeout;
    int64_t  worker_shutdown_grace;     /* then, for replies already due */
    int64_t  worker_rlimit_nofile;      /* 0 = as inherited */
    char    *error_log;
    int64_t  error_log_level;
    int64_t  max_sessions;
    int64_t  idle_timeout;
    int64_t  handshake_timeout;
    int64_t  request_timeout;           /* a started request, whole */
    int64_t  max_pipeline;
    int64_t  client_output_limit;
    /* A subscribed session's output (rd_session_push): closed above
     * hard, or above soft for soft_seconds; 0 = no such limit. */
    int64_t  pubsub_hard_limit;
    int64_t  pubsub_soft_limit;
    int64_t  pubsub_soft_seconds;
    int64_t  max_subscriptions;         /* channels + patterns, 0 = none */
    /* listen and databases elements, collected while reading */
    rd_listener_t **listen;
    size_t          nlisten;
    rd_database_t **dbs;
    size_t          ndbs;
} rd_core_conf_t;

extern rd_module_t rd_core_module;

/* Set this process's open files limit (RLIMIT_NOFILE) to n, raising the
 * hard limit when it is lower (root or CAP_SYS_RESOURCE only). Returns 0,
 * or -1 with a message for worker_rlimit_nofile in err. */
int rd_core_set_nofile(int64_t n, char *err, size_t len);

#define rd_main_conf(cycle, module) ((cycle)->main_conf[(module).index])
#define rd_core_conf(cycle) \
    ((rd_core_conf_t *)rd_main_conf(cycle, rd_core_module))

/* Read path into a new cycle; on failure returns NULL and *err (malloc'd). */
rd_cycle_t *rd_cycle_load(const char *path, char **err);
/* Bind listeners, taking over sockets of old (may be NULL) with the same
 * address. Returns 0, or -1 with *err. */
int  rd_cycle_open_listeners(rd_cycle_t *cycle, rd_cycle_t *old, char **err);
/* Undo rd_cycle_open_listeners' take-over (a reload that failed later). */
void rd_cycle_give_back_listeners(rd_cycle_t *cycle, rd_cycle_t *old);
/* Run the modules' master hooks. */
int  rd_cycle_init_master(rd_cycle_t *cycle, char **err);
/* Close the listening sockets this process holds for cycle (all slots). */
void rd_cycle_close_listeners(rd_cycle_t *cycle);
/* Close listeners (those not taken over by a newer cycle) and free. */
void rd_cycle_destroy(rd_cycle_t *cycle);

rd_database_t *rd_cycle_find_database(rd_cycle_t *cycle, const char *name,
                                      size_t len);

/* Parse "host:port", "[v6]:port" or ":port"; numeric hosts or names. */
int rd_sockaddr_parse(rd_pool_t *pool, const char *text, rd_sockaddr_t *sa,
                      const char **err);

#endif

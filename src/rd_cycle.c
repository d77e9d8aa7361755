/*
 * rd_cycle.c - building, binding and freeing a configuration cycle.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rd_cycle.h"
#include "rd_log.h"

void
rd_cycle_close_listeners(rd_cycle_t *cycle)
{
    for (size_t i = 0; i < cycle->nlisteners; i++) {
        rd_listener_t *l = &cycle->listeners[i];
        for (unsigned k = 0; k < l->nfds; k++) {
            if (l->fds[k] >= 0) {
                close(l->fds[k]);
                l->fds[k] = -1;
            }
        }
    }
}

static void
rd_cycle_listeners_cleanup(void *data)
{
    rd_cycle_close_listeners(data);
}

rd_cycle_t *
rd_cycle_load(const char *path, char **err)
{
    rd_pool_t *pool = rd_pool_create();
    rd_cycle_t *cycle = rd_palloc(pool, sizeof(rd_cycle_t));
    cycle->pool = pool;
    cycle->conf_file = rd_pstrdup(pool, path);

    rd_conf_t cf = { .pool = pool, .cycle = cycle };

    if (rd_conf_read(&cf, path) != 0) {
        *err = rd_strdup(cf.error ? cf.error : "configuration error");
        rd_pool_destroy(pool);
        return NULL;
    }

    /* The core's main init hook collected listen and databases elements;
     * lay them out as arrays for the workers. */
    rd_core_conf_t *ccf = rd_core_conf(cycle);
    cycle->nworkers = ccf->worker_processes;
    if (cycle->nworkers <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cycle->nworkers = cpus > 0 ? cpus : 1;
    }
    cycle->nlisteners = ccf->nlisten;
    cycle->listeners = rd_palloc(pool, ccf->nlisten * sizeof(rd_listener_t));
    for (size_t i = 0; i < ccf->nlisten; i++) {
        rd_listener_t *l = &cycle->listeners[i];
        *l = *ccf->listen[i];
        l->nfds = (unsigned)cycle->nworkers;
        l->fds = rd_palloc(pool, l->nfds * sizeof(int));
        l->inherited = rd_palloc(pool, l->nfds);
        for (unsigned k = 0; k < l->nfds; k++) {
            l->fds[k] = -1;
        }
        cycle->listeners[i].ctx[rd_core_module.index] = &cycle->listeners[i];
    }
    cycle->ndatabases = ccf->ndbs;
    cycle->databases = rd_palloc(pool, ccf->ndbs * sizeof(rd_database_t));
    for (size_t i = 0; i < ccf->ndbs; i++) {
        cycle->databases[i] = *ccf->dbs[i];
        cycle->databases[i].ctx[rd_core_module.index] = &cycle->databases[i];
    }
    for (size_t i = 0; i < cycle->nlisteners; i++) {
        rd_listener_t *l = &cycle->listeners[i];
        l->database = NULL;
        if (l->database_name) {
            l->database = rd_cycle_find_database(cycle, l->database_name,
                                                 strlen(l->database_name));
        }
    }
    rd_pool_cleanup_add(pool, rd_cycle_listeners_cleanup, cycle);

    for (unsigned i = 0; i < rd_nmodules; i++) {
        if (rd_modules[i]->postconfiguration
            && rd_modules[i]->postconfiguration(cycle) != RD_OK)
        {
            *err = rd_strdup("module postconfiguration failed");
            rd_pool_destroy(pool);
            return NULL;
        }
    }
    return cycle;
}

int
rd_cycle_init_master(rd_cycle_t *cycle, char **err)
{
    for (unsigned i = 0; i < rd_nmodules; i++) {
        if (rd_modules[i]->init_master
            && rd_modules[i]->init_master(cycle) != RD_OK)
        {
            /* A hook says what is wrong with rd_cycle_error(), at the
             * directive that named the file or the socket. */
            if (cycle->error) {
                *err = rd_strdup(cycle->error);
            } else {
                char buf[128];
                snprintf(buf, sizeof(buf), "%s: module \"%s\" could not "
                         "start", cycle->conf_file, rd_modules[i]->name);
                *err = rd_strdup(buf);
            }
            return -1;
        }
    }
    return 0;
}

static int
rd_listener_bind(rd_cycle_t *cycle, rd_listener_t *l, unsigned k, char **err)
{
    char buf[1536], where[1024];
    int e;
    int fd = socket(l->addr.addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        goto fail;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        goto fail;
    }
    if (l->addr.addr.ss_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, (struct sockaddr *)&l->addr.addr, l->addr.len) != 0) {
        goto fail;
    }
    if (listen(fd, (int)l->backlog) != 0) {
        goto fail;
    }
    l->fds[k] = fd;
    return 0;

fail:
    e = errno;
    snprintf(buf, sizeof(buf), "%s: cannot listen on %s: %s",
             rd_conf_where(cycle, l->ctx, "address", where, sizeof(where)),
             l->addr.text, strerror(e));
    if (fd >= 0) {
        close(fd);
    }
    *err = rd_strdup(buf);
    return -1;
}

static rd_listener_t *
rd_cycle_same_listener(rd_cycle_t *old, rd_listener_t *l)
{
    for (size_t j = 0; old && j < old->nlisteners; j++) {
        rd_listener_t *o = &old->listeners[j];
        if (o->addr.len == l->addr.len
            && memcmp(&o->addr.addr, &l->addr.addr, l->addr.len) == 0)
        {
            return o;
        }
    }
    return NULL;
}

int
rd_cycle_open_listeners(rd_cycle_t *cycle, rd_cycle_t *old, char **err)
{
    for (size_t i = 0; i < cycle->nlisteners; i++) {
        rd_listener_t *l = &cycle->listeners[i];
        rd_listener_t *o = rd_cycle_same_listener(old, l);

        for (unsigned k = 0; k < l->nfds; k++) {
            /* A socket the running server already has for this address
             * and slot is handed over, so a reload does not drop the
             * connections waiting in its accept queue. */
            if (o && k < o->nfds && o->fds[k] >= 0) {
                l->fds[k] = o->fds[k];
                l->inherited[k] = 1;
                o->fds[k] = -1;
                if (l->backlog != o->backlog) {
                    listen(l->fds[k], (int)l->backlog);
                }
                continue;
            }
            if (rd_listener_bind(cycle, l, k, err) != 0) {
                rd_cycle_give_back_listeners(cycle, old);
                return -1;
            }
        }
    }
    return 0;
}

void
rd_cycle_give_back_listeners(rd_cycle_t *cycle, rd_cycle_t *old)
{
    for (size_t i = 0; i < cycle->nlisteners; i++) {
        rd_listener_t *l = &cycle->listeners[i];
        rd_listener_t *o = rd_cycle_same_listener(old, l);

        for (unsigned k = 0; k < l->nfds; k++) {
            if (l->inherited[k] && o && k < o->nfds) {
                o->fds[k] = l->fds[k];
            } else if (l->fds[k] >= 0) {
                close(l->fds[k]);
            }
            l->fds[k] = -1;
            l->inherited[k] = 0;
        }
    }
}

void
rd_cycle_destroy(rd_cycle_t *cycle)
{
    if (cycle) {
        rd_pool_destroy(cycle->pool);
    }
}

rd_database_t *
rd_cycle_find_database(rd_cycle_t *cycle, const char *name, size_t len)
{
    for (size_t i = 0; i < cycle->ndatabases; i++) {
        rd_database_t *db = &cycle->databases[i];
        if (strlen(db->name) == len && memcmp(db->name, name, len) == 0) {
            return db;
        }
    }
    return NULL;
}

int
rd_sockaddr_parse(rd_pool_t *pool, const char *text, rd_sockaddr_t *sa,
                  const char **err)
{
    char host[256];
    const char *port;
    const char *colon;

    if (text[0] == '[') {
        const char *close_br = strchr(text, ']');
        if (close_br == NULL || close_br[1] != ':') {
            *err = "must be \"host:port\" or \"[ipv6]:port\"";
            return -1;
        }
        size_t n = (size_t)(close_br - text - 1);
        if (n >= sizeof(host)) {
            *err = "host name is too long";
            return -1;
        }
        memcpy(host, text + 1, n);
        host[n] = '\0';
        port = close_br + 2;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            *err = "must be \"host:port\"";
            return -1;
        }
        size_t n = (size_t)(colon - text);
        if (n >= sizeof(host)) {
            *err = "host name is too long";
            return -1;
        }
        memcpy(host, text, n);
        host[n] = '\0';
        port = colon + 1;
    }

    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 1 || p > 65535 || errno) {
        *err = "port must be a number between 1 and 65535";
        return -1;
    }

    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (host[0] == '\0' ? AI_PASSIVE : 0);
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        *err = rc == EAI_NONAME ? "host not found" : gai_strerror(rc);
        return -1;
    }
    memcpy(&sa->addr, res->ai_addr, res->ai_addrlen);
    sa->len = res->ai_addrlen;
    freeaddrinfo(res);
    sa->text = rd_pstrdup(pool, text);
    return 0;
}

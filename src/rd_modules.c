/*
 * rd_modules.c - the registry: every module, once.
 *
 * The order here is the order in which the handlers of one phase run
 * (each module's postconfiguration pushes its handlers in turn). Adding a
 * feature means adding its module to this list and nothing else in the
 * core.
 */
#include "config.h"

#include "rd_module.h"

extern rd_module_t rd_core_module;
extern rd_module_t rd_resp_module;
extern rd_module_t rd_tls_module;
extern rd_module_t rd_introspect_module;
extern rd_module_t rd_rbac_module;
extern rd_module_t rd_standalone_module;
extern rd_module_t rd_cluster_module;
extern rd_module_t rd_upstream_tls_module;
extern rd_module_t rd_status_module;
extern rd_module_t rd_audit_module;

rd_module_t *rd_modules[] = {
    &rd_resp_module,          /* decode, HELLO 3 */
    &rd_tls_module,           /* handshake, identify (certificate, SNI) */
    &rd_core_module,          /* authorize (default database), intercept QUIT */
    /* Before rbac: its filter answers REDOUBT DATABASES before any AUTH
     * and whatever the roles' command rules (rd_rbac_introspect.c). */
    &rd_introspect_module,    /* REDOUBT DATABASES: what the roles reach */
    &rd_rbac_module,          /* authorize roles; filter AUTH, commands, keys */
    &rd_standalone_module,    /* route to a standalone Redis */
    &rd_cluster_module,       /* route to a Redis Cluster: slots, fan-out */
    &rd_upstream_tls_module,  /* mutual TLS to Redis, minted certificates */
    &rd_status_module,        /* shared counters; /metrics, /healthz */
    /* Keep audit LAST: its authorize handler logs session.start "allowed"
     * only after every other module let the session in, and its audit
     * handler sees each reply as the client gets it. */
    &rd_audit_module,         /* JSON Lines audit log; refuses commands
                                 while it cannot write (on_failure) */
};

unsigned rd_nmodules = sizeof(rd_modules) / sizeof(rd_modules[0]);

/*
 * rd_modules.c - the registry: every module, once.
 *
 * The order here is the order in which the handlers of one phase run
 * (each module's postconfiguration pushes its handlers in turn), and the
 * order of the init_master, init_worker, session_start and session_end
 * hooks; exit_worker hooks run in the reverse order. Adding a feature
 * means adding its module to this list and nothing else in the core.
 */
#include "config.h"

#include "rd_module.h"

extern rd_module_t rd_core_module;
extern rd_module_t rd_resp_module;
extern rd_module_t rd_tls_module;
extern rd_module_t rd_introspect_module;
extern rd_module_t rd_rbac_module;
extern rd_module_t rd_route_module;
extern rd_module_t rd_standalone_module;
extern rd_module_t rd_cluster_module;
extern rd_module_t rd_upstream_tls_module;
extern rd_module_t rd_status_module;
extern rd_module_t rd_audit_module;

/*
 * Why this order (only the pairs named here depend on each other):
 *  - core before rbac: its authorize handler sets the default database
 *    rbac checks (tls's identify, an earlier phase, may have set one);
 *  - audit before introspect, rbac and route: its filter refuses every
 *    command while the audit log cannot be written (on_failure = block;
 *    REDOUBT under either setting) before any other filter answers it;
 *  - introspect before rbac: its filter answers REDOUBT DATABASES before
 *    any AUTH and whatever the roles' command rules
 *    (rd_rbac_introspect.c);
 *  - rbac before route: the router's filter (commands the database's mode
 *    does not support) sees only what the roles allow.
 * The audit module needs no later place: session.start comes from its
 * session_start hook, which runs once every session phase has passed,
 * and its audit handler sees each reply as the client gets it because
 * the audit phase follows every module's reply phase. QUIT passes no
 * filter (the core answers it in its intercept).
 */
rd_module_t *rd_modules[] = {
    &rd_resp_module,          /* decode, HELLO 3 */
    &rd_tls_module,           /* handshake, identify (certificate, SNI) */
    &rd_core_module,          /* authorize (default database), intercept QUIT */
    &rd_audit_module,         /* JSON Lines audit log; refuses commands
                                 while it cannot write (on_failure) */
    &rd_introspect_module,    /* REDOUBT DATABASES: what the roles reach */
    &rd_rbac_module,          /* authorize roles; filter AUTH, commands, keys */
    &rd_route_module,         /* the database's router: filter, route */
    &rd_standalone_module,    /* route to a standalone Redis */
    &rd_cluster_module,       /* route to a Redis Cluster: slots, fan-out */
    &rd_upstream_tls_module,  /* mutual TLS to Redis, minted certificates */
    &rd_status_module,        /* shared counters; /metrics, /healthz */
};

unsigned rd_nmodules = sizeof(rd_modules) / sizeof(rd_modules[0]);

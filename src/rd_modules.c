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
extern rd_module_t rd_rbac_module;
extern rd_module_t rd_standalone_module;
extern rd_module_t rd_upstream_tls_module;

rd_module_t *rd_modules[] = {
    &rd_resp_module,          /* decode, HELLO 3 */
    &rd_tls_module,           /* handshake, identify (certificate, SNI) */
    &rd_core_module,          /* authorize (default database), intercept QUIT */
    &rd_rbac_module,          /* authorize roles; filter AUTH, commands, keys */
    &rd_standalone_module,    /* route to a standalone Redis */
    &rd_upstream_tls_module,  /* mutual TLS to Redis, minted certificates */
};

unsigned rd_nmodules = sizeof(rd_modules) / sizeof(rd_modules[0]);

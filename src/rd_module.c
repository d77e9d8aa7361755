/*
 * rd_module.c - module registry bookkeeping, phase registration and the
 * modules' helper processes.
 */
#include "config.h"

#include <stdlib.h>

#include "rd_cycle.h"
#include "rd_log.h"
#include "rd_module.h"
#include "rd_stats.h"

int
rd_modules_init(void)
{
    char err[256];

    for (unsigned i = 0; i < rd_nmodules; i++) {
        rd_modules[i]->index = i;
    }
    if (rd_stats_modules_init(err, sizeof(err)) != 0) {
        rd_log_error("%s", err);
        return RD_ERROR;
    }
    return RD_OK;
}

int
rd_phase_add(rd_cycle_t *cycle, rd_phase_t phase, rd_phase_handler_pt h)
{
    size_t n = cycle->nphases[phase];
    rd_phase_handler_pt *a = rd_palloc(cycle->pool, (n + 1) * sizeof(*a));
    for (size_t i = 0; i < n; i++) {
        a[i] = cycle->phases[phase][i];
    }
    a[n] = h;
    cycle->phases[phase] = a;
    cycle->nphases[phase] = n + 1;
    return RD_OK;
}

/* --- helper processes (rd_module_process_t) ------------------------------- */

int
rd_modules_process_open(rd_cycle_t *cycle, rd_cycle_t *old, char **err)
{
    for (unsigned i = 0; i < rd_nmodules; i++) {
        const rd_module_process_t *p = &rd_modules[i]->process;
        if (p->open && p->open(cycle, old, err) != 0) {
            return -1;
        }
    }
    return 0;
}

static int
rd_modules_process_wanted(const rd_module_t *m, rd_cycle_t *cycle)
{
    return m->process.main && m->process.wanted
           && m->process.wanted(cycle);
}

int
rd_modules_processes(rd_cycle_t *cycle)
{
    int n = 0;
    for (unsigned i = 0; i < rd_nmodules; i++) {
        n += rd_modules_process_wanted(rd_modules[i], cycle);
    }
    return n;
}

void
rd_modules_process_main(rd_cycle_t *cycle, int k)
{
    for (unsigned i = 0; i < rd_nmodules; i++) {
        if (rd_modules_process_wanted(rd_modules[i], cycle) && k-- == 0) {
            rd_modules[i]->process.main(cycle);
            break;
        }
    }
    exit(2);
}

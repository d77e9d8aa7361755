/*
 * rd_module.c - module registry bookkeeping and phase registration.
 */
#include "config.h"

#include <stdlib.h>

#include "rd_cycle.h"
#include "rd_module.h"

void
rd_modules_init(void)
{
    for (unsigned i = 0; i < rd_nmodules; i++) {
        rd_modules[i]->index = i;
    }
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

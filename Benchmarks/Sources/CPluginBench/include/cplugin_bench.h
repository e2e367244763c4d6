/* The "direct C call" baseline of the plugin dispatch benchmark. */
#ifndef CPLUGIN_BENCH_H
#define CPLUGIN_BENCH_H
#include <stdint.h>
#include "vmm_plugin.h"

/* Calls the null plugin's handler logic n times through a function pointer the
 * compiler cannot see through, filling the record as the host does for an IN of one
 * byte. Returns the number of HANDLED verdicts. */
uint64_t cplugin_bench_direct(uint64_t n, vmm_exit_t *record, uint8_t *data);
#endif

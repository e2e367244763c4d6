/* SwiftPM needs one C source per target; this one pins the extension's layout. */
#include "vmm_async_pf_plugin.h"
#include <stddef.h>

#if defined(__LP64__) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(vmm_async_pf_events_t) == 32, "layout of vmm_async_pf_events_t");
_Static_assert(offsetof(vmm_async_pf_events_t, request_page_fault) == 24, "layout");
#endif

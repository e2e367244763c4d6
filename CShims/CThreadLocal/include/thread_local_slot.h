#ifndef VMMKIT_THREAD_LOCAL_SLOT_H
#define VMMKIT_THREAD_LOCAL_SLOT_H

/*
 * One pointer per thread for the host's per-thread plugin state.
 *
 * Swift has no thread-local storage of its own; pthread_getspecific behind a lazily
 * created key costs a call plus a swift_once check on every plugin exit (about 25
 * instructions of ~440). An initial-exec __thread variable is one %fs-relative load.
 * The pthread key stays the owner (its destructor frees the state when the thread
 * ends); this slot is only the fast way to find it.
 */

#include <sys/prctl.h>

extern __thread void *vmmkit_thread_plugin_state;

static inline void *vmmkit_thread_plugin_state_get(void) { return vmmkit_thread_plugin_state; }
static inline void vmmkit_thread_plugin_state_set(void *state) { vmmkit_thread_plugin_state = state; }

/* Names the calling thread (prctl PR_SET_NAME; the kernel keeps 15 bytes). Here because
 * Swift cannot call the variadic prctl, and Glibc's module hides pthread_setname_np. */
static inline void vmmkit_thread_set_name(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

#endif

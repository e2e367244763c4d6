/*
 * cprocess.h - process-level calls the launcher needs and Swift cannot make: prctl(2)
 * is variadic, and glibc declares posix_spawn_file_actions_addclosefrom_np only under
 * _GNU_SOURCE, which Swift's Glibc module is not built with.
 */
#ifndef CPROCESS_H
#define CPROCESS_H

#include <spawn.h>

/* prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants of this process (a probed
 * plugin's forks, whatever session they moved to) are reparented here rather than to
 * init, so they can be found and ended. 0 or -errno. */
int cprocess_become_subreaper(void);

/* posix_spawn_file_actions_addclosefrom_np(actions, from): the spawned process starts
 * with every fd from `from` up closed. 0 or an errno value. */
int cprocess_spawn_close_from(posix_spawn_file_actions_t *actions, int from);

#endif

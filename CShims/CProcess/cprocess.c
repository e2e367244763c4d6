#define _GNU_SOURCE
#include "cprocess.h"

#include <errno.h>
#include <spawn.h>
#include <sys/prctl.h>

int cprocess_become_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

int cprocess_spawn_close_from(posix_spawn_file_actions_t *actions, int from)
{
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

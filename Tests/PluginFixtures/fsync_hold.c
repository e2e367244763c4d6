/*
 * Not a plugin: an LD_PRELOAD library for the control API's tests. fsync(2) waits while
 * the file named by VMM_TEST_FSYNC_HOLD exists, after creating "<that name>.waiting": a
 * snapshot being written (the writer syncs each file) is held there for as long as the
 * test likes, and the test knows when it is. Without the variable it is the C library's
 * fsync.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int fsync(int fd)
{
    static int (*real_fsync)(int);
    if (real_fsync == NULL)
        *(void **)&real_fsync = dlsym(RTLD_NEXT, "fsync");
    const char *hold = getenv("VMM_TEST_FSYNC_HOLD");
    if (hold != NULL && access(hold, F_OK) == 0) {
        char marker[4096];
        snprintf(marker, sizeof marker, "%s.waiting", hold);
        int m = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (m >= 0)
            close(m);
        while (access(hold, F_OK) == 0)
            usleep(10000);
    }
    return real_fsync(fd);
}

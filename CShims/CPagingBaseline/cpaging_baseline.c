#define _GNU_SOURCE
#include "cpaging_baseline.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int cpaging_register(void *host, size_t size) {
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    struct uffdio_api api = { .api = UFFD_API, .features = 0 };
    struct uffdio_register reg = { .range = { .start = (uintptr_t)host, .len = size },
                                   .mode = UFFDIO_REGISTER_MODE_MISSING };
    if (ioctl(fd, UFFDIO_API, &api) != 0 || ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

long cpaging_serve(int uffd, void *host, size_t size, int snapshot_fd, long snapshot_offset, int stop_fd) {
    static __thread char page[4096] __attribute__((aligned(4096)));
    struct uffd_msg msgs[64];
    struct pollfd fds[2] = { { .fd = uffd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
    long installed = 0;
    for (;;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR) return -1;
        if (fds[1].revents) return installed;
        ssize_t n = read(uffd, msgs, sizeof msgs);
        if (n <= 0) continue;
        for (size_t i = 0; i < (size_t)n / sizeof msgs[0]; i++) {
            if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
            uintptr_t addr = (uintptr_t)msgs[i].arg.pagefault.address & ~(uintptr_t)4095;
            if (addr < (uintptr_t)host || addr - (uintptr_t)host >= size) continue;
            if (pread(snapshot_fd, page, 4096, snapshot_offset + (long)(addr - (uintptr_t)host)) != 4096) return -1;
            struct uffdio_copy copy = { .dst = addr, .src = (uintptr_t)page, .len = 4096, .mode = 0 };
            if (ioctl(uffd, UFFDIO_COPY, &copy) == 0) installed++;
            else if (errno != EEXIST) return -1;
        }
    }
}

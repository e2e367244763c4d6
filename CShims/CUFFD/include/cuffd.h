/*
 * cuffd.h - userfaultfd(2) as Swift can import it, for the demand-paging engine.
 *
 * Swift cannot expand _IOWR() nor call variadic ioctl/syscall, so request numbers are
 * constants and the calls are typed wrappers. The layouts the engine relies on are
 * checked against the uapi header with _Static_assert. No logic.
 */
#ifndef CUFFD_H
#define CUFFD_H

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

/* userfaultfd(2); -1 and errno on failure. */
static inline int cuffd_open(int flags) { return (int)syscall(SYS_userfaultfd, flags); }
static inline int cuffd_ioctl(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
static inline int cuffd_errno(void) { return errno; }
/* A non-blocking, close-on-exec eventfd: how the router thread is told to stop. */
static inline int cuffd_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
/* The thread id of the caller (gettid(2)): matched against uffd_msg.pagefault.feat.ptid. */
static inline int cuffd_gettid(void) { return (int)syscall(SYS_gettid); }

static const unsigned long CUFFDIO_API = UFFDIO_API;
static const unsigned long CUFFDIO_REGISTER = UFFDIO_REGISTER;
static const unsigned long CUFFDIO_UNREGISTER = UFFDIO_UNREGISTER;
static const unsigned long CUFFDIO_COPY = UFFDIO_COPY;
static const unsigned long CUFFDIO_WAKE = UFFDIO_WAKE;

enum {
    CUFFD_API = UFFD_API,
    CUFFD_EVENT_PAGEFAULT = UFFD_EVENT_PAGEFAULT,
    CUFFD_CLOEXEC = O_CLOEXEC,
    CUFFD_NONBLOCK = O_NONBLOCK,
};
static const uint64_t CUFFD_FEATURE_SIGBUS = UFFD_FEATURE_SIGBUS;
static const uint64_t CUFFD_FEATURE_THREAD_ID = UFFD_FEATURE_THREAD_ID;
static const uint64_t CUFFDIO_REGISTER_MODE_MISSING = UFFDIO_REGISTER_MODE_MISSING;
static const uint64_t CUFFD_PAGEFAULT_FLAG_WRITE = UFFD_PAGEFAULT_FLAG_WRITE;

/* The page-fault view of one message (the only event MISSING mode sends us). */
static inline uint64_t cuffd_msg_address(const struct uffd_msg *m) { return m->arg.pagefault.address; }
static inline uint64_t cuffd_msg_flags(const struct uffd_msg *m) { return m->arg.pagefault.flags; }
static inline uint32_t cuffd_msg_tid(const struct uffd_msg *m) { return m->arg.pagefault.feat.ptid; }

_Static_assert(sizeof(struct uffd_msg) == 32, "uffd_msg is 32 bytes");
_Static_assert(offsetof(struct uffd_msg, arg.pagefault.address) == 16, "uffd_msg.pagefault.address");
_Static_assert(offsetof(struct uffd_msg, arg.pagefault.feat.ptid) == 24, "uffd_msg.pagefault.ptid");
_Static_assert(sizeof(struct uffdio_api) == 24, "uffdio_api");
_Static_assert(sizeof(struct uffdio_register) == 32, "uffdio_register");
_Static_assert(sizeof(struct uffdio_copy) == 40, "uffdio_copy");
_Static_assert(offsetof(struct uffdio_copy, copy) == 32, "uffdio_copy.copy");
_Static_assert(sizeof(struct uffdio_range) == 16, "uffdio_range");

#endif /* CUFFD_H */

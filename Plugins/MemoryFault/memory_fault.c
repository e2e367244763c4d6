/*
 * memory-fault: demand paging of guest RAM from a guest-memory snapshot file.
 *
 * For every memory-fault record (a guest access to RAM that is not backed yet), the
 * plugin reads the page(s) of [gpa, gpa+size) from the snapshot and makes them present
 * by writing them with host->write_guest. Everything else is the host's: with a
 * VMMKit DemandPager (VMMPaging, PluginPageSource) the host registers the RAM with
 * userfaultfd, turns each fault source (annotated KVM_EXIT_MEMORY_FAULT, ring-0 MMIO
 * exits inside RAM, EFAULT, userfaultfd messages) into one record, installs the page
 * atomically and completes or retries the access. It refuses (VMM_NOT_MINE) what it
 * cannot fill correctly: a fault with no address (not annotated), EHWPOISON (the host
 * reports it as hardware poison), and any memory-fault flag (e.g. private memory).
 *
 * Config (comma-separated key=value):
 *   snapshot=/path/to/guest.mem   byte 0 of the file is guest-physical `base`
 *   base=0x0                      optional, the guest-physical address of byte 0
 *   fill=zero                     instead of a snapshot: every page is zero-filled on
 *                                 first touch (demand-zero RAM; the launcher's default).
 *                                 Registered VMM_HANDLER_ZERO_FILL: a host leaves such RAM
 *                                 to the kernel and calls it only inside ranges that a
 *                                 snapshot plugin above it declines
 *   priority=N                    optional handler priority (default 0; higher first),
 *                                 so a snapshot plugin can sit above a fill=zero one
 *   latency-us=N                  optional, 0..100000: wait N µs before each page, as a
 *                                 remote or slow snapshot store would (the demo uses it
 *                                 so that its async page faults have time to show:
 *                                 another task runs while a page is on its way)
 * Build: scripts/build-plugins (plain cc against vmm_plugin.h, like DebugExit).
 */
#define _GNU_SOURCE
#include "vmm_plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define MAX_LATENCY_US 100000u /* bounded: a stop or pause waits for a handler in flight */

typedef struct memory_fault {
    const vmm_host_t *host;
    int fd;
    uint64_t base, size; /* the snapshot covers guest-physical [base, base+size) */
    int zero_fill;       /* fill=zero: no snapshot, zero pages everywhere */
    int32_t priority;
    uint32_t latency_us; /* simulated store latency per page */
    char path[256];
    vmm_plugin_state_t state; /* ABI 1.2 state extension */
} memory_fault_t;

static char init_error[512];     /* [load-thread] calls are serialised by the host */
static __thread char message[256]; /* per vCPU thread, valid until its next call */

static vmm_verdict_t fail(vmm_exit_t *ex, const char *fmt, uint64_t a, int b) {
    snprintf(message, sizeof message, fmt, (unsigned long long)a, b);
    ex->message = message;
    return VMM_FAIL;
}

/* [vcpu-thread] (or the host's fault router on behalf of a blocked vCPU) */
static vmm_verdict_t handle(void *user, vmm_exit_t *ex) {
    memory_fault_t *mf = user;
    const vmm_exit_memory_fault_t *f = &ex->memory_fault;
    /* Only a located fault says which page to fill: an un-annotated one has no address
     * (ABI 1.2: gpa VMM_MEMORY_FAULT_NO_GPA, size 0; a 1.0/1.1 host passed gpa 0, so
     * filling "its" page would destroy guest page 0). */
    if (!f->annotated || f->size == 0)
        return VMM_NOT_MINE;
    /* Poison is not a missing page: writing a page cannot replace the broken memory. The
     * host stops the vCPU and reports it (a typed hardware-poison stop). */
    if (f->err_no == EHWPOISON)
        return VMM_NOT_MINE;
    /* Flags this plugin does not understand (private memory, or anything the host does
     * not know): refuse rather than fill the wrong memory. */
    if (f->flags != 0)
        return VMM_NOT_MINE;
    if (f->gpa > UINT64_MAX - (f->size - 1))
        return VMM_NOT_MINE;
    uint64_t first = f->gpa & ~(uint64_t)(PAGE - 1);
    uint64_t last = f->gpa + (f->size - 1);
    if (first < mf->base || last - mf->base >= mf->size)
        return VMM_NOT_MINE; /* not in the snapshot: another plugin's, or the host's default */
    static __thread unsigned char page[PAGE] __attribute__((aligned(PAGE)));
    for (uint64_t gpa = first;; gpa += PAGE) {
        if (mf->latency_us != 0) {
            struct timespec t = {0, (long)mf->latency_us * 1000L};
            while (nanosleep(&t, &t) != 0 && errno == EINTR) /* the host's kick signal */
                ;
        }
        ssize_t n = PAGE;
        if (mf->zero_fill)
            memset(page, 0, PAGE);
        else
            n = pread(mf->fd, page, PAGE, (off_t)(gpa - mf->base));
        if (n != (ssize_t)PAGE)
            return fail(ex, "cannot read guest-physical page 0x%llx from the snapshot (errno %d)", gpa, n < 0 ? errno : EIO);
        int rc = mf->host->write_guest(mf->host->host_data, gpa, page, PAGE);
        if (rc != 0)
            return fail(ex, "write_guest of guest-physical page 0x%llx failed (%d)", gpa, rc);
        if (last - gpa < PAGE)
            break;
    }
    return VMM_HANDLED;
}

static int parse(memory_fault_t *mf, const char *config) {
    char copy[512];
    if (strlen(config) >= sizeof copy) {
        snprintf(init_error, sizeof init_error, "config is longer than %zu bytes", sizeof copy - 1);
        return -1;
    }
    strcpy(copy, config);
    static const char *const keys[] = {"snapshot", "base", "fill", "priority", "latency-us"};
    unsigned seen = 0; /* bit k: keys[k] given */
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            snprintf(init_error, sizeof init_error, "config item '%s' is not key=value", item);
            return -1;
        }
        *eq = 0;
        const char *value = eq + 1;
        /* Each key once, as the UART and DebugExit take them: a second value took the
         * last in silence ("base=0x0,base=0x400000" paged from another address). */
        for (unsigned k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            if (strcmp(item, keys[k]) != 0)
                continue;
            if (seen & 1u << k) {
                snprintf(init_error, sizeof init_error, "config key '%s' given twice", item);
                return -1;
            }
            seen |= 1u << k;
        }
        if (strcmp(item, "snapshot") == 0) {
            if (strlen(value) >= sizeof mf->path) {
                snprintf(init_error, sizeof init_error, "snapshot path is longer than %zu bytes", sizeof mf->path - 1);
                return -1;
            }
            strcpy(mf->path, value);
        } else if (strcmp(item, "base") == 0) {
            char *stop;
            errno = 0;
            mf->base = strtoull(value, &stop, 0);
            /* A digit first: strtoull also skips spaces and takes a sign ("-4096" is 2^64 - 4096). */
            if (*value < '0' || *value > '9' || *stop != 0 || errno != 0 || (mf->base & (PAGE - 1))) {
                snprintf(init_error, sizeof init_error, "base=%s is not a page-aligned number", value);
                return -1;
            }
        } else if (strcmp(item, "fill") == 0) {
            if (strcmp(value, "zero") != 0) {
                snprintf(init_error, sizeof init_error, "fill=%s: the only fill is 'zero'", value);
                return -1;
            }
            mf->zero_fill = 1;
        } else if (strcmp(item, "priority") == 0) {
            char *stop;
            long p = strtol(value, &stop, 0);
            if ((*value != '-' && (*value < '0' || *value > '9')) || *stop != 0 || p < INT32_MIN || p > INT32_MAX) {
                snprintf(init_error, sizeof init_error, "priority=%s is not a 32-bit integer", value);
                return -1;
            }
            mf->priority = (int32_t)p;
        } else if (strcmp(item, "latency-us") == 0) {
            char *stop;
            unsigned long long us = strtoull(value, &stop, 10);
            if (*value < '0' || *value > '9' || *stop != 0 || us > MAX_LATENCY_US) {
                snprintf(init_error, sizeof init_error, "latency-us=%s is not a number of microseconds in 0...%u",
                         value, MAX_LATENCY_US);
                return -1;
            }
            mf->latency_us = (uint32_t)us;
        } else {
            snprintf(init_error, sizeof init_error,
                     "unknown config key '%s' (known: snapshot, base, fill, priority, latency-us)", item);
            return -1;
        }
    }
    if ((mf->path[0] == 0) == (mf->zero_fill == 0)) {
        snprintf(init_error, sizeof init_error,
                 "config needs snapshot=<path of a guest-memory snapshot file> or fill=zero (one of them)");
        return -1;
    }
    return 0;
}

/* [load-thread] */
static void *mf_init(const vmm_host_t *host, const char *config, const char **error_out) {
    memory_fault_t *mf = calloc(1, sizeof *mf);
    if (!mf) {
        *error_out = "out of memory";
        return NULL;
    }
    mf->host = host;
    mf->fd = -1;
    struct stat st;
    if (parse(mf, config) != 0)
        goto fail;
    if (mf->zero_fill) {
        mf->size = UINT64_MAX - mf->base; /* all of guest-physical memory from base */
    } else {
        /* O_NONBLOCK: a FIFO named here would otherwise block init until a writer came
         * (the host's init budget then ended the VMM with a misleading message). */
        mf->fd = open(mf->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (mf->fd < 0 || fstat(mf->fd, &st) != 0) {
            snprintf(init_error, sizeof init_error, "cannot open snapshot %s: %s", mf->path, strerror(errno));
            goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
            snprintf(init_error, sizeof init_error, "snapshot %s is not a regular file", mf->path);
            goto fail;
        }
        mf->size = (uint64_t)st.st_size & ~(uint64_t)(PAGE - 1);
        /* A length of 0 would register the whole space; a snapshot without a whole page
         * could fill nothing. */
        if (mf->size == 0) {
            snprintf(init_error, sizeof init_error, "snapshot %s holds no whole page (%lld bytes; pages are %u)",
                     mf->path, (long long)st.st_size, PAGE);
            goto fail;
        }
    }
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_MEMORY_FAULT;
    d.base = mf->base;
    d.length = mf->size;
    d.priority = mf->priority;
    /* Demand-zero RAM is what the kernel gives anyway: let the host leave it to the
     * kernel instead of a user-space round trip per page (ABI 1.2). */
    d.flags = mf->zero_fill ? VMM_HANDLER_ZERO_FILL : 0;
    /* handle() keeps nothing between calls but per-thread buffers, and pread and
     * write_guest are thread-safe: the host's fault router may call it (no kick). */
    d.flags |= VMM_HANDLER_ANY_THREAD;
    d.handle = handle;
    d.user = mf;
    d.name = mf->zero_fill ? "zero-fill" : "snapshot";
    const char *why = NULL;
    if (host->register_handler(host->host_data, &d, &why) != 0) {
        snprintf(init_error, sizeof init_error, "%s", why ? why : "register_handler failed");
        goto fail;
    }
    return mf;
fail:
    if (mf->fd >= 0)
        close(mf->fd);
    free(mf);
    *error_out = init_error;
    return NULL;
}

/* [load-thread] */
static void mf_destroy(void *instance) {
    memory_fault_t *mf = instance;
    close(mf->fd);
    free(mf);
}

/* ---- ABI 1.2 state (snapshot/restore), version 1. The plugin keeps no run-time state
 * (pages, once written, are guest memory, which the snapshot saves); the blob is its
 * configuration: uint64 base, uint64 size, int32 priority, uint32 zero_fill. A restore
 * into an instance configured otherwise is refused (-EINVAL). Control thread, vCPUs
 * paused. */
#define MF_STATE_SIZE 24u

static int mf_state_save(void *user, void *buffer, uint64_t capacity, uint64_t *size_out) {
    const memory_fault_t *mf = user;
    uint32_t zero_fill = (uint32_t)mf->zero_fill;
    *size_out = MF_STATE_SIZE;
    if (capacity < MF_STATE_SIZE)
        return -ENOSPC;
    memcpy(buffer, &mf->base, 8);
    memcpy((char *)buffer + 8, &mf->size, 8);
    memcpy((char *)buffer + 16, &mf->priority, 4);
    memcpy((char *)buffer + 20, &zero_fill, 4);
    return 0;
}

static int mf_state_restore(void *user, const void *bytes, uint64_t length, uint32_t version) {
    const memory_fault_t *mf = user;
    uint64_t base, size;
    int32_t priority;
    uint32_t zero_fill;
    char why[200];
    if (version != 1)
        return -ENOTSUP;
    if (length != MF_STATE_SIZE) {
        /* A line logged at error level during the call is the host's message for it. */
        snprintf(why, sizeof why, "a state of %llu bytes; version 1 has %u", (unsigned long long)length, MF_STATE_SIZE);
        mf->host->log(mf->host->host_data, VMM_LOG_ERROR, why);
        return -EINVAL;
    }
    memcpy(&base, bytes, 8);
    memcpy(&size, (const char *)bytes + 8, 8);
    memcpy(&priority, (const char *)bytes + 16, 4);
    memcpy(&zero_fill, (const char *)bytes + 20, 4);
    if (base != mf->base || size != mf->size || priority != mf->priority || zero_fill != (uint32_t)mf->zero_fill) {
        snprintf(why, sizeof why,
                 "the state is of an instance configured otherwise (base 0x%llx, size 0x%llx, priority %d, fill=zero %s); "
                 "restore it with the configuration it was saved with",
                 (unsigned long long)base, (unsigned long long)size, (int)priority, zero_fill ? "on" : "off");
        mf->host->log(mf->host->host_data, VMM_LOG_ERROR, why);
        return -EINVAL;
    }
    return 0;
}

/* [load-thread] */
static const void *mf_get_extension(void *instance, const char *id) {
    memory_fault_t *mf = instance;
    if (strcmp(id, VMM_PLUGIN_EXT_STATE) != 0)
        return NULL;
    memset(&mf->state, 0, sizeof mf->state);
    mf->state.struct_size = sizeof mf->state;
    mf->state.version = 1;
    mf->state.user = mf;
    mf->state.save = mf_state_save;
    mf->state.restore = mf_state_restore;
    return &mf->state;
}

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.memory-fault", "1.0.0", "demand paging of guest RAM from a snapshot file",
    mf_init, mf_destroy, mf_get_extension, /* ABI 1.2 state */
};

/*
 * Test fixture for the plugin watchdog, host services refused from the wrong thread or
 * after destroy(), and the vCPU threads' seccomp filter.
 *
 *   port 0x531 "hang"     IN: spins until guard_fixture_release() (or forever), then
 *                          returns 0x31.
 *   port 0x532 "syscall"  IN: makes a syscall the vCPU seccomp filter does not allow
 *                          (socket(AF_UNIX)) and returns 0 if it failed with EPERM, 1 if
 *                          it succeeded, 2 if it failed otherwise.
 *   port 0x533 "register" IN: calls register_handler from the vCPU thread; returns the
 *                          negated result (EPERM expected).
 *
 *   port 0x538 "raise"    IN: raises async-PF KICK events for its own vCPU, one after
 *                          another, until guard_fixture_release() (or forever): each
 *                          runs the VMM_EXIT_ASYNC_PF handlers (its own "apf", which
 *                          answers NOT_MINE, among them) nested inside this call.
 *   hypercall 0x6a11      a typed hypercall "u64()" that spins like "hang", then
 *                          returns 0x31.
 *   port 0x537 "count"    OUT: counted (atomically; the load test's PIO exits).
 *   MMIO 0xd0001000+8 "count" write: counted (the load test's MMIO exits).
 *   guard_fixture_counts(out) reads both counts (reset at each init).
 *
 * Config "seccomp_allow=1": at init, declares socket(2) through the host's seccomp/1
 * extension, so the vCPU filter allows it.
 * Config "thread=1": at init, fails unless the host offers thread/1 and its
 * start_thread refuses a NULL function with -EINVAL; then
 *   port 0x539 "thread"   IN: starts a thread through thread/1 from the vCPU thread and
 *                          joins it; returns 0 if it ran, else start_thread's errno.
 * At init a thread of the plugin's own calls register_handler (load-thread only) and
 * its result is kept for guard_fixture_init_thread_result().
 * guard_fixture_after_destroy(codes) calls host services through the table kept from
 * init, after the host destroyed the instance, and stores their results.
 * It offers the state extension (an empty blob, version 1), so a VM using it can be
 * snapshotted and restored.
 */
#define _GNU_SOURCE
#include "vmm_plugin.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static atomic_int released;
static int init_thread_result = 1;
static const vmm_host_t *kept_host;       /* deliberately kept past destroy() */
static const vmm_host_hypercall_t *kept_hypercall;
static const vmm_host_vcpu_t *kept_vcpu;

static vmm_verdict_t hang(void *user, vmm_exit_t *ex)
{
    (void)user;
    while (!atomic_load(&released))
        usleep(1000);
    ex->pio.data[0] = 0x31;
    return VMM_HANDLED;
}

static vmm_verdict_t forbidden_syscall(void *user, vmm_exit_t *ex)
{
    (void)user;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0) {
        close(fd);
        ex->pio.data[0] = 1;
    } else {
        ex->pio.data[0] = errno == EPERM ? 0 : 2;
    }
    return VMM_HANDLED;
}

static const vmm_host_async_pf_t *kept_async_pf;

static const vmm_host_thread_t *kept_thread;
static atomic_int thread_ran;

static void *thread_body(void *arg)
{
    (void)arg;
    atomic_store(&thread_ran, 1);
    return NULL;
}

static vmm_verdict_t start_thread_in_exit(void *user, vmm_exit_t *ex)
{
    const vmm_host_t *host = user;
    uint64_t thread = 0;
    atomic_store(&thread_ran, 0);
    int rc = kept_thread->start_thread(host->host_data, thread_body, NULL, &thread);
    if (rc != 0) {
        ex->pio.data[0] = (uint8_t)-rc;
        return VMM_HANDLED;
    }
    pthread_join((pthread_t)thread, NULL);
    ex->pio.data[0] = atomic_load(&thread_ran) ? 0 : 0xff;
    return VMM_HANDLED;
}

static vmm_verdict_t raise_loop(void *user, vmm_exit_t *ex)
{
    const vmm_host_t *h = user;
    vmm_exit_async_pf_t kick;
    memset(&kick, 0, sizeof kick);
    kick.kind = VMM_ASYNC_PF_KICK;
    while (!atomic_load(&released))
        kept_async_pf->raise(h->host_data, ex->vcpu_id, &kick, NULL);
    ex->pio.data[0] = 0x38;
    return VMM_HANDLED;
}

static vmm_verdict_t not_mine(void *user, vmm_exit_t *ex)
{
    (void)user; (void)ex;
    return VMM_NOT_MINE;
}

static uint64_t hang_hypercall(void *user)
{
    (void)user;
    while (!atomic_load(&released))
        usleep(1000);
    return 0x31;
}

static atomic_uint_fast64_t pio_count, mmio_count;

static vmm_verdict_t count_pio(void *user, vmm_exit_t *ex)
{
    (void)user;
    if (ex->pio.is_write)
        atomic_fetch_add(&pio_count, 1);
    else
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
    return VMM_HANDLED;
}

static vmm_verdict_t count_mmio(void *user, vmm_exit_t *ex)
{
    (void)user;
    if (ex->mmio.is_write)
        atomic_fetch_add(&mmio_count, 1);
    else
        memset(ex->mmio.data, 0, sizeof ex->mmio.data);
    return VMM_HANDLED;
}

VMM_PLUGIN_EXPORT void guard_fixture_counts(uint64_t *out)
{
    out[0] = atomic_load(&pio_count);
    out[1] = atomic_load(&mmio_count);
}

static vmm_verdict_t nop(void *user, vmm_exit_t *ex)
{
    (void)user; (void)ex;
    return VMM_HANDLED;
}

static vmm_verdict_t register_late(void *user, vmm_exit_t *ex)
{
    const vmm_host_t *h = user;
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0x534;
    d.length = 1;
    d.handle = nop;
    ex->pio.data[0] = (uint8_t)-h->register_handler(h->host_data, &d, NULL);
    return VMM_HANDLED;
}

static void *register_from_thread(void *arg)
{
    const vmm_host_t *h = arg;
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0x535;
    d.length = 1;
    d.handle = nop;
    init_thread_result = h->register_handler(h->host_data, &d, NULL);
    return NULL;
}

static int add(const vmm_host_t *h, uint64_t port, vmm_verdict_t (*fn)(void *, vmm_exit_t *),
               void *user, const char *name, const char **err)
{
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = port;
    d.length = 1;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = fn;
    d.user = user;
    d.name = name;
    return h->register_handler(h->host_data, &d, err);
}

/* The seccomp/1 extension as ABI 1.2 defines it (declared here too, so the fixture
 * also builds against a header without it). */
typedef struct guard_seccomp_ext {
    uint32_t struct_size;
    uint32_t reserved;
    int (*allow_syscall)(void *host_data, uint32_t nr, const char **error_out);
} guard_seccomp_ext_t;

static void *guard_init(const vmm_host_t *host, const char *config, const char **err)
{
    pthread_t t;
    atomic_store(&released, 0);
    if (add(host, 0x531, hang, NULL, "hang", err) || add(host, 0x532, forbidden_syscall, NULL, "syscall", err)
        || add(host, 0x533, register_late, (void *)host, "register", err)
        || add(host, 0x537, count_pio, NULL, "count", err))
        return NULL;
    kept_async_pf = host->get_extension(host->host_data, VMM_EXT_HOST_ASYNC_PF);
    if (kept_async_pf) {
        vmm_handler_desc_t d;
        memset(&d, 0, sizeof d);
        d.struct_size = sizeof d;
        d.exit_class = VMM_EXIT_ASYNC_PF;
        d.handle = not_mine;
        d.name = "apf";
        if (add(host, 0x538, raise_loop, (void *)host, "raise", err) || host->register_handler(host->host_data, &d, err) != 0)
            return NULL;
    }
    {
        const vmm_host_hypercall_t *hc = host->get_extension(host->host_data, VMM_EXT_HOST_HYPERCALL);
        if (hc && hc->register_hypercall(host->host_data, 0x6a11, "u64()", (void (*)(void))hang_hypercall, NULL, err) != 0)
            return NULL;
    }
    {
        vmm_handler_desc_t d;
        memset(&d, 0, sizeof d);
        d.struct_size = sizeof d;
        d.exit_class = VMM_EXIT_MMIO;
        d.base = 0xd0001000;
        d.length = 8;
        d.flags = VMM_HANDLER_EXCLUSIVE;
        d.handle = count_mmio;
        d.name = "count";
        if (host->register_handler(host->host_data, &d, err) != 0)
            return NULL;
    }
    atomic_store(&pio_count, 0);
    atomic_store(&mmio_count, 0);
    if (strstr(config, "seccomp_allow=1")) {
        const guard_seccomp_ext_t *s = host->get_extension(host->host_data, "org.vmmkit.host.seccomp/1");
        if (!s) { *err = "no org.vmmkit.host.seccomp/1 extension"; return NULL; }
        if (s->allow_syscall(host->host_data, 41 /* socket */, err) != 0) return NULL;
    }
    if (strstr(config, "thread=1")) {
        uint64_t none = 0;
        kept_thread = host->get_extension(host->host_data, VMM_EXT_HOST_THREAD);
        if (!kept_thread) { *err = "no org.vmmkit.host.thread/1 extension"; return NULL; }
        if (kept_thread->start_thread(host->host_data, NULL, NULL, &none) != -EINVAL) {
            *err = "thread/1: start_thread accepted a NULL function";
            return NULL;
        }
        if (add(host, 0x539, start_thread_in_exit, (void *)host, "thread", err)) return NULL;
    }
    if (pthread_create(&t, NULL, register_from_thread, (void *)host) == 0)
        pthread_join(t, NULL);
    kept_host = host;
    kept_hypercall = host->get_extension(host->host_data, VMM_EXT_HOST_HYPERCALL);
    kept_vcpu = host->get_extension(host->host_data, VMM_EXT_HOST_VCPU);
    return (void *)host;
}

static void guard_destroy(void *instance)
{
    (void)instance;
    atomic_store(&released, 1);
}

VMM_PLUGIN_EXPORT void guard_fixture_release(void) { atomic_store(&released, 1); }

VMM_PLUGIN_EXPORT int guard_fixture_init_thread_result(void) { return init_thread_result; }

/* codes[0] read_guest, [1] write_guest, [2] register_handler, [3] set_irq_line,
 * [4] get_extension (0 = NULL), [5] register_hypercall, [6] vcpu kick, [7] get_reg;
 * log and request_stop are called too (they must not crash). */
VMM_PLUGIN_EXPORT void guard_fixture_after_destroy(int *codes)
{
    const vmm_host_t *h = kept_host;
    uint8_t byte = 0;
    uint64_t value = 0;
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0x536;
    d.length = 1;
    d.handle = nop;
    codes[0] = h->read_guest(h->host_data, 0, &byte, 1);
    codes[1] = h->write_guest(h->host_data, 0, &byte, 1);
    codes[2] = h->register_handler(h->host_data, &d, NULL);
    codes[3] = h->set_irq_line(h->host_data, 4, 1);
    codes[4] = h->get_extension(h->host_data, VMM_EXT_HOST_VCPU) != NULL;
    codes[5] = kept_hypercall ? kept_hypercall->register_hypercall(h->host_data, 9, "void()", (void (*)(void))nop, NULL, NULL) : 1;
    codes[6] = kept_vcpu ? kept_vcpu->kick(h->host_data, 0) : 1;
    codes[7] = h->get_reg(h->host_data, 0, VMM_REG_RAX, &value);
    h->log(h->host_data, VMM_LOG_ERROR, "log after destroy");
    h->request_stop(h->host_data, -1, 3, "after destroy");
}

static int state_save(void *user, void *buffer, uint64_t capacity, uint64_t *size_out)
{
    (void)user; (void)buffer; (void)capacity;
    *size_out = 0;
    return 0;
}

static int state_restore(void *user, const void *bytes, uint64_t length, uint32_t version)
{
    (void)user; (void)bytes; (void)version;
    return length == 0 ? 0 : -EINVAL;
}

static vmm_plugin_state_t state = { sizeof(vmm_plugin_state_t), 1, NULL, state_save, state_restore };

static const void *guard_get_extension(void *instance, const char *id)
{
    (void)instance;
    return strcmp(id, VMM_PLUGIN_EXT_STATE) == 0 ? &state : NULL;
}

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.guard", "1.0.0", "watchdog, refusal and seccomp fixture",
    guard_init, guard_destroy, guard_get_extension,
};

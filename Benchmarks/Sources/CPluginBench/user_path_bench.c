#include "cplugin_bench.h"

#include <linux/kvm.h>
#include <string.h>

/* The "kernel" of both loops writes only exit_reason per entry: the rest of the record
 * is prepared once, as a real exit of that shape would leave it. */
void user_path_prepare(void *page, int shape, uint16_t port, uint64_t mmio)
{
    struct kvm_run *run = page;
    memset(page, 0, USER_PATH_PAGE_SIZE);
    switch (shape) {
    case USER_PATH_PIO_OUT:
    case USER_PATH_PIO_IN:
        run->exit_reason = KVM_EXIT_IO;
        run->io.direction = shape == USER_PATH_PIO_OUT ? KVM_EXIT_IO_OUT : KVM_EXIT_IO_IN;
        run->io.size = 1;
        run->io.port = port;
        run->io.count = 1;
        run->io.data_offset = 4096;
        ((uint8_t *)page)[4096] = 1;
        break;
    case USER_PATH_MMIO_READ:
    case USER_PATH_MMIO_WRITE:
        run->exit_reason = KVM_EXIT_MMIO;
        run->mmio.phys_addr = mmio + 8;
        run->mmio.len = 4;
        run->mmio.is_write = shape == USER_PATH_MMIO_WRITE;
        run->mmio.data[0] = 1;
        break;
    default:
        run->exit_reason = KVM_EXIT_HLT;
        break;
    }
}

uint32_t user_path_reason(int shape)
{
    switch (shape) {
    case USER_PATH_PIO_OUT: case USER_PATH_PIO_IN: return KVM_EXIT_IO;
    case USER_PATH_MMIO_READ: case USER_PATH_MMIO_WRITE: return KVM_EXIT_MMIO;
    default: return KVM_EXIT_HLT;
    }
}

/* The null device's handlers (Tests/PluginFixtures/null_plugin.c), called through
 * pointers the compiler cannot see through. */
static vmm_verdict_t pio_handle(void *user, vmm_exit_t *ex)
{
    if (ex->pio.is_write)
        (*(uint64_t *)user)++;
    else
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
    return VMM_HANDLED;
}

static vmm_verdict_t mmio_handle(void *user, vmm_exit_t *ex)
{
    if (ex->mmio.is_write)
        (*(uint64_t *)user)++;
    else
        memset(ex->mmio.data, 0, sizeof ex->mmio.data);
    return VMM_HANDLED;
}

static vmm_verdict_t hlt_handle(void *user, vmm_exit_t *ex)
{
    (void)ex;
    (*(uint64_t *)user)++;
    return VMM_HANDLED;
}

/* The "kernel": an opaque call that writes exit_reason, as KVM_RUN would. */
static void enter(struct kvm_run *run, uint32_t reason) { run->exit_reason = reason; }
static void (*volatile kvm_run_entry)(struct kvm_run *, uint32_t) = enter;

static vmm_verdict_t (*volatile pio_handler)(void *, vmm_exit_t *) = pio_handle;
static vmm_verdict_t (*volatile mmio_handler)(void *, vmm_exit_t *) = mmio_handle;
static vmm_verdict_t (*volatile hlt_handler)(void *, vmm_exit_t *) = hlt_handle;

/* The loop a C VMM would write around KVM_RUN, minus the ioctl: decode the record
 * (with the same plausibility checks), copy OUT data to a private buffer, find the
 * handler by range, fill the plugin record, call it, write IN/MMIO-read data back. */
uint64_t user_path_c_loop(void *page, uint32_t reason, uint64_t n, uint16_t port, uint64_t mmio,
                          vmm_exit_t *record, uint8_t *scratch)
{
    struct kvm_run *run = page;
    uint64_t handled = 0, count = 0;
    for (uint64_t i = 0; i < n; i++) {
        kvm_run_entry(run, reason);
        vmm_verdict_t v = VMM_FAIL;
        record->struct_size = sizeof *record;
        record->vcpu_id = 0;
        record->message = NULL;
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            uint64_t bytes = (uint64_t)run->io.size * run->io.count, off = run->io.data_offset;
            if ((run->io.size != 1 && run->io.size != 2 && run->io.size != 4) || bytes == 0
                || off > USER_PATH_PAGE_SIZE || bytes > USER_PATH_PAGE_SIZE - off)
                return 0;
            int out = run->io.direction == KVM_EXIT_IO_OUT;
            if (out)
                memcpy(scratch, (uint8_t *)page + off, bytes);
            if (run->io.port != port)
                return 0;
            record->exit_class = VMM_EXIT_PIO;
            record->pio.port = run->io.port;
            record->pio.size = run->io.size;
            record->pio.is_write = (uint8_t)out;
            record->pio.count = run->io.count;
            record->pio.data = scratch;
            v = pio_handler(&count, record);
            if (!out && v == VMM_HANDLED)
                memcpy((uint8_t *)page + off, scratch, bytes);
            break;
        }
        case KVM_EXIT_MMIO: {
            uint32_t len = run->mmio.len;
            if (len == 0 || len > 8)
                return 0;
            if (run->mmio.phys_addr - mmio >= 4096)
                return 0;
            record->exit_class = VMM_EXIT_MMIO;
            record->mmio.gpa = run->mmio.phys_addr;
            record->mmio.len = len;
            record->mmio.is_write = run->mmio.is_write;
            memset(record->mmio.data, 0, 8);
            if (run->mmio.is_write)
                memcpy(record->mmio.data, run->mmio.data, len);
            v = mmio_handler(&count, record);
            if (!run->mmio.is_write && v == VMM_HANDLED)
                memcpy(run->mmio.data, record->mmio.data, len);
            break;
        }
        case KVM_EXIT_HLT:
            record->exit_class = VMM_EXIT_HLT;
            v = hlt_handler(&count, record);
            break;
        default:
            return 0;
        }
        handled += v == VMM_HANDLED;
    }
    return handled;
}

/* The first entry of a run writes the whole record; after the last exit, a triple fault. */
static __attribute__((noinline)) int user_path_first_or_last(user_path_kernel_t *k)
{
    struct kvm_run *run = k->run;
    if (k->unstarted) {
        k->left = (int64_t)k->unstarted - 1;
        k->unstarted = 0;
        user_path_prepare(run, k->shape, k->port, k->mmio);
        run->exit_reason = k->reason;
        return 0;
    }
    k->left = 0;
    run->exit_reason = KVM_EXIT_SHUTDOWN;
    return 0;
}

/* A leaf on the usual entry, as the C loop's stand-in is; the run's ends out of line. */
int user_path_kernel_enter(void *kernel)
{
    user_path_kernel_t *k = kernel;
    if (--k->left >= 0) {
        ((struct kvm_run *)k->run)->exit_reason = k->reason;
        return 0;
    }
    return user_path_first_or_last(k);
}

/*
 * Test fixtures for the plugin host's refusals, one library per variant (built by
 * scripts/build-plugins with -DVARIANT_...). Each is wrong in exactly one way.
 */
#include "vmm_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int instance_token __attribute__((unused));

#if defined(VARIANT_INIT_FAILS)
/* With config "echo=TEXT", logs TEXT and fails with it as its message: a plugin that
 * passes on whatever it was given, control characters included. */
static char echoed[256];
static void *fixture_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    if (strncmp(config, "echo=", 5) == 0) {
        snprintf(echoed, sizeof echoed, "%s", config + 5);
        host->log(host->host_data, VMM_LOG_ERROR, echoed);
        *error_out = echoed;
        return NULL;
    }
    /* "long=N": logs and fails with N bytes of 'x' (up to 1 MiB), a string no host
     * should read or print whole. */
    if (strncmp(config, "long=", 5) == 0) {
        static char text[(1 << 20) + 1];
        size_t n = (size_t)strtoul(config + 5, NULL, 10);
        if (n > sizeof text - 1) n = sizeof text - 1;
        memset(text, 'x', n);
        text[n] = 0;
        host->log(host->host_data, VMM_LOG_ERROR, text);
        *error_out = text;
        return NULL;
    }
    /* "route": routes MSR 0x10 to user space and sets CPUID 0x40000001:EAX bit 20 on every
     * vCPU, then fails: what it changed must not outlive the refusal. */
    if (strcmp(config, "route") == 0) {
        const vmm_host_vcpu_t *v = host->get_extension(host->host_data, VMM_EXT_HOST_VCPU);
        static const uint32_t tsc = 0x10;
        if (v == NULL || v->route_msrs(host->host_data, &tsc, 1, error_out) != 0
            || v->set_cpuid_bits(host->host_data, 0x40000001u, 0, VMM_CPUID_EAX, 1u << 20, 0, error_out) != 0)
            return NULL;
        *error_out = "fixture: routed MSR 0x10 and edited CPUID, then failed";
        return NULL;
    }
    *error_out = "fixture: the device refuses to start (config missing 'disk')";
    return NULL;
}
#elif defined(VARIANT_BAD_HYPERCALL)
/* Registers a hypercall whose signature names a type that does not exist; forwards
 * the host's message as its own error. */
static uint64_t never_called(void *user, uint64_t a) { (void)user; return a; }
static char message[1024];
static void *fixture_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    const vmm_host_hypercall_t *hc = host->get_extension(host->host_data, VMM_EXT_HOST_HYPERCALL);
    const char *err = NULL;
    (void)config;
    if (hc == NULL) { *error_out = "fixture: no hypercall extension"; return NULL; }
    if (hc->register_hypercall(host->host_data, 200, "u64(u64, float)", (void (*)(void))never_called,
                               NULL, &err) != 0) {
        snprintf(message, sizeof message, "fixture: %s", err ? err : "?");
        *error_out = message;
        return NULL;
    }
    return &instance_token;
}
#elif defined(VARIANT_C_FAIL)
/* A handler that fails on every write to port 0x530, with a message. With config
 * "escape" its name and message hold a newline and terminal escapes, which every line
 * that shows them (--trace exits, the run's error) must print escaped. */
static char fail_text[64];
static int fail_escapes;
static vmm_verdict_t fail_handler(void *user, vmm_exit_t *ex)
{
    (void)user;
    snprintf(fail_text, sizeof fail_text, fail_escapes ? "c-fixture: refused\n\x1b[2Jvmm: forged %u"
             : "c-fixture: refused value %u", ex->pio.data[0]);
    ex->message = fail_text;
    return VMM_FAIL;
}
static void *fixture_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0x530;
    d.length = 1;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = fail_handler;
    fail_escapes = config != NULL && strcmp(config, "escape") == 0;
    d.name = fail_escapes ? "fail\x1b]0;title\x07port" : "fail-port";
    if (host->register_handler(host->host_data, &d, error_out) != 0)
        return NULL;
    return &instance_token;
}
#elif defined(VARIANT_DIV0)
/* A handler with a bug: divides by the byte the guest writes to port 0x531, so a
 * guest writing 0 kills the VMM with SIGFPE (the terminal must still be restored). */
static vmm_verdict_t divide(void *user, vmm_exit_t *ex)
{
    volatile unsigned quotient;
    (void)user;
    quotient = 1000u / ex->pio.data[0];
    (void)quotient;
    return VMM_HANDLED;
}
static void *fixture_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    vmm_handler_desc_t d;
    (void)config;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0x531;
    d.length = 1;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = divide;
    d.name = "divide";
    if (host->register_handler(host->host_data, &d, error_out) != 0)
        return NULL;
    return &instance_token;
}
#elif defined(VARIANT_RANGES)
/* Claims one hostile range, picked by config: "" (the default, what `vmm plugins`
 * uses) an MMIO range ending exactly at 2^64, "pio" a port range ending at 2^64,
 * "ram" an MMIO range over guest RAM at 1 MiB, "allpio" all 0x10000 ports,
 * "fault", "apf" and "other" a memory-fault, async-PF or exit-reason range of length
 * 2^64 - 1 MiB at 2 MiB (it wraps), "msr" MSRs 0xffffff00 + 0x200, "hlt" a HLT handler
 * with base 0x10 and length 0x20 (both must be 0), "lapic" MMIO [0xfee00ff8, +0x10) and
 * "ioapic" the I/O APIC's page (the in-kernel irqchip serves both). The host must refuse
 * each ("lapic" and "ioapic" only with the in-kernel irqchip). "ioapic-high" claims
 * [0xfec00100, +0x100), beyond the kernel's I/O APIC: accepted. Ports: "pit" claims port
 * 0x40, "pic-partial" [0x1e, +4) (two ports of the master PIC), "elcr" [0x4d0, +2): with
 * the in-kernel PIT or irqchip KVM serves them, so the host must refuse each then;
 * "speaker" port 0x61, which KVM's PIT serves too (KVM_PIT_SPEAKER_DUMMY): refused as well. "misaligned" passes a
 * valid port descriptor one byte past an 8-byte boundary (as a packed struct's field). */
static vmm_verdict_t never_handled(void *user, vmm_exit_t *ex) { (void)user; (void)ex; return VMM_NOT_MINE; }
static void *fixture_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_MMIO;
    d.base = 0xfffffffffffff000ull;
    d.length = 0x1000;
    if (config && strcmp(config, "pio") == 0) {
        d.exit_class = VMM_EXIT_PIO;
    } else if (config && strcmp(config, "ram") == 0) {
        d.base = 0x100000;
    } else if (config && strcmp(config, "allpio") == 0) {
        d.exit_class = VMM_EXIT_PIO;
        d.base = 0;
        d.length = 0x10000;
    } else if (config && (strcmp(config, "fault") == 0 || strcmp(config, "apf") == 0 || strcmp(config, "other") == 0)) {
        d.exit_class = config[0] == 'f' ? VMM_EXIT_MEMORY_FAULT : config[0] == 'a' ? VMM_EXIT_ASYNC_PF : VMM_EXIT_OTHER;
        d.base = 0x200000;
        d.length = 0ull - 0x100000;
    } else if (config && strcmp(config, "msr") == 0) {
        d.exit_class = VMM_EXIT_MSR;
        d.base = 0xffffff00;
        d.length = 0x200;
    } else if (config && strcmp(config, "hlt") == 0) {
        d.exit_class = VMM_EXIT_HLT;
        d.base = 0x10;
        d.length = 0x20;
    } else if (config && strcmp(config, "lapic") == 0) {
        d.base = 0xfee00ff8;
        d.length = 0x10;
    } else if (config && strcmp(config, "ioapic") == 0) {
        d.base = 0xfec00000;
    } else if (config && strcmp(config, "ioapic-high") == 0) {
        d.base = 0xfec00100;
        d.length = 0x100;
    } else if (config && (strcmp(config, "pit") == 0 || strcmp(config, "speaker") == 0)) {
        d.exit_class = VMM_EXIT_PIO;
        d.base = config[0] == 'p' ? 0x40 : 0x61;
        d.length = 1;
    } else if (config && strcmp(config, "pic-partial") == 0) {
        d.exit_class = VMM_EXIT_PIO;
        d.base = 0x1e;
        d.length = 4;
    } else if (config && strcmp(config, "elcr") == 0) {
        d.exit_class = VMM_EXIT_PIO;
        d.base = 0x4d0;
        d.length = 2;
    }
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = never_handled;
    d.name = "hostile-range";
    if (config && strcmp(config, "misaligned") == 0) {
        static unsigned char odd[sizeof d + 8] __attribute__((aligned(8)));
        d.exit_class = VMM_EXIT_PIO;
        d.base = 0x560;
        d.length = 1;
        memcpy(odd + 1, &d, sizeof d);
        return host->register_handler(host->host_data, (const vmm_handler_desc_t *)(const void *)(odd + 1), error_out) != 0
            ? NULL : &instance_token;
    }
    if (host->register_handler(host->host_data, &d, error_out) != 0)
        return NULL;
    return &instance_token;
}
#else
static void *fixture_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    (void)host; (void)config; (void)error_out;
    return &instance_token;
}
#endif

static void fixture_destroy(void *instance) { (void)instance; }

#if defined(VARIANT_MISALIGNED)
/* A whole, valid descriptor, but one byte into a packed struct: vmm_plugin_entry names an
 * odd address, which no vmm_plugin_entry_t may have (a host reading it in place trapped). */
struct __attribute__((packed)) misaligned { char pad; vmm_plugin_entry_t entry; };
VMM_PLUGIN_EXPORT __attribute__((aligned(8))) const struct misaligned misaligned_entry = { 0, {
#elif defined(VARIANT_NO_ENTRY)
/* Exports something, but not vmm_plugin_entry. */
VMM_PLUGIN_EXPORT const vmm_plugin_entry_t not_the_entry = {
#else
const vmm_plugin_entry_t vmm_plugin_entry = {
#endif
    sizeof(vmm_plugin_entry_t),
#if defined(VARIANT_MAJOR2)
    2, 0,
#elif defined(VARIANT_MINOR_NEWER)
    VMM_PLUGIN_ABI_MAJOR, 99,
#else
    VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
#endif
    "org.vmmkit.test.fixture", "0.0.1", "a broken plugin for tests",
    fixture_init, fixture_destroy, NULL,
#if defined(VARIANT_MISALIGNED)
} };
__asm__(".globl vmm_plugin_entry\n.set vmm_plugin_entry, misaligned_entry + 1");
#else
};
#endif

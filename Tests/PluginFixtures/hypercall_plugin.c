/*
 * Test fixture: typed hypercalls with 0 to 6 integer/pointer arguments, called by the
 * host through libffi (the guest side is the plugin_hypercalls payload).
 */
#include "vmm_plugin.h"

#include <stdio.h>
#include <string.h>

static int instance_token;

static uint64_t h100(void *u) { (void)u; return 0x1122334455667788ull; }
static uint64_t h101(void *u, uint64_t a) { (void)u; return 3 * a; }
static int32_t h102(void *u, int32_t a, int32_t b) { (void)u; return a - b; }
static uint64_t h103(void *u, uint8_t a, uint16_t b, uint32_t c) { (void)u; return (uint64_t)a + b + c; }
static uint64_t h104(void *u, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)u; return a + 2 * b + 3 * c + 4 * d;
}
static uint64_t h105(void *u, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)u; return a + 2 * b + 3 * c + 4 * d + 5 * e;
}
static int64_t h106(void *u, const void *p, uint64_t b, uint64_t c, uint64_t d, uint64_t e, int8_t f)
{
    uint64_t v = 0;
    (void)u;
    if (p == NULL)
        return -1;
    memcpy(&v, p, sizeof v);
    return (int64_t)(v + b + c + d + e) + f;
}

static char message[1024];

static void *hc_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    static const struct { uint32_t n; const char *sig; void (*fn)(void); } calls[] = {
        { 100, "u64()", (void (*)(void))h100 },
        { 101, "u64(u64)", (void (*)(void))h101 },
        { 102, "i32(i32, i32)", (void (*)(void))h102 },
        { 103, "u64(u8,u16,u32)", (void (*)(void))h103 },
        { 104, "u64(u64,u64,u64,u64)", (void (*)(void))h104 },
        { 105, "u64(u64,u64,u64,u64,u64)", (void (*)(void))h105 },
        { 106, "i64(ptr,u64,u64,u64,u64,i8)", (void (*)(void))h106 },
    };
    const vmm_host_hypercall_t *hc = host->get_extension(host->host_data, VMM_EXT_HOST_HYPERCALL);
    (void)config;
    if (hc == NULL || !VMM_HAS_FIELD(hc, vmm_host_hypercall_t, register_hypercall)) {
        *error_out = "hypercalls: the host has no typed hypercalls";
        return NULL;
    }
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        const char *err = NULL;
        if (hc->register_hypercall(host->host_data, calls[i].n, calls[i].sig, calls[i].fn, NULL, &err) != 0) {
            snprintf(message, sizeof message, "hypercalls: %s", err ? err : "?");
            *error_out = message;
            return NULL;
        }
    }
    return &instance_token;
}

static void hc_destroy(void *instance) { (void)instance; }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.hypercalls", "1.0.0", "typed hypercalls 100..106 for tests",
    hc_init, hc_destroy, NULL,
};

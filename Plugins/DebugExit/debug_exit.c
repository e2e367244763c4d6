/*
 * debug-exit: a guest writes a code to one port (default 0xf4) or MMIO address and the
 * VM stops with that code as its result. Reads return 0.
 *
 * This is also the template for third-party plugins: it uses nothing but
 * vmm_plugin.h and the C library. Build it with
 *   cc -std=c11 -Wall -Wextra -Werror -shared -fPIC \
 *      -I CShims/CVMMPlugin/include Plugins/DebugExit/debug_exit.c -o libdebug_exit.so
 * Config (comma-separated key=value): "port=0xf4" (default) or "mmio=0xfee00000".
 */
#include "vmm_plugin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-instance state. The same library may be initialised several times (one per VM),
 * so nothing lives in globals except the error buffer below. */
typedef struct debug_exit {
    const vmm_host_t *host; /* valid until destroy() */
    uint64_t addr;          /* port or guest-physical address */
    int is_mmio;
    vmm_plugin_state_t state; /* ABI 1.2 state extension, user = this instance */
} debug_exit_t;

/* init()'s error message. The host serialises all init/destroy calls process-wide and
 * copies the message right after init returns, so one static buffer is enough. */
static char error_buf[512]; /* host messages name both owners with their paths */

/* Formats "debug-exit: <what> '<key>'<hint>" into error_buf and returns it. */
static const char *key_error(const char *what, const char *key, const char *hint)
{
    snprintf(error_buf, sizeof error_buf, "debug-exit: %s '%s'%s", what, key, hint);
    return error_buf;
}

/* [vcpu-thread] Called for every exit at our address. It may run on several vCPU
 * threads at once; it reads only immutable state, so it needs no lock. */
static vmm_verdict_t handle(void *user, vmm_exit_t *ex)
{
    debug_exit_t *dev = (debug_exit_t *)user;
    int pio = ex->exit_class == VMM_EXIT_PIO; /* else VMM_EXIT_MMIO */
    uint8_t *data = pio ? ex->pio.data : ex->mmio.data;
    size_t len = pio ? ex->pio.size : ex->mmio.len; /* bytes of one access */
    uint64_t value = 0;

    if (!(pio ? ex->pio.is_write : ex->mmio.is_write)) {
        /* A read returns 0 (for a `rep ins`, every element). */
        memset(data, 0, pio ? len * ex->pio.count : len);
        return VMM_HANDLED;
    }
    /* A write: data is little-endian; `rep outs` arrives one element per exit.
     * The exit code is the low 32 bits of the value. */
    for (size_t i = len; i > 0; i--)
        value = (value << 8) | data[i - 1];

    /* No reason: the guest chose to exit, and a reason is printed as news of the
     * plugin's own (QEMU's isa-debug-exit says nothing either). */
    dev->host->request_stop(dev->host->host_data, -1, (int32_t)(uint32_t)value, NULL);
    return VMM_HANDLED;
}

/* Parses "key=value,key=value" in place. Returns NULL, or an error naming the key. */
static const char *parse_config(debug_exit_t *dev, char *config)
{
    int have_port = 0, have_mmio = 0;

    while (*config != '\0') {
        char *item = config, *eq, *end;
        size_t n = strcspn(config, ",");
        unsigned long long v;

        config += n + (config[n] == ',');
        item[n] = '\0';
        if (n == 0)
            continue; /* tolerate empty items: "port=0xf4," */
        if ((eq = strchr(item, '=')) == NULL)
            return key_error("expected key=value, got", item, "");
        *eq = '\0';
        errno = 0;
        v = strtoull(eq + 1, &end, 0); /* 0x.., 0.. (octal) or decimal */
        if (strcmp(item, "port") != 0 && strcmp(item, "mmio") != 0)
            return key_error("unknown key", item, " (known keys: port, mmio)");
        /* A second value is refused, as the UART refuses it: "port=0xf4,port=0xf5" took
         * the last in silence, and the guest's exit went unheard at 0xf4. */
        if (item[0] == 'p' ? have_port : have_mmio)
            return key_error("key", item, " given twice");
        /* A digit first: strtoull also skips spaces and takes a sign ("-1" is 2^64 - 1). */
        if (eq[1] < '0' || eq[1] > '9' || *end != '\0' || errno != 0 ||
            (item[0] == 'p' && v > 0xffff))
            return key_error("bad value for key", item,
                             item[0] == 'p' ? " (a port, 0..0xffff)" : " (an address)");
        dev->addr = v;
        dev->is_mmio = item[0] == 'm';
        have_port |= !dev->is_mmio;
        have_mmio |= dev->is_mmio;
    }
    if (have_port && have_mmio)
        return key_error("key", "mmio", " cannot be combined with 'port'");
    return NULL;
}

/* [load-thread] Creates an instance: parse the config, register the handler. */
static void *debug_exit_init(const vmm_host_t *host, const char *config,
                             const char **error_out)
{
    debug_exit_t *dev;
    vmm_handler_desc_t desc;
    const char *err = NULL;
    char line[96], cfg[256];

    /* The host honours our ABI minor, so every 1.0 field is there; a plugin that uses
     * fields added in a later minor checks them like this (ABI rule 3). */
    if (!VMM_HAS_FIELD(host, vmm_host_t, request_stop)) {
        *error_out = "debug-exit: host table too small";
        return NULL;
    }
    dev = (debug_exit_t *)calloc(1, sizeof *dev);
    if (dev == NULL) {
        *error_out = "debug-exit: out of memory";
        return NULL;
    }
    dev->host = host;
    dev->addr = 0xf4;
    if (strlen(config) >= sizeof cfg)
        err = "debug-exit: config string too long";
    else
        err = parse_config(dev, strcpy(cfg, config)); /* parse a private copy */
    if (err != NULL) {
        free(dev);
        *error_out = err;
        return NULL;
    }

    memset(&desc, 0, sizeof desc); /* producer zero-fills (ABI rule 2) */
    desc.struct_size = sizeof desc;
    desc.exit_class = dev->is_mmio ? VMM_EXIT_MMIO : VMM_EXIT_PIO;
    desc.base = dev->addr;
    desc.length = 1; /* one register; any access width starting here matches */
    desc.priority = 0;
    desc.flags = VMM_HANDLER_EXCLUSIVE; /* we own this address */
    desc.handle = handle;
    desc.user = dev;
    desc.name = "debug-exit";
    if (host->register_handler(host->host_data, &desc, &err) != 0) {
        free(dev); /* the host discards registrations of a failed init */
        snprintf(error_buf, sizeof error_buf, "debug-exit: %s",
                 err ? err : "cannot register the handler");
        *error_out = error_buf;
        return NULL;
    }

    snprintf(line, sizeof line, "debug-exit on %s 0x%llx", dev->is_mmio ? "mmio" : "port",
             (unsigned long long)dev->addr);
    host->log(host->host_data, VMM_LOG_DEBUG, line);
    return dev;
}

/* ---- ABI 1.2 state (snapshot/restore). The device keeps no run-time state; the blob
 * is its placement (16 bytes: uint64 address, uint32 is_mmio, uint32 zero, little-endian
 * on x86), so a restore into a differently configured instance is refused. Called on the
 * control thread with every vCPU paused. */
#define DEBUG_EXIT_STATE_SIZE 16u

static int state_save(void *user, void *buffer, uint64_t capacity, uint64_t *size_out)
{
    const debug_exit_t *dev = (const debug_exit_t *)user;
    uint32_t words[2] = {(uint32_t)dev->is_mmio, 0};

    *size_out = DEBUG_EXIT_STATE_SIZE;
    if (capacity < DEBUG_EXIT_STATE_SIZE)
        return -ENOSPC;
    memcpy(buffer, &dev->addr, 8);
    memcpy((char *)buffer + 8, words, 8);
    return 0;
}

static int state_restore(void *user, const void *bytes, uint64_t length, uint32_t version)
{
    const debug_exit_t *dev = (const debug_exit_t *)user;
    uint64_t addr;
    uint32_t words[2];
    char why[160];

    if (version != 1)
        return -ENOTSUP;
    if (length != DEBUG_EXIT_STATE_SIZE) {
        /* A line logged at error level during the call is the host's message for it. */
        snprintf(why, sizeof why, "debug-exit: a state of %llu bytes; version 1 has %u",
                 (unsigned long long)length, DEBUG_EXIT_STATE_SIZE);
        dev->host->log(dev->host->host_data, VMM_LOG_ERROR, why);
        return -EINVAL;
    }
    memcpy(&addr, bytes, 8);
    memcpy(words, (const char *)bytes + 8, 8);
    if (addr != dev->addr || words[0] != (uint32_t)dev->is_mmio || words[1] != 0) {
        snprintf(why, sizeof why, "debug-exit: the state is of a debug-exit at %s 0x%llx; this one is at %s 0x%llx",
                 words[0] ? "MMIO" : "port", (unsigned long long)addr, dev->is_mmio ? "MMIO" : "port",
                 (unsigned long long)dev->addr);
        dev->host->log(dev->host->host_data, VMM_LOG_ERROR, why);
        return -EINVAL;
    }
    return 0;
}

/* [load-thread] The plugin's own extensions: only the state table. */
static const void *debug_exit_get_extension(void *instance, const char *id)
{
    debug_exit_t *dev = (debug_exit_t *)instance;

    if (strcmp(id, VMM_PLUGIN_EXT_STATE) != 0)
        return NULL;
    memset(&dev->state, 0, sizeof dev->state);
    dev->state.struct_size = sizeof dev->state;
    dev->state.version = 1;
    dev->state.user = dev;
    dev->state.save = state_save;
    dev->state.restore = state_restore;
    return &dev->state;
}

/* [load-thread] No handler runs during or after this call. */
static void debug_exit_destroy(void *instance)
{
    free(instance);
}

/* The one exported symbol (the header's declaration exports it); the host reads it
 * with dlsym("vmm_plugin_entry") before calling any code. */
const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t),
    VMM_PLUGIN_ABI_MAJOR,
    VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.debug-exit",
    "1.0.0",
    "Guest writes a code to a port or MMIO address; the VM stops with that code",
    debug_exit_init,
    debug_exit_destroy,
    debug_exit_get_extension, /* the ABI 1.2 state extension */
};

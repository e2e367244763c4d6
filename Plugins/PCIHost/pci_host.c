/*
 * pci-host: PCI configuration mechanism #1 (ports 0xcf8 address, 0xcfc-0xcff data) with
 * the functions of QEMU's `pc` machine that VMMKit's launcher has devices behind, as
 * `qemu-system-x86_64 -M pc` shows them after SeaBIOS:
 *   00:00.0  the i440FX host bridge (8086:1237, revision 2, class 06:00:00);
 *   00:01.0  PIIX3's PCI-to-ISA bridge (8086:7000, class 06:01:00), multi-function, so
 *            that a scan honouring the header's bit 7 goes on to function 1;
 *   00:01.1  PIIX3's IDE controller (8086:7010, class 01:01) in compatibility mode: its
 *            channels are the legacy ports (0x1f0/0x3f6 and 0x170/0x376, IRQ 14 and 15),
 *            the first where `vmm run --hda` puts its disk (the launcher has no device
 *            on the second); a driver that finds the controller by
 *            class, as many hobby kernels written for QEMU do, is sent there. Unlike
 *            QEMU's (programming interface 0x80, bus-master BAR 4), it says it has no
 *            bus master (0x00) and BAR 4 is not implemented (reads 0 after any write):
 *            there is no DMA engine behind it, and a driver must not find one.
 *   00:02.0  with config `vga=std` (`vmm run --vga std`), QEMU's standard VGA (1234:1111,
 *            class 03:00:00), its 16 MiB framebuffer in BAR 0 at 0xfd000000 as SeaBIOS
 *            places it, where the launcher's Bochs display keeps it: BAR 0 sizes as a
 *            16 MiB prefetchable window (all-ones written reads 0xff000008), and any
 *            other address written reads back 0xfd000008, as the framebuffer cannot move.
 *            Revision 0 and no BAR 2, as QEMU's with mmio=off: the display registers are
 *            the ports 0x1ce-0x1d0. Memory and I/O decoding always on (command read-only).
 * All with QEMU's subsystem 1af4:1100. Every other bus/device/function reads all-ones
 * (absent), as do data reads while the address register's enable bit (31) is clear.
 * Writes reach only writable fields (the bridges' command registers, latency timer, the
 * PAM and SMRAM registers, PIIX3's PIRQ routing); read-only fields ignore them. Port 0xcf9
 * is not this device's: on QEMU's `pc` it is PIIX3's reset control, which `vmm` serves
 * itself. A `vmm run` default; config: empty, or `vga=std`.
 */
#include "vmm_plugin.h"

#include <errno.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_ADDRESS 0xcf8
#define CONFIG_DATA 0xcfc

/* The functions present, in the order of their configuration spaces in the state. */
enum { HOST_BRIDGE, ISA_BRIDGE, IDE, VGA, FUNCTIONS };
/* Each one's device << 3 | function on bus 0. */
static const uint8_t devfn[FUNCTIONS] = {0x00, 0x08, 0x09, 0x10};
/* The VGA's framebuffer address (BAR 0's top byte) and its prefetchable 32-bit flags. */
#define VGA_FRAMEBUFFER_TOP 0xfd
#define VGA_BAR0_FLAGS 0x08

typedef struct pci_host {
    const vmm_host_t *host; /* valid until destroy(); for state refusals' reasons */
    pthread_mutex_t lock; /* vCPUs may probe concurrently */
    uint32_t address;     /* the last dword written to 0xcf8 */
    int vga;              /* config vga=std: 00:02.0 is present */
    uint8_t config[FUNCTIONS][256]; /* each function's configuration space */
    uint8_t wmask[FUNCTIONS][256];  /* writable bits per byte */
    vmm_plugin_state_t state; /* ABI 1.2 state extension */
} pci_host_t;

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* Ids, class and header type common to every function. */
static void identify(uint8_t *c, uint16_t vendor, uint16_t device, uint8_t revision,
                     uint8_t base_class, uint8_t sub_class, uint8_t header)
{
    put16(c + 0x00, vendor);
    put16(c + 0x02, device);
    c[0x08] = revision;
    c[0x0b] = base_class;
    c[0x0a] = sub_class;
    c[0x0e] = header;                /* type 0; bit 7: more functions */
    put16(c + 0x2c, 0x1af4);         /* subsystem vendor (QEMU's default) */
    put16(c + 0x2e, 0x1100);
}

static void reset(pci_host_t *h)
{
    memset(h->config, 0, sizeof h->config);
    memset(h->wmask, 0, sizeof h->wmask);

    uint8_t *c = h->config[HOST_BRIDGE], *w = h->wmask[HOST_BRIDGE];
    identify(c, 0x8086, 0x1237, 0x02, 0x06, 0x00, 0x00); /* 82441FX (i440FX) host bridge */
    w[0x04] = 0x07;                  /* command: I/O, memory, bus master */
    w[0x0d] = 0xff;                  /* latency timer */
    memset(w + 0x59, 0xff, 7);       /* PAM0-PAM6 */
    w[0x72] = 0xff;                  /* SMRAM */

    c = h->config[ISA_BRIDGE], w = h->wmask[ISA_BRIDGE];
    identify(c, 0x8086, 0x7000, 0x00, 0x06, 0x01, 0x80); /* 82371SB (PIIX3) ISA bridge */
    c[0x04] = 0x07;                  /* command as QEMU's reset leaves it */
    w[0x04] = 0x07;
    put16(c + 0x06, 0x0200);         /* status: DEVSEL medium */
    memset(c + 0x60, 0x80, 4);       /* PIRQA-D routing off: no PCI device raises INTx */
    memset(w + 0x60, 0x8f, 4);

    c = h->config[IDE];
    identify(c, 0x8086, 0x7010, 0x00, 0x01, 0x01, 0x00); /* 82371SB (PIIX3) IDE */
    c[0x04] = 0x01;                  /* command: I/O decode, read-only (always on) */
    put16(c + 0x06, 0x0280);         /* status: fast back-to-back, DEVSEL medium */
    put16(c + 0x40, 0x8000);         /* IDETIM: both channels decoded, as SeaBIOS */
    put16(c + 0x42, 0x8000);         /* leaves them (read-only: always decoded) */

    if (!h->vga)
        return;                      /* absent: all zeros, never selected */
    c = h->config[VGA], w = h->wmask[VGA];
    identify(c, 0x1234, 0x1111, 0x00, 0x03, 0x00, 0x00); /* QEMU's standard VGA */
    c[0x04] = 0x03;                  /* command: I/O and memory, read-only (always on) */
    c[0x10] = VGA_BAR0_FLAGS;        /* BAR 0: 16 MiB, prefetchable, 32-bit */
    c[0x13] = VGA_FRAMEBUFFER_TOP;
    w[0x13] = 0xff;                  /* then held at 0xfd or 0xff (sizing) by `access` */
}

/* The config-space byte offset addressed by a data access at `port`, and the function's
 * index in *function, or -1 if the address register selects nothing present. */
static int target(const pci_host_t *h, uint16_t port, int *function)
{
    uint32_t a = h->address;
    if (!(a & 0x80000000u) || ((a >> 16) & 0xff) != 0)
        return -1;
    for (int f = 0; f < FUNCTIONS; f++) {
        if (f == VGA && !h->vga)
            continue;
        if (((a >> 8) & 0xff) == devfn[f]) {
            *function = f;
            return (int)((a & 0xfc) + (port - CONFIG_DATA));
        }
    }
    return -1;
}

/* [vcpu-thread] One element of a PIO access: `size` bytes at `data`. */
static void access(pci_host_t *h, uint16_t port, int is_write, uint8_t *data, uint32_t size)
{
    if (port < CONFIG_DATA) {
        /* The address register answers dword accesses at 0xcf8 only. */
        if (port != CONFIG_ADDRESS || size != 4) {
            if (!is_write)
                memset(data, 0xff, size);
        } else if (is_write) {
            h->address = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
                         (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
        } else {
            for (uint32_t i = 0; i < 4; i++)
                data[i] = (uint8_t)(h->address >> (8 * i));
        }
        return;
    }
    int f = 0;
    int at = target(h, port, &f);
    uint8_t *config = h->config[f];
    const uint8_t *wmask = h->wmask[f];
    for (uint32_t i = 0; i < size; i++) {
        int off = at < 0 ? -1 : at + (int)i;
        if (off < 0 || off > 0xff) {
            if (!is_write)
                data[i] = 0xff;
        } else if (is_write) {
            config[off] = (uint8_t)((config[off] & ~wmask[off]) | (data[i] & wmask[off]));
            /* The framebuffer stays where it is: BAR 0 reads its size or its address. */
            if (f == VGA && off == 0x13 && config[off] != 0xff)
                config[off] = VGA_FRAMEBUFFER_TOP;
        } else {
            data[i] = config[off];
        }
    }
}

static vmm_verdict_t handle(void *user, vmm_exit_t *ex)
{
    pci_host_t *h = (pci_host_t *)user;
    pthread_mutex_lock(&h->lock);
    for (uint32_t i = 0; i < ex->pio.count; i++)
        access(h, ex->pio.port, ex->pio.is_write, ex->pio.data + (size_t)i * ex->pio.size, ex->pio.size);
    pthread_mutex_unlock(&h->lock);
    return VMM_HANDLED;
}

static void *pci_host_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    vmm_handler_desc_t desc;
    const char *err = NULL;
    pci_host_t *h;

    if (config[0] != '\0' && strcmp(config, "vga=std") != 0) {
        *error_out = "pci-host: the only config is vga=std (the standard VGA at 00:02.0)";
        return NULL;
    }
    if ((h = (pci_host_t *)calloc(1, sizeof *h)) == NULL) {
        *error_out = "pci-host: out of memory";
        return NULL;
    }
    h->host = host;
    h->vga = config[0] != '\0';
    pthread_mutex_init(&h->lock, NULL);
    reset(h);
    /* 0xcf8, 0xcfa-0xcfb and 0xcfc-0xcff: everything but 0xcf9 (reset control). A
     * handler takes the accesses that start in its range. */
    static const struct { uint16_t base; uint16_t length; const char *name; } ranges[] = {
        {CONFIG_ADDRESS, 1, "pci-config-address"},
        {CONFIG_ADDRESS + 2, 2, "pci-config-address-high"},
        {CONFIG_DATA, 4, "pci-config-data"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        memset(&desc, 0, sizeof desc);
        desc.struct_size = sizeof desc;
        desc.exit_class = VMM_EXIT_PIO;
        desc.base = ranges[i].base;
        desc.length = ranges[i].length;
        desc.flags = VMM_HANDLER_EXCLUSIVE;
        desc.handle = handle;
        desc.user = h;
        desc.name = ranges[i].name;
        if (host->register_handler(host->host_data, &desc, &err) != 0) {
            /* A failed init's registrations are discarded by the host. */
            pthread_mutex_destroy(&h->lock);
            free(h);
            *error_out = err ? err : "pci-host: cannot register its ports (0xcf8, 0xcfa-0xcff)";
            return NULL;
        }
    }
    return h;
}

static void pci_host_destroy(void *instance)
{
    pci_host_t *h = (pci_host_t *)instance;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- ABI 1.2 state (snapshot/restore), version 3: the uint32 CONFIG_ADDRESS latch, then
 * the 256 bytes of each function's configuration space, in the order of `devfn`, an
 * absent VGA's all zeros (versions 1 and 2, without the VGA's space, are refused by the
 * host as other versions). Called on the control thread, vCPUs paused. */
#define PCI_HOST_STATE_VERSION 3u
#define PCI_HOST_STATE_SIZE (4u + 256u * FUNCTIONS)

static int state_save(void *user, void *buffer, uint64_t capacity, uint64_t *size_out)
{
    pci_host_t *h = (pci_host_t *)user;

    *size_out = PCI_HOST_STATE_SIZE;
    if (capacity < PCI_HOST_STATE_SIZE)
        return -ENOSPC;
    pthread_mutex_lock(&h->lock);
    memcpy(buffer, &h->address, 4);
    memcpy((uint8_t *)buffer + 4, h->config, sizeof h->config);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static int state_restore(void *user, const void *bytes, uint64_t length, uint32_t version)
{
    pci_host_t *h = (pci_host_t *)user;
    const uint8_t *config = (const uint8_t *)bytes + 4;

    char why[200];

    if (version != PCI_HOST_STATE_VERSION)
        return -ENOTSUP;
    if (length != PCI_HOST_STATE_SIZE) {
        /* A line logged at error level during the call is the host's message for it. */
        snprintf(why, sizeof why, "pci-host: a state of %llu bytes; version %u has %u",
                 (unsigned long long)length, PCI_HOST_STATE_VERSION, PCI_HOST_STATE_SIZE);
        h->host->log(h->host->host_data, VMM_LOG_ERROR, why);
        return -EINVAL;
    }
    pthread_mutex_lock(&h->lock);
    /* Read-only bits must be these functions': a blob of other devices is refused whole. */
    for (int f = 0; f < FUNCTIONS; f++) {
        for (int i = 0; i < 256; i++) {
            uint8_t saved = config[f * 256 + i], ro = (uint8_t)~h->wmask[f][i];
            if ((saved & ro) != (h->config[f][i] & ro)) {
                pthread_mutex_unlock(&h->lock);
                snprintf(why, sizeof why, "pci-host: configuration byte 0x%02x of 00:%02x.%x is 0x%02x, but its read-only bits (mask 0x%02x) are 0x%02x on this machine",
                         i, devfn[f] >> 3, devfn[f] & 7, saved, ro, h->config[f][i] & ro);
                h->host->log(h->host->host_data, VMM_LOG_ERROR, why);
                return -EINVAL;
            }
        }
    }
    /* BAR 0's address byte is one of the two it ever holds (read-write, so not checked above). */
    if (h->vga && config[VGA * 256 + 0x13] != VGA_FRAMEBUFFER_TOP && config[VGA * 256 + 0x13] != 0xff) {
        pthread_mutex_unlock(&h->lock);
        snprintf(why, sizeof why, "pci-host: BAR 0 of 00:02.0 is at 0x%02x000000; the framebuffer is at 0x%02x000000",
                 config[VGA * 256 + 0x13], VGA_FRAMEBUFFER_TOP);
        h->host->log(h->host->host_data, VMM_LOG_ERROR, why);
        return -EINVAL;
    }
    memcpy(&h->address, bytes, 4);
    memcpy(h->config, config, sizeof h->config);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static const void *pci_host_get_extension(void *instance, const char *id)
{
    pci_host_t *h = (pci_host_t *)instance;

    if (strcmp(id, VMM_PLUGIN_EXT_STATE) != 0)
        return NULL;
    memset(&h->state, 0, sizeof h->state);
    h->state.struct_size = sizeof h->state;
    h->state.version = PCI_HOST_STATE_VERSION;
    h->state.user = h;
    h->state.save = state_save;
    h->state.restore = state_restore;
    return &h->state;
}

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t),
    VMM_PLUGIN_ABI_MAJOR,
    VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.pci-host",
    "1.2.0",
    "PCI configuration mechanism #1 with QEMU's i440FX host bridge (00:00.0), PIIX3 ISA bridge and IDE controller (00:01.0, 00:01.1) and, with vga=std, standard VGA (00:02.0)",
    pci_host_init,
    pci_host_destroy,
    pci_host_get_extension, /* ABI 1.2 state */
};

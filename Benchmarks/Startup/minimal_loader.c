/*
 * The baseline of scripts/bench-startup: a minimal C KVM loader doing what `vmm run`
 * does for a trivial ELF64 guest, and nothing else: open /dev/kvm, a VM with 64 MiB of
 * RAM, the guest's CPUID, every PT_LOAD segment at its physical address, long mode with
 * the first 1 GiB identity-mapped, then KVM_RUN with COM1 output to stdout and
 * isa-debug-exit on port 0xf4 ((v << 1) | 1 as the exit status).
 * Usage: minimal_loader [--irqchip] [--memory-first] [--close] IMAGE
 *   --irqchip: also the in-kernel LAPIC, IOAPIC, PIC and PIT, as `vmm run` creates them.
 *   --memory-first: the RAM memslot before the irqchip, as `vmm run` does: the memslot's
 *     SRCU synchronisation then returns at once instead of waiting a grace period.
 *   --close: unmap the run page and close the vCPU and VM before exiting, as `vmm run`
 *     does, instead of leaving that to the process's exit.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define RAM (64ul << 20)

static void die(const char *what)
{
    perror(what);
    exit(20);
}

static void load(const char *path, uint8_t *ram, uint64_t *entry)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die(path);
    uint8_t *f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f == MAP_FAILED)
        die("mmap image");
    Elf64_Ehdr *eh = (Elf64_Ehdr *)f;
    if ((size_t)st.st_size < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size) {
        fprintf(stderr, "%s: not an ELF64 image\n", path);
        exit(6);
    }
    Elf64_Phdr *ph = (Elf64_Phdr *)(f + eh->e_phoff);
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        if (ph[i].p_paddr + ph[i].p_memsz > RAM || ph[i].p_memsz < ph[i].p_filesz ||
            ph[i].p_offset + ph[i].p_filesz > (uint64_t)st.st_size) {
            fprintf(stderr, "%s: segment %d out of bounds\n", path, i);
            exit(6);
        }
        memcpy(ram + ph[i].p_paddr, f + ph[i].p_offset, ph[i].p_filesz);
    }
    *entry = eh->e_entry;
    munmap(f, (size_t)st.st_size);
    close(fd);
}

static void long_mode(int vcpu, uint8_t *ram, uint64_t entry)
{
    uint64_t *gdt = (uint64_t *)(ram + 0x1000), *pml4 = (uint64_t *)(ram + 0x2000);
    uint64_t *pdpt = (uint64_t *)(ram + 0x3000), *pd = (uint64_t *)(ram + 0x4000);
    gdt[1] = 0x00af9b000000ffff;
    gdt[2] = 0x00cf93000000ffff;
    pml4[0] = 0x3000 | 3;
    pdpt[0] = 0x4000 | 3;
    for (uint64_t i = 0; i < 512; i++)
        pd[i] = (i << 21) | 0x83;
    struct kvm_sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
        die("KVM_GET_SREGS");
    struct kvm_segment code = {.base = 0, .limit = 0xffffffff, .selector = 8, .type = 11, .present = 1,
                               .s = 1, .l = 1, .g = 1};
    struct kvm_segment data = {.base = 0, .limit = 0xffffffff, .selector = 16, .type = 3, .present = 1,
                               .s = 1, .db = 1, .g = 1};
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.tr.base = 0;
    s.tr.limit = 0x67;
    s.tr.type = 11;
    s.tr.present = 1;
    s.gdt.base = 0x1000;
    s.gdt.limit = 23;
    s.cr0 = 0x80050033;
    s.cr3 = 0x2000;
    s.cr4 = 0x20;
    s.efer = 0x500;
    if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0)
        die("KVM_SET_SREGS");
    struct kvm_regs r = {.rip = entry, .rsp = RAM - 0x10, .rflags = 2};
    if (ioctl(vcpu, KVM_SET_REGS, &r) < 0)
        die("KVM_SET_REGS");
}

int main(int argc, char **argv)
{
    int irqchip = 0, memory_first = 0, close_at_end = 0, i = 1;
    for (; i < argc - 1; i++) {
        if (strcmp(argv[i], "--irqchip") == 0)
            irqchip = 1;
        else if (strcmp(argv[i], "--memory-first") == 0)
            memory_first = 1;
        else if (strcmp(argv[i], "--close") == 0)
            close_at_end = 1;
        else
            break;
    }
    if (argc < 2 || i != argc - 1) {
        fprintf(stderr, "usage: %s [--irqchip] [--memory-first] [--close] IMAGE\n", argv[0]);
        return 2;
    }
    const char *image = argv[argc - 1];
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die("KVM_CREATE_VM");
    struct kvm_pit_config pit = {.flags = 0};
    if (irqchip && !memory_first && (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0 || ioctl(vm, KVM_CREATE_PIT2, &pit) < 0))
        die("irqchip");
    uint8_t *ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED)
        die("mmap RAM");
    struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = RAM,
                                                 .userspace_addr = (uint64_t)ram};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die("KVM_SET_USER_MEMORY_REGION");
    if (irqchip && memory_first && (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0 || ioctl(vm, KVM_CREATE_PIT2, &pit) < 0))
        die("irqchip");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die("KVM_CREATE_VCPU");
    struct {
        struct kvm_cpuid2 c;
        struct kvm_cpuid_entry2 e[256];
    } cpuid = {.c.nent = 256};
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0 || ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0)
        die("CPUID");
    int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (size < 0 || run == MAP_FAILED)
        die("kvm_run");
    uint64_t entry;
    load(image, ram, &entry);
    long_mode(vcpu, ram, entry);
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            die("KVM_RUN");
        }
        if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT) {
            uint8_t v = *((uint8_t *)run + run->io.data_offset);
            if (run->io.port == 0x3f8) {
                fputc(v, stdout);
                continue;
            }
            if (run->io.port == 0xf4) {
                fflush(stdout);
                if (close_at_end) {
                    munmap(run, (size_t)size);
                    close(vcpu);
                    close(vm);
                }
                return (v << 1) | 1;
            }
        }
        if (run->exit_reason == KVM_EXIT_HLT)
            return 0;
        fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
        return 18;
    }
}

/* RAM above the MMIO hole, as on QEMU's pc with -m 4G or more: prints the Multiboot
 * info's flags, boot device and boot loader name, mem_lower and mem_upper, its memory map and fw_cfg's RAM size;
 * writes a pattern at 0xc8000000 (RAM only when RAM of 3 to 3.5 GiB stays below the hole,
 * as QEMU's pc keeps it) and reads it back; then enters long mode with the first 1 GiB and the
 * 2 MiB at 4 GiB identity-mapped, writes a pattern
 * to the first and last words of that 2 MiB page and reads them back (an address with no
 * RAM reads 0, as under QEMU). Ends with debug-exit 0x19. */
#include "mb.h"
KERNEL_START
    mov $0x80000, %esp
    mov %ebx, %ebp
    PRINT(s_flags, (%ebp))
    PRINT(s_device, 12(%ebp))
    PUTS(s_loader)
    testl $0x200, (%ebp)            /* flags bit 9: boot loader name */
    jz 3f
    mov 64(%ebp), %esi
    call puts
3:  PUTS(s_nl)
    PRINT(s_lower, 4(%ebp))
    PRINT(s_upper, 8(%ebp))
    PUTS(s_nl)
    testl $0x40, (%ebp)             /* flags bit 6: memory map */
    jz dead
    mov 48(%ebp), %ebx              /* mmap_addr */
    mov 44(%ebp), %edi              /* mmap_length */
    add %ebx, %edi
1:  cmp %edi, %ebx
    jae 2f
    PUTS(s_map)
    mov 8(%ebx), %eax               /* base high, low */
    call puthex
    mov 4(%ebx), %eax
    call puthex
    PUTS(s_len)
    mov 16(%ebx), %eax
    call puthex
    mov 12(%ebx), %eax
    call puthex
    PUTS(s_type)
    mov 20(%ebx), %eax
    add $'0', %al
    mov $0x3f8, %dx
    out %al, %dx
    PUTS(s_nl)
    add (%ebx), %ebx
    add $4, %ebx
    jmp 1b
2:  PUTS(s_fwcfg)
    mov $0x03, %ax                  /* FW_CFG_RAM_SIZE, u64 little-endian */
    mov $0x510, %dx
    out %ax, %dx
    call fw_u32
    mov %eax, %esi
    call fw_u32
    push %esi
    call puthex
    pop %eax
    call puthex
    PUTS(s_nl)
    mov $0xc8000000, %ebx           /* 3 GiB + 128 MiB, paging off */
    movl $0x600dcafe, (%ebx)
    PUTS(s_3g)
    mov (%ebx), %eax
    call puthex
    PUTS(s_nl)

    /* Long mode (kvm_pvm runs 64-bit guests; 32-bit paging is not offered): PML4[0]
     * -> pdpt; PDPT[0] -> pd0 (identity, first 1 GiB), PDPT[4] -> pd1 (entry 0: the
     * 2 MiB page at 4 GiB, identity-mapped). */
    mov $pd0, %edi
    xor %ecx, %ecx
3:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                  /* present, writable, 2 MiB */
    mov %eax, (%edi, %ecx, 8)
    movl $0, 4(%edi, %ecx, 8)
    inc %ecx
    cmp $512, %ecx
    jb 3b
    movl $0x83, pd1
    movl $1, pd1 + 4                /* physical 0x1_0000_0000 */
    movl $pd0 + 3, pdpt
    movl $pd1 + 3, pdpt + 4 * 8
    movl $pdpt + 3, pml4
    lgdt gdtr
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx           /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000000, %eax            /* PG: compatibility mode */
    mov %eax, %cr0
    ljmp $0x08, $long64
    .code64
long64:
    mov $0x100000000, %rbx
    movl $0x600dcafe, (%rbx)
    movl $0x5ca1ab1e, 0x1ffffc(%rbx)
    PUTS(s_high)
    mov (%rbx), %eax
    call puthex                     /* 32-bit helpers run unchanged in 64-bit mode */
    mov $' ', %al
    mov $0x3f8, %dx
    out %al, %dx
    mov 0x1ffffc(%rbx), %eax
    call puthex
    PUTS(s_nl)
    DEBUG_EXIT(0x19)
    .code32
DEAD_END

fw_u32:                             /* four fw_cfg data bytes, little-endian, into EAX */
    mov $0x511, %dx
    mov $4, %ecx
4:  inb %dx, %al
    ror $8, %eax
    loop 4b
    ret

MB_HELPERS

    .section .rodata
s_flags:  .asciz "multiboot flags "
s_device: .asciz ", boot device "
s_loader: .asciz ", loader "
s_map:   .asciz "mmap "
s_len:   .asciz " len "
s_type:  .asciz " type "
s_nl:    .asciz "\n"
s_fwcfg: .asciz "fw_cfg ram "
s_high:  .asciz "at 4 GiB: "
s_3g:    .asciz "at 0xC8000000: "
s_lower: .asciz "mem_lower "
s_upper: .asciz " mem_upper "
    .data
    .align 8
gdt:  .quad 0, 0x00af9a000000ffff   /* 0x08: 64-bit code */
gdtr: .word 15
      .long gdt
    .bss
    .align 4096
pd0:  .skip 4096
pd1:  .skip 4096
pdpt: .skip 4096
pml4: .skip 4096
    .section .note.GNU-stack, "", @progbits

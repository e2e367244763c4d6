/* A PCI bus scan as test kernels written for QEMU do it (configuration mechanism #1):
 * every function of every device on bus 0, vendor id 0xffff meaning absent; each one
 * found is printed as "bb:dd.f vvvv:dddd class cccccc". Then a write of all-ones to
 * the bridge's read-only id dword and of 0x0007 to its command register, read back; the
 * ISA bridge's header type and the IDE function's BAR 4 after a write of all-ones.
 * Ends with debug-exit 0x15. */
#include "mb.h"
KERNEL_START
    mov $0x80000, %esp
    xor %ebx, %ebx                  /* bdf << 8: device in bits 15:11, function 10:8 */
    xor %edi, %edi                  /* functions found */
1:  mov %ebx, %eax
    call cfg_read                   /* dword 0: vendor, device */
    cmp $0xffff, %ax
    je 2f
    inc %edi
    push %eax
    mov %ebx, %eax                  /* "00:dd.f " */
    PUTS(s_bus)
    mov %ebx, %eax
    shr $11, %eax
    and $0x1f, %eax
    call put2
    mov $'.', %al
    call putc
    mov %ebx, %eax
    shr $8, %eax
    and $7, %eax
    add $'0', %al
    call putc
    mov $' ', %al
    call putc
    pop %eax                        /* "vvvv:dddd" */
    push %eax
    call put4
    mov $':', %al
    call putc
    pop %eax
    shr $16, %eax
    call put4
    PUTS(s_class)
    mov %ebx, %eax
    or $0x08, %eax
    call cfg_read                   /* dword 8: class code in bits 31:8 */
    shr $8, %eax
    mov %eax, %ebp
    shr $16, %eax
    call put2
    mov %ebp, %eax
    shr $8, %eax
    call put2
    mov %ebp, %eax
    call put2
    PUTS(s_nl)
2:  add $0x100, %ebx
    cmp $0x10000, %ebx
    jb 1b
    PUTS(s_count)
    mov %edi, %eax
    add $'0', %al
    call putc
    PUTS(s_nl)
    /* Writes: the id dword is read-only; the command register keeps its low 3 bits. */
    mov $0x80000000, %eax
    mov $0xcf8, %dx
    out %eax, %dx
    mov $0xffffffff, %eax
    mov $0xcfc, %dx
    out %eax, %dx
    mov $0x80000004, %eax
    mov $0xcf8, %dx
    out %eax, %dx
    mov $0xffff, %ax
    mov $0xcfc, %dx
    out %ax, %dx
    PUTS(s_ids)
    xor %eax, %eax
    call cfg_read
    call puthex
    PUTS(s_cmd)
    mov $4, %eax
    call cfg_read
    call put4
    PUTS(s_nl)
    /* PIIX3: the ISA bridge's header type (bit 7: more functions follow), then all-ones
     * written to the IDE function's bus-master BAR 4 and read back (0: not there). */
    PUTS(s_isa)
    mov $0x080c, %eax
    call cfg_read
    shr $16, %eax
    call put2
    mov $0x80000920, %eax
    mov $0xcf8, %dx
    out %eax, %dx
    mov $0xffffffff, %eax
    mov $0xcfc, %dx
    out %eax, %dx
    PUTS(s_bar4)
    mov $0x0920, %eax
    call cfg_read
    call puthex
    PUTS(s_nl)
    DEBUG_EXIT(0x15)
DEAD_END

/* cfg_read: dword at config address EAX (bus/dev/fn/offset bits) into EAX. */
cfg_read:
    or $0x80000000, %eax
    mov $0xcf8, %dx
    out %eax, %dx
    mov $0xcfc, %dx
    in %dx, %eax
    ret

putc:
    mov $0x3f8, %dx
    out %al, %dx
    ret

/* put2/put4: the low 8/16 bits of EAX in hex (clobbers ecx, edx). */
put2:
    mov $2, %ecx
    rol $24, %eax
    jmp 5f
put4:
    mov $4, %ecx
    rol $16, %eax
5:  rol $4, %eax
    push %eax
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 6f
    add $('a' - '9' - 1), %al
6:  call putc
    pop %eax
    loop 5b
    ret

MB_HELPERS

    .section .rodata
s_bus:   .asciz "00:"
s_class: .asciz " class "
s_nl:    .asciz "\n"
s_count: .asciz "functions: "
s_ids:   .asciz "after writes: ids "
s_cmd:   .asciz " command "
s_isa:   .asciz "isa header "
s_bar4:  .asciz ", ide bar4 "
    .section .note.GNU-stack, "", @progbits

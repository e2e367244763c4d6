/* What SeaBIOS leaves behind for a kernel QEMU boots: the PICs' masks (0xb8 and 0x8e:
 * IRQ 0, 1, 2, 6, 8, 12, 13, 14 unmasked), port 0x92 with A20 on (0x02), the PIT's channel 0 status by the read-back
 * command (0x34: mode 2, low then high byte, binary), and its IRQ 0 ticking on the BIOS's
 * vector 0x08 without the kernel programming the PIT or remapping the PICs. Masks every
 * line but IRQ 0, takes three ticks in `sti; hlt`, prints what it read and ends with
 * debug-exit 0x1d. */
#include "mb.h"
KERNEL_ENTRY
    IDT_GATE(0x08, tick)
    lidt idtr
    PUTS(s_imr)
    in $0x21, %al
    call puthex2
    PUTS(s_sp)
    in $0xa1, %al
    call puthex2
    PUTS(s_port92)
    in $0x92, %al
    call puthex2
    mov $0xe2, %al                  /* read-back: channel 0's status, not its count */
    out %al, $0x43
    in $0x40, %al
    and $0x3f, %al                  /* without the output and null-count bits */
    mov %al, status
    PUTS(s_pit)
    movzbl status, %eax
    call puthex2
    mov $0xfe, %al                  /* IRQ 0 alone */
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1
1:  sti
    hlt
    cmpl $3, ticks
    jb 1b
    cli
    PUTS(s_ticks)
    DEBUG_EXIT(0x1d)
DEAD_END

tick:
    incl ticks
    push %eax
    mov $0x20, %al                  /* EOI */
    out %al, $0x20
    pop %eax
    IRET_CLI

MB_HELPERS

    .section .rodata
s_imr:   .asciz "pic masks "
s_sp:    .asciz " "
s_port92: .asciz ", port 92 "
s_pit:   .asciz ", pit status "
s_ticks: .asciz ", 3 ticks of IRQ 0 on vector 0x08\n"
    .data
    .align 8
IDTR
ticks: .long 0
status: .byte 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits

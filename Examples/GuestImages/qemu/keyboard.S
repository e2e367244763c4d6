/* A keyboard driver as a QEMU test kernel writes one: it trusts the controller as SeaBIOS
 * left it (configuration 0x61: keyboard interrupt, translation to scan code set 1) and
 * takes IRQ 1 through the IOAPIC (vector 0x51, the PICs masked). Prints the configuration
 * byte, then "ready", then each byte it reads from port 0x60 in hex, until Esc is let go
 * (set 1: 0x81); then a newline and debug-exit 0x1d. With the command line ending in
 * "set2" it first writes configuration 0x21 (translation off) and reads raw set 2, where
 * Esc let go is 0xf0 0x76; with "set3" it also switches the keyboard to scan code set 3
 * (0xf0 0x03), asks which set it sends (0xf0 0x00), printing the replies after the
 * configuration byte, and reads raw set 3, where Esc let go is 0xf0 0x08. With "pic" it
 * takes IRQ 1 as OSDev's tutorials do instead:
 * the 8259 PICs remapped to vectors 0x20-0x2f, all but IRQ 1 masked, EOI to port 0x20
 * (the local APIC's LINT0 passes the PIC's interrupts, as SeaBIOS leaves it). Interrupts
 * are taken in `sti; hlt` only, one byte each, and the handler returns with them off
 * (IRET_CLI in mb.h). */
#include "mb.h"
KERNEL_ENTRY
    mov %ebx, %esi
    call cmdline_end
    test %esi, %esi
    jz 1f
    cmpl $0x63697020, -4(%esi)      /* " pic" */
    jne 3f
    movb $1, pic
    jmp 1f
3:  movb $1, raw
    cmpl $0x32746573, -4(%esi)      /* "set2" */
    je 4f
    movb $2, raw
    cmpl $0x33746573, -4(%esi)      /* "set3" */
    je 4f
    movb $0, raw
    jmp 1f
4:  mov $0x60, %al                  /* write the configuration: keyboard IRQ, no mouse, no translation */
    out %al, $0x64
    mov $0x21, %al
    out %al, $0x60
1:  mov $0x20, %al                  /* read the configuration */
    out %al, $0x64
    WAIT_KEY
    movzbl %al, %eax
    push %eax
    PUTS(s_config)
    pop %eax
    call puthex2
    cmpb $2, raw
    jne 5f
    mov $set3cmds, %edi             /* polled: the IRQ is not routed yet */
4:  movb (%edi), %al
    out %al, $0x60
    inc %edi
3:  in $0x64, %al                   /* print each reply as the keyboard gives it */
    test $1, %al
    jz 2f
    mov $' ', %al
    mov $0x3f8, %dx
    out %al, %dx
    in $0x60, %al
    call puthex2
    jmp 3b
2:  cmp $set3cmds + 4, %edi
    jne 4b
5:  cmpb $0, pic
    je 6f
    mov $0x11, %al                  /* ICW1 to both PICs: edge, cascade, ICW4 */
    out %al, $0x20
    out %al, $0xa0
    mov $0x20, %al                  /* ICW2: the master at 0x20, the slave at 0x28 */
    out %al, $0x21
    mov $0x28, %al
    out %al, $0xa1
    mov $0x04, %al                  /* ICW3: the slave on IRQ 2 */
    out %al, $0x21
    mov $0x02, %al
    out %al, $0xa1
    mov $0x01, %al                  /* ICW4: 8086 mode */
    out %al, $0x21
    out %al, $0xa1
    mov $0xfd, %al                  /* only IRQ 1 */
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1
    IDT_GATE(0x21, kbd_irq)
    jmp 7f
6:  IDT_GATE(0x51, kbd_irq)
    IOAPIC_ROUTE(1, 0x51)
7:  lidt idtr
    PUTS(s_ready)
next:
    sti
    hlt
    cmpb $0, got
    je next
    movb $0, got
    movzbl kbyte, %eax
    call puthex2
    mov $' ', %al
    mov $0x3f8, %dx
    out %al, %dx
    movzbl kbyte, %eax
    mov prev, %bl
    mov %al, prev
    cmpb $0, raw
    jne 3f
    cmp $0x81, %al                  /* set 1: Esc let go */
    je done
    jmp next
3:  mov $0x76, %cl                  /* set 2: 0xf0 0x76; set 3: 0xf0 0x08 */
    cmpb $1, raw
    je 4f
    mov $0x08, %cl
4:  cmp %cl, %al
    jne next
    cmp $0xf0, %bl
    jne next
done:
    PUTS(s_nl)
    DEBUG_EXIT(0x1d)
DEAD_END

kbd_irq:
    push %eax
    in $0x60, %al
    mov %al, kbyte
    movb $1, got
    cmpb $0, pic
    je 8f
    mov $0x20, %al                  /* EOI to the master PIC */
    out %al, $0x20
    jmp 9f
8:  movl $0, LAPIC + 0xb0           /* EOI to the local APIC */
9:  pop %eax
    IRET_CLI

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_config: .asciz "keyboard: configuration "
s_ready:  .asciz ", ready\n"
s_nl:     .asciz "\n"
set3cmds: .byte 0xf0, 0x03, 0xf0, 0x00
    .data
    .align 8
IDTR
got:  .byte 0
kbyte: .byte 0
prev: .byte 0
raw:  .byte 0
pic:  .byte 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits

/* Guest payloads for the 16550A UART. Loaded at 0x10000; scratch RAM at 0x20000;
 * exit code on port 0xf4 (debug-exit). The ring-3 payloads (native speed) reach the
 * UART through two helpers, so one payload drives a PIO or an MMIO UART:
 *   r12 = base (port or guest-physical address), r13 = register shift (MMIO),
 *   r14 = 0 for PIO, 1 for MMIO. */
#include "guest_asm.h"

    .code64

/* Register access and console helpers, instantiated inside each payload (a payload is
 * copied alone, so it cannot call into another). Clobber rcx, rdx (and rsi for puts). */
.macro UART_LIB p
/* eax = register ecx */
\p\()_in:
    test %r14, %r14
    jnz 1f
    lea (%r12, %rcx), %rdx
    xor %eax, %eax
    in %dx, %al
    ret
1:  mov %rcx, %rdx
    mov %r13d, %ecx
    shl %cl, %rdx
    add %r12, %rdx
    movzbl (%rdx), %eax
    ret
/* register ecx = al */
\p\()_out:
    test %r14, %r14
    jnz 1f
    lea (%r12, %rcx), %rdx
    out %al, %dx
    ret
1:  mov %rcx, %rdx
    mov %r13d, %ecx
    shl %cl, %rdx
    add %r12, %rdx
    mov %al, (%rdx)
    ret
/* sends al once THR is empty (LSR.THRE) */
\p\()_putc:
    push %rax
1:  mov $5, %ecx
    call \p\()_in
    test $0x20, %al
    jz 1b
    pop %rax
    xor %ecx, %ecx
    jmp \p\()_out
/* sends the NUL-terminated string at rsi */
\p\()_puts:
1:  lodsb
    test %al, %al
    jz 2f
    call \p\()_putc
    jmp 1b
2:  ret
/* sends al as two hex digits */
\p\()_puthex:
    push %rax
    shr $4, %al
    call \p\()_nibble
    pop %rax
\p\()_nibble:
    and $0xf, %al
    cmp $10, %al
    jb 1f
    add $('a' - '0' - 10), %al
1:  add $'0', %al
    jmp \p\()_putc
.endm

/* Inline string output: SAY p, "text" */
.macro SAY p, text
    lea 8f(%rip), %rsi
    call \p\()_puts
    jmp 9f
8:  .asciz "\text"
9:
.endm

#define IN(p, reg) mov $(reg), %ecx; call p##_in
#define OUT(p, reg, val) mov $(val), %al; mov $(reg), %ecx; call p##_out
#define SAVE(i) mov %al, 0x20000 + (i)
#define HEX(p, i) mov 0x20000 + (i), %al; call p##_puthex
#define EXIT_AL mov $0xf4, %dx; out %al, %dx; 7: jmp 7b

/* Probes the UART the way Linux's 8250 autoconfig does, stores what it read at
 * 0x20000..0x2000f, then reports it through the UART and exits with code 0. */
BEGIN(uart_probe)
    OUT(pr, 1, 0x00)                 /* IER test */
    IN(pr, 1); SAVE(0)
    OUT(pr, 1, 0x0f)
    IN(pr, 1); SAVE(1)
    OUT(pr, 1, 0x00)
    OUT(pr, 4, 0x1a)                 /* loopback test: LOOP|OUT2|RTS -> MSR 0x90 */
    IN(pr, 6); and $0xf0, %al; SAVE(2)
    OUT(pr, 4, 0x00)
    OUT(pr, 7, 0xa5)                 /* scratch register */
    IN(pr, 7); SAVE(3)
    OUT(pr, 7, 0x5a)
    IN(pr, 7); SAVE(4)
    OUT(pr, 2, 0x01)                 /* FIFO enable: IIR bits 7:6 */
    IN(pr, 2); SAVE(5)
    OUT(pr, 2, 0x00)
    IN(pr, 2); SAVE(6)
    OUT(pr, 3, 0x80)                 /* divisor latch */
    OUT(pr, 0, 0x0c)
    OUT(pr, 1, 0x34)
    IN(pr, 0); SAVE(7)
    IN(pr, 1); SAVE(8)
    OUT(pr, 3, 0x03)
    OUT(pr, 2, 0x07)                 /* FIFO size, like size_fifo(): 33 bytes in loopback */
    OUT(pr, 4, 0x10)
    mov $33, %ebx
1:  OUT(pr, 0, 0x55)
    dec %ebx
    jnz 1b
    IN(pr, 5); SAVE(9)
    xor %ebx, %ebx
2:  IN(pr, 5)
    test $1, %al
    jz 3f
    IN(pr, 0)
    inc %ebx
    jmp 2b
3:  mov %bl, %al; SAVE(10)
    OUT(pr, 1, 0x02)                 /* THRE interrupt: pending, then cleared by the read */
    IN(pr, 2); SAVE(11)
    IN(pr, 2); SAVE(12)
    OUT(pr, 1, 0x00)
    OUT(pr, 2, 0xc7)                 /* receive interrupts: trigger 14, one byte: timeout */
    OUT(pr, 1, 0x01)
    OUT(pr, 0, 0x41)
    IN(pr, 2); SAVE(13)
    OUT(pr, 2, 0x01)                 /* trigger 1: data available */
    IN(pr, 2); SAVE(14)
    IN(pr, 0)
    IN(pr, 2); SAVE(15)
    OUT(pr, 1, 0x00)
    OUT(pr, 4, 0x0b)                 /* normal operation: DTR|RTS|OUT2, FIFOs on */
    OUT(pr, 2, 0x07)
    SAY pr, "16550A probe: ier="
    HEX(pr, 0); SAY pr, "/"; HEX(pr, 1)
    SAY pr, " loopback-msr="; HEX(pr, 2)
    SAY pr, " scr="; HEX(pr, 3); SAY pr, "/"; HEX(pr, 4)
    SAY pr, " iir-fifo="; HEX(pr, 5)
    SAY pr, " iir-nofifo="; HEX(pr, 6)
    SAY pr, " dl="; HEX(pr, 7); SAY pr, "/"; HEX(pr, 8)
    SAY pr, " lsr-overrun="; HEX(pr, 9)
    SAY pr, " fifo-size="; HEX(pr, 10)
    SAY pr, " iir-thri="; HEX(pr, 11); SAY pr, "/"; HEX(pr, 12)
    SAY pr, " iir-rx="; HEX(pr, 13); SAY pr, "/"; HEX(pr, 14); SAY pr, "/"; HEX(pr, 15)
    SAY pr, "\nHello from a guest that probed its 16550A!\n"
    xor %eax, %eax
    EXIT_AL
    UART_LIB pr
END(uart_probe)

/* Reads a line (polled), echoing as typed, then prints it back; exit code = length.
 * r15 bit 8 set: MCR is never written (a guest that polls LSR.DR with MCR as reset). */
BEGIN(uart_echo)
    OUT(ec, 3, 0x03)
    OUT(ec, 2, 0x07)
    bt $8, %r15
    jc 7f
    OUT(ec, 4, 0x0b)
7:
    SAY ec, "type a line: "
    mov $0x20100, %rdi
1:  IN(ec, 5)
    test $1, %al
    jz 1b
    IN(ec, 0)
    cmp $'\r', %al
    je 2f
    cmp $'\n', %al
    je 2f
    mov %al, (%rdi)
    inc %rdi
    call ec_putc
    jmp 1b
2:  movb $0, (%rdi)
    SAY ec, "\nyou typed: "
    mov $0x20100, %rsi
    call ec_puts
    SAY ec, "\n"
    mov %rdi, %rax
    sub $0x20100, %rax
    EXIT_AL
    UART_LIB ec
END(uart_echo)

/* Two UARTs: r12/r13/r14 describe the first, r8 (base) / r9 (shift) an MMIO second.
 * Alternates lines between them, then exits with code 0. */
BEGIN(uart_two)
    SAY tw, "first UART, line 1\n"
    xchg %r12, %r8; xchg %r13, %r9; xor $1, %r14
    SAY tw, "second UART, line 1\n"
    xchg %r12, %r8; xchg %r13, %r9; xor $1, %r14
    SAY tw, "first UART, line 2\n"
    xchg %r12, %r8; xchg %r13, %r9; xor $1, %r14
    SAY tw, "second UART, line 2\n"
    xor %eax, %eax
    EXIT_AL
    UART_LIB tw
END(uart_two)

/* Bulk output: r15 bytes, byte i = i*13 + i/256 (low 8 bits), checking LSR.THRE once
 * per 16 bytes (the FIFO depth), as Linux's serial8250_tx_chars does. Exit code 0. */
BEGIN(uart_bulk)
    xor %r10, %r10
1:  cmp %r15, %r10
    jae 9f
    test $15, %r10
    jnz 3f
2:  IN(bu, 5)
    test $0x20, %al
    jz 2b
3:  imul $13, %r10, %rax
    mov %r10, %r11
    shr $8, %r11
    add %r11, %rax
    xor %ecx, %ecx
    call bu_out
    inc %r10
    jmp 1b
9:  xor %eax, %eax
    EXIT_AL
    UART_LIB bu
END(uart_bulk)

/* 64-bit interrupt gate `vector` -> `handler` in the IDT at 0xb000, then lidt. */
/* Gate `vector` -> `handler`, then the IDT loaded (guest_asm.h). */
#define SET_GATE(vector, handler) IDT_GATE(vector, handler); LOAD_IDT

/* Ring 0, in-kernel irqchip, COM1 at 0x3f8 on IRQ 4 (vector 0x24). Interrupt-driven
 * receive: the handler drains the FIFO into 0x20100 (length at 0x20000), records each
 * IIR it read at 0x20010+ (count at 0x20008), counts handlers that found the FIFO empty
 * at 0x2000c and flags a newline at 0x20004. The main
 * loop sleeps in sti;hlt. Says "ready" on port 0x10 first; at the end prints the line
 * (polled) and exits with the number of interrupts taken. Kept short: ring 0 is
 * emulated on this host. */
BEGIN(uart_irq_echo)
    SET_GATE(0x24, 9f)
    mov $0x11, %al; out %al, $0x20; out %al, $0xa0
    mov $0x20, %al; out %al, $0x21; mov $0x28, %al; out %al, $0xa1
    mov $4, %al; out %al, $0x21; mov $2, %al; out %al, $0xa1
    mov $1, %al; out %al, $0x21; out %al, $0xa1
    mov $0xef, %al; out %al, $0x21; mov $0xff, %al; out %al, $0xa1
    movl $0, 0x20000
    movl $0, 0x20004
    movl $0, 0x20008
    movl $0, 0x2000c
    mov $0x3fb, %dx; mov $0x03, %al; out %al, %dx   /* LCR 8N1 */
    mov $0x3fa, %dx; mov $0x07, %al; out %al, %dx   /* FIFOs on, trigger 1 */
    mov $0x0b, %al                                  /* MCR DTR|RTS|OUT2; r15: its low */
    test %r15, %r15                                 /* byte instead, or bit 8: MCR */
    jz 7f                                           /* never written */
    mov %r15b, %al
    bt $8, %r15
    jc 8f
7:  mov $0x3fc, %dx; out %al, %dx
8:  mov $0x3f9, %dx; mov $0x01, %al; out %al, %dx   /* IER: received data */
    mov $0x10, %dx; out %al, %dx
1:  sti
    hlt
    cli
    cmpl $0, 0x20004
    je 1b
    mov $0x20100, %rsi
    mov 0x20000, %ecx
2:  mov $0x3fd, %dx
3:  in %dx, %al
    test $0x20, %al
    jz 3b
    lodsb
    mov $0x3f8, %dx
    out %al, %dx
    loop 2b
    mov 0x20008, %eax
    mov $0xf4, %dx
    out %al, %dx
4:  jmp 4b
9:  push %rax
    push %rdx
    push %rbx
    mov $0x3fa, %dx
    in %dx, %al
    mov 0x20008, %ebx
    mov %al, 0x20010(%rbx)
    incl 0x20008
5:  mov $0x3fd, %dx
    in %dx, %al
    test $1, %al
    jz 6f
    mov $0x3f8, %dx
    in %dx, %al
    mov 0x20000, %ebx
    mov %al, 0x20100(%rbx)
    incl 0x20000
    cmp $10, %al
    jne 5b
    movl $1, 0x20004
    jmp 5b
    /* Drained: a byte the host sends from now on is a new edge, a new interrupt. */
6:  incl 0x2000c
    mov $0x20, %al
    out %al, $0x20
    pop %rbx
    pop %rdx
    pop %rax
    iretq
END(uart_irq_echo)

    .section .note.GNU-stack, "", @progbits

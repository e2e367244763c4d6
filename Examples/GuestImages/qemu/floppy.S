/* The floppy controller probed as a driver (Linux's floppy.c, a BIOS) probes it, written
 * for QEMU's `pc` machine, whose controller at 0x3f0 has drive A with no diskette and no
 * drive B. Prints, a line each: the MSR, DOR, TDR, SRB and DIR as found; after a reset
 * through the DOR, on IRQ 6 (through the I/O APIC, vector 0x56), the four SENSE INTERRUPT
 * STATUS answers (ST0 and track); VERSION's byte; DUMPREG's ten after SPECIFY; RECALIBRATE
 * and SEEK to track 10 of drive A, each on IRQ 6, with the sense and, after the seek,
 * SENSE DRIVE STATUS; READ DATA of track 0, sector 1 on IRQ 6 with its seven result
 * bytes; drive B's SENSE DRIVE STATUS; an invalid command's byte and SENSE INTERRUPT
 * STATUS's with no interrupt. Then debug-exit 0x23. With "pause" on the command line it
 * says so after DUMPREG's fourth byte and waits for a byte from the keyboard before it
 * reads the rest (a result in flight for a snapshot). A controller that asks for no
 * command byte (MSR not 0x80 when one is due) prints its MSR and ends with 0x24. */
#include "mb.h"
KERNEL_ENTRY
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x65737561, pause)     /* "ause" of "pause" */
    IDT_GATE(0x56, fd_irq)
    IOAPIC_ROUTE(6, 0x56)
    lidt idtr

    PUTS(s_regs)
    mov $0x3f4, %dx
    call print_port
    PUTS(s_dor)
    mov $0x3f2, %dx
    call print_port
    PUTS(s_tdr)
    mov $0x3f3, %dx
    call print_port
    PUTS(s_srb)
    mov $0x3f1, %dx
    call print_port
    PUTS(s_dir)
    mov $0x3f7, %dx
    call print_port
    PUTS(s_nl)

    mov $0x08, %al                  /* reset held, DMA on; then released */
    mov $0x3f2, %dx
    out %al, %dx
    mov $0x0c, %al
    out %al, %dx
    call wait_irq
    PUTS(s_reset)
    mov $4, %ebx
1:  mov $0x08, %al                  /* SENSE INTERRUPT STATUS */
    call send
    call print_result
    dec %ebx
    jnz 1b
    PUTS(s_nl)

    PUTS(s_version)
    mov $0x10, %al
    call send
    call print_result
    PUTS(s_nl)

    mov $0x03, %al                  /* SPECIFY: step rate 0xa, unload 0xf, load 1, DMA */
    call send
    mov $0xaf, %al
    call send
    mov $0x02, %al
    call send
    mov $0x0e, %al                  /* DUMPREG, its 10 bytes into buf */
    call send
    mov $buf, %edi
    mov $4, %ecx
    call read_bytes
    cmpb $0, pause
    je 2f
    PUTS(s_waiting)
    WAIT_KEY
2:  mov $6, %ecx
    call read_bytes
    PUTS(s_dumpreg)
    mov $buf, %esi
4:  cmp %edi, %esi
    je 5f
    call print_byte
    jmp 4b
5:  PUTS(s_nl)

    PUTS(s_recal)
    mov $0x07, %al                  /* RECALIBRATE drive 0 */
    call send
    xor %al, %al
    call send
    call wait_irq
    call sense
    PUTS(s_nl)

    PUTS(s_seek)
    mov $0x0f, %al                  /* SEEK drive 0, head 0, to track 10 */
    call send
    xor %al, %al
    call send
    mov $10, %al
    call send
    call wait_irq
    call sense
    PUTS(s_status)
    mov $0x04, %al                  /* SENSE DRIVE STATUS, drive 0 */
    call send
    xor %al, %al
    call send
    call print_result
    PUTS(s_nl)

    PUTS(s_read)
    mov $read_cmd, %esi             /* READ DATA: MT, MFM, SK; drive 0, C 0 H 0 R 1, 512 bytes */
    mov $9, %ecx
6:  lodsb
    push %esi
    push %ecx
    call send
    pop %ecx
    pop %esi
    loop 6b
    call wait_irq
    PUTS(s_result)
    call print_result
    PUTS(s_nl)

    PUTS(s_driveb)
    mov $0x04, %al                  /* SENSE DRIVE STATUS, drive 1 */
    call send
    mov $0x01, %al
    call send
    call print_result
    PUTS(s_nl)

    PUTS(s_invalid)
    xor %al, %al                    /* no such command */
    call send
    call print_result
    PUTS(s_sensei)
    mov $0x08, %al
    call send
    call print_result
    PUTS(s_nl)
    DEBUG_EXIT(0x23)
DEAD_END

MB_WAIT_IRQ

/* IRQ 6: `got` set. */
fd_irq:
    movb $1, got
    movl $0, LAPIC + 0xb0           /* EOI */
    IRET_CLI

/* SENSE INTERRUPT STATUS, its bytes printed. */
sense:
    PUTS(s_irq)
    mov $0x08, %al
    call send
    jmp print_result

/* AL to the FIFO once the MSR asks for a command byte (RQM, not DIO); clobbers edx. */
send:
    push %eax
    mov $0x3f4, %dx
1:  in %dx, %al
    and $0xc0, %al
    cmp $0x80, %al
    je 2f
    test $0x80, %al
    jz 1b                           /* not ready yet */
    PUTS(s_failed)                  /* DIO: the controller has bytes for the guest */
    mov $0x3f4, %dx
    call print_port
    PUTS(s_nl)
    DEBUG_EXIT(0x24)
    jmp dead
2:  pop %eax
    mov $0x3f5, %dx
    out %al, %dx
    ret

/* The result bytes, each " XX", while the MSR says one is there (RQM and DIO). */
print_result:
1:  mov $0x3f4, %dx
    in %dx, %al
    and $0xc0, %al
    cmp $0xc0, %al
    jne 2f
    PUTS(s_space)
    mov $0x3f5, %dx
    call print_port
    jmp 1b
2:  ret

/* ECX result bytes into EDI on. */
read_bytes:
    mov $0x3f5, %dx
1:  in %dx, %al
    stosb
    loop 1b
    ret

/* " XX" of the byte at ESI, ESI on. */
print_byte:
    push %esi
    PUTS(s_space)
    pop %esi
    lodsb
    push %esi
    movzbl %al, %eax
    call puthex2
    pop %esi
    ret

MB_PRINT_PORT

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
read_cmd: .byte 0xe6, 0x00, 0x00, 0x00, 0x01, 0x02, 0x12, 0x1b, 0xff
s_regs:    .asciz "registers: msr "
s_dor:     .asciz " dor "
s_tdr:     .asciz " tdr "
s_srb:     .asciz " srb "
s_dir:     .asciz " dir "
s_reset:   .asciz "reset: irq 6, sense"
s_version: .asciz "version"
s_waiting: .asciz "dumpreg, waiting for a key\n"
s_dumpreg: .asciz "dumpreg"
s_recal:   .asciz "recalibrate:"
s_seek:    .asciz "seek:"
s_irq:     .asciz " irq 6, sense"
s_status:  .asciz ", status"
s_read:    .asciz "read:"
s_result:  .asciz " irq 6, result"
s_driveb:  .asciz "drive b: status"
s_invalid: .asciz "invalid:"
s_sensei:  .asciz ", sense"
s_failed:  .asciz "failed: msr "
s_space:   .asciz " "
s_nl:      .asciz "\n"
    .data
    .align 8
IDTR
got:   .byte 0
pause: .byte 0
    .bss
    .align 8
idt: .skip 256 * 8
buf: .skip 16
    .section .note.GNU-stack, "", @progbits

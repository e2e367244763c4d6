/* The secondary IDE channel probed as a BIOS and Linux's libata probe it, written for
 * QEMU's `pc` machine, whose secondary master is an empty ATAPI CD-ROM drive: ports
 * 0x170-0x177 and 0x376. Prints, a line each: the status, error and signature (count,
 * LBA low, mid, high) after a software reset (SRST); IDENTIFY DEVICE's status and error
 * and the LBA mid and high it leaves (a packet device aborts it with its signature);
 * IDENTIFY PACKET DEVICE's model, serial and firmware; TEST UNIT READY (a PACKET
 * command) with the interrupt reason the drive asks the packet with, then, on IRQ 15
 * through the IOAPIC (vector 0x5f), the status the handler read, the error and the
 * reason; REQUEST SENSE's reason and byte count, its response code, sense key and
 * additional sense code, and the status and reason at its end; INQUIRY's peripheral
 * type, removable bit, vendor and product. Then debug-exit 0x21. Polled with nIEN set
 * but for TEST UNIT READY. A status of 0 or 0xff after selecting the master before the
 * reset means no device (QEMU's channel without a drive reads 0): it says so and ends
 * with debug-exit 0x22. */
#include "mb.h"
KERNEL_ENTRY
    mov $0xa0, %al                  /* the master */
    mov $0x176, %dx
    out %al, %dx
    inc %dx
    in %dx, %al
    test %al, %al
    jz no_drive
    cmp $0xff, %al
    je no_drive
    mov $0x06, %al                  /* SRST, nIEN */
    mov $0x376, %dx
    out %al, %dx
    mov $0x02, %al
    out %al, %dx
    PUTS(s_reset)
    mov $0x177, %dx
    call print_port
    PUTS(s_error)
    mov $0x171, %dx
    call print_port
    PUTS(s_sig)
    mov $0x172, %dx
1:  push %edx
    call print_port
    PUTS(s_space)
    pop %edx
    inc %dx
    cmp $0x176, %dx
    jb 1b
    PUTS(s_nl)

    mov $0xec, %al                  /* IDENTIFY DEVICE: aborted, the signature */
    call command
    PUTS(s_idev)
    mov $0x177, %dx
    call print_port
    PUTS(s_error)
    mov $0x171, %dx
    call print_port
    PUTS(s_sig)
    mov $0x174, %dx
    call print_port
    PUTS(s_space)
    mov $0x175, %dx
    call print_port
    PUTS(s_nl)

    mov $0xa1, %al                  /* IDENTIFY PACKET DEVICE */
    call command
    call wait_drq
    mov $buf, %edi
    mov $256, %ecx
    mov $0x170, %dx
    rep insw
    PUTS(s_ipkt)
    mov $buf + 54, %esi             /* model: words 27-46 */
    mov $20, %ecx
    call put_words
    PUTS(s_bar)
    mov $buf + 20, %esi             /* serial: words 10-19 */
    mov $10, %ecx
    call put_words
    PUTS(s_bar)
    mov $buf + 46, %esi             /* firmware: words 23-26 */
    mov $4, %ecx
    call put_words
    PUTS(s_nl)

    IDT_GATE(0x5f, cd_irq)          /* TEST UNIT READY on IRQ 15 */
    IOAPIC_ROUTE(15, 0x5f)
    lidt idtr
    xor %al, %al
    mov $0x376, %dx
    out %al, %dx
    movb $0x00, cdb                 /* TEST UNIT READY */
    call packet
    PUTS(s_tur)
    movzbl reason, %eax
    call puthex2
2:  sti
    hlt
    cmpb $0, got
    je 2b
    PUTS(s_irq)
    movzbl irq_status, %eax
    call puthex2
    PUTS(s_error)
    mov $0x171, %dx
    call print_port
    PUTS(s_reason)
    mov $0x172, %dx
    call print_port
    PUTS(s_nl)
    mov $0x02, %al                  /* polled again */
    mov $0x376, %dx
    out %al, %dx

    movb $0x03, cdb                 /* REQUEST SENSE, 18 bytes */
    movb $18, cdb + 4
    call packet
    call wait_drq
    PUTS(s_sense)
    mov $0x172, %dx
    call print_port
    PUTS(s_bytes)
    mov $0x175, %dx
    call print_port
    mov $0x174, %dx
    call print_port
    mov $buf, %edi
    mov $9, %ecx
    mov $0x170, %dx
    rep insw
    PUTS(s_code)
    movzbl buf, %eax
    call puthex2
    PUTS(s_key)
    movzbl buf + 2, %eax
    call puthex2
    PUTS(s_asc)
    movzbl buf + 12, %eax
    call puthex2
    call wait_idle
    PUTS(s_then)
    mov $0x177, %dx
    call print_port
    PUTS(s_reason)
    mov $0x172, %dx
    call print_port
    PUTS(s_nl)

    movb $0x12, cdb                 /* INQUIRY, 36 bytes */
    movb $36, cdb + 4
    call packet
    call wait_drq
    mov $buf, %edi
    mov $18, %ecx
    mov $0x170, %dx
    rep insw
    call wait_idle
    PUTS(s_inq)
    movzbl buf, %eax
    call puthex2
    PUTS(s_rmb)
    movzbl buf + 1, %eax
    call puthex2
    PUTS(s_space)
    movb $0, buf + 32
    PUTS(buf + 8)
    PUTS(s_nl)
    DEBUG_EXIT(0x21)
no_drive:
    PUTS(s_none)
    mov $0x177, %dx
    call print_port
    PUTS(s_nl)
    DEBUG_EXIT(0x22)

/* PACKET with a byte count limit of 2048 and the 12 bytes at cdb, the interrupt reason
 * the drive asked them with in `reason`; the cdb is cleared after. */
packet:
    xor %al, %al
    mov $0x171, %dx                 /* features: PIO, no overlap */
    out %al, %dx
    mov $0x174, %dx
    out %al, %dx
    mov $0x08, %al
    inc %dx
    out %al, %dx
    mov $0xa0, %al
    call command
    call wait_drq
    mov $0x172, %dx
    in %dx, %al
    mov %al, reason
    mov $cdb, %esi
    mov $6, %ecx
    mov $0x170, %dx
    rep outsw
    movl $0, cdb
    movl $0, cdb + 4
    movl $0, cdb + 8
    ret

/* IRQ 15: the status read acknowledges it; `got` set. */
cd_irq:
    push %eax
    push %edx
    mov $0x177, %dx
    in %dx, %al
    mov %al, irq_status
    movb $1, got
    movl $0, LAPIC + 0xb0           /* EOI */
    pop %edx
    pop %eax
    IRET_CLI

/* AL: a command to port 0x177. */
command:
    mov $0x177, %dx
    out %al, %dx
    ret

/* Until DRQ (the alternate status); stops the vCPU on an error. */
wait_drq:
    mov $0x376, %dx
1:  in %dx, %al
    test $0x80, %al
    jnz 1b
    test $0x01, %al
    jnz failed
    test $0x08, %al
    jz 1b
    ret

/* Until neither BSY nor DRQ is set. */
wait_idle:
    mov $0x376, %dx
1:  in %dx, %al
    test $0x88, %al
    jnz 1b
    ret

MB_PRINT_PORT

/* ECX ATA string words at ESI, each word's first character in its high byte. */
put_words:
    mov $0x3f8, %dx
1:  lodsw
    xchg %al, %ah
    out %al, %dx
    mov %ah, %al
    out %al, %dx
    loop 1b
    ret

failed:
    PUTS(s_failed)
    mov $0x177, %dx
    call print_port
    PUTS(s_nl)
DEAD_END

MB_HELPERS

    .section .rodata
s_reset:  .asciz "reset: status "
s_error:  .asciz " error "
s_sig:    .asciz " signature "
s_idev:   .asciz "identify device: status "
s_ipkt:   .asciz "identify packet: "
s_bar:    .asciz "|"
s_tur:    .asciz "test unit ready: packet reason "
s_irq:    .asciz " irq 15: status "
s_reason: .asciz " reason "
s_sense:  .asciz "request sense: reason "
s_bytes:  .asciz " bytes "
s_code:   .asciz " code "
s_key:    .asciz " key "
s_asc:    .asciz " asc "
s_then:   .asciz " then status "
s_inq:    .asciz "inquiry: type "
s_rmb:    .asciz " removable "
s_space:  .asciz " "
s_failed: .asciz "failed: status "
s_none:   .asciz "no drive: status "
s_nl:     .asciz "\n"
    .data
    .align 8
IDTR
got:  .byte 0
irq_status: .byte 0
reason: .byte 0
    .align 4
cdb: .skip 12
    .bss
    .align 8
idt: .skip 256 * 8
buf: .skip 512
    .section .note.GNU-stack, "", @progbits

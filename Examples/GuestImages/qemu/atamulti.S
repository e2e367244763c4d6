/* READ/WRITE MULTIPLE as an interrupt-driven driver written for QEMU's IDE disk drives
 * them (`vmm run --hda`): the primary master, ports 0x1f0-0x1f7 and 0x3f6, every command
 * waited for on IRQ 14 through the IOAPIC (vector 0x5e), whose handler reads the status.
 * Prints, a line each: IDENTIFY's words 47 (the largest block) and 59 (the block size
 * set); the status and error of SET MULTIPLE MODE 3 (not a power of two), then of 4, and
 * word 59 again; READ MULTIPLE of 6 sectors from 1 in blocks of 4: for each block the
 * status its interrupt read, then the text at the start of each sector; the task file
 * after it; WRITE MULTIPLE of 5 sectors from 8 ("multiple write 0" to "4"): the status
 * each block's interrupt read; the 5 read back by READ MULTIPLE EXT; the last sector READ
 * NATIVE MAX ADDRESS EXT names; with the size set to 0, READ MULTIPLE's status and error.
 * Then debug-exit 0x24. With the command line ending in "pause" the first block stops
 * after a sector and a half, says so, and waits for a byte from the keyboard before it
 * reads the rest (a block in flight for a snapshot). The disk's sectors are expected to
 * begin with NUL-terminated text. */
#include "mb.h"
KERNEL_ENTRY
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x65737561, pause) /* "ause" */
    IDT_GATE(0x5e, ata_irq)
    IOAPIC_ROUTE(14, 0x5e)
    lidt idtr
    xor %al, %al                    /* interrupts on (nIEN clear) */
    mov $0x3f6, %dx
    out %al, %dx
    mov $0xa0, %al                  /* the master */
    mov $0x1f6, %dx
    out %al, %dx

    call identify
    PUTS(s_identify)
    mov buf + 94, %ax               /* word 47 */
    call puthex4
    PUTS(s_set)
    mov buf + 118, %ax              /* word 59 */
    call puthex4
    PUTS(s_nl)
    mov $3, %al                     /* SET MULTIPLE MODE 3: refused */
    call set_multiple
    mov $4, %al
    call set_multiple
    call identify
    PUTS(s_identify2)
    mov buf + 118, %ax
    call puthex4
    PUTS(s_nl)

    mov $1, %ecx                    /* READ MULTIPLE: 6 from sector 1 */
    mov $6, %edi
    mov $0xc4, %al
    call lba_command
    mov $6, %ebx
    call read_blocks
    call print_after                /* the task file names the next sector, count 0 */

    xor %ebx, %ebx                  /* 5 sectors of text from buf */
1:  mov %ebx, %edi
    shl $9, %edi
    add $buf, %edi
    mov $s_mwrite, %esi
    mov $17, %ecx
    rep movsb
    lea 0x30(%ebx), %eax            /* '0' + n */
    mov %al, -2(%edi)               /* the digit before the NUL */
    inc %ebx
    cmp $5, %ebx
    jb 1b
    mov $8, %ecx                    /* WRITE MULTIPLE: 5 at sector 8 */
    mov $5, %edi
    mov $0xc5, %al
    call lba_command
    call wait_drq                   /* the first block is asked for without an interrupt */
    jc failed
    mov $buf, %esi
    mov $4 * 256, %ecx
    mov $0x1f0, %dx
    rep outsw
    push %esi
    call wait_irq
    PUTS(s_wblock)
    call print_irq_status
    pop %esi
    mov $256, %ecx                  /* the second block: the last sector */
    mov $0x1f0, %dx
    rep outsw
    call wait_irq
    PUTS(s_wblock)
    call print_irq_status

    mov $8, %ecx                    /* READ MULTIPLE EXT: the 5 back */
    mov $5, %edi
    mov $0x29, %al
    call lba48_command
    mov $5, %ebx
    call read_blocks

    mov $0x1f6, %dx                 /* READ NATIVE MAX ADDRESS EXT */
    mov $0x40, %al
    out %al, %dx
    mov $0x27, %al
    call command
    call wait_irq
    PUTS(s_max)
    mov $0x1f5, %dx
    call print_port
    mov $0x1f4, %dx
    call print_port
    mov $0x1f3, %dx
    call print_port
    PUTS(s_nl)

    xor %al, %al                    /* no block size: READ MULTIPLE aborts */
    call set_multiple
    mov $1, %ecx
    mov $1, %edi
    mov $0xc4, %al
    call lba_command
    call wait_irq
    PUTS(s_none)
    call print_irq_status
    DEBUG_EXIT(0x24)

MB_WAIT_IRQ

/* IDENTIFY DEVICE into buf. */
identify:
    mov $0xec, %al
    call command
    call wait_irq
    mov $buf, %edi
    mov $256, %ecx
    mov $0x1f0, %dx
    rep insw
    ret

/* SET MULTIPLE MODE to AL sectors; prints its status and error. */
set_multiple:
    push %eax
    mov $0x1f2, %dx
    out %al, %dx
    mov $0xc6, %al
    call command
    call wait_irq
    PUTS(s_setmult)
    pop %eax
    call puthex2
    PUTS(s_status)
    call print_irq_status
    ret

/* The status the interrupt read, the error register, a newline. */
print_irq_status:
    movzbl irq_status, %eax
    call puthex2
    PUTS(s_error)
    mov $0x1f1, %dx
    call print_port
    PUTS(s_nl)
    ret

/* EBX sectors of a READ MULTIPLE in blocks of 4, each on its interrupt: the status, then
 * each sector's text. */
read_blocks:
    call wait_irq
    PUTS(s_block)
    movzbl irq_status, %eax
    call puthex2
    PUTS(s_nl)
    mov %ebx, %ecx                  /* this block: 4 sectors, or what is left */
    cmp $4, %ecx
    jbe 1f
    mov $4, %ecx
1:  sub %ecx, %ebx
    push %ecx
    shl $8, %ecx
    mov $buf, %edi
    mov $0x1f0, %dx
    cmpb $0, pause
    je 2f
    movb $0, pause                  /* a sector and a half, then a key on the i8042 */
    sub $384, %ecx
    push %ecx
    mov $384, %ecx
    rep insw
    PUTS(s_reading)
    WAIT_KEY
    pop %ecx
    mov $0x1f0, %dx
2:  rep insw
    pop %ecx
    mov $buf, %esi
4:  push %ecx
    push %esi
    call puts
    PUTS(s_nl)
    pop %esi
    pop %ecx
    add $512, %esi
    loop 4b
    test %ebx, %ebx
    jnz read_blocks
    ret

/* AX as 4 hex digits. */
puthex4:
    push %eax
    mov %ah, %al
    call puthex2
    pop %eax
    jmp puthex2

#include "ata_io.inc"
MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_identify:  .asciz "identify: multiple "
s_set:       .asciz " set "
s_identify2: .asciz "identify: set "
s_setmult:   .asciz "set multiple "
s_status:    .asciz ": status "
s_error:     .asciz " error "
s_block:     .asciz "block: status "
s_reading:   .asciz "reading, waiting for a key\n"
s_wblock:    .asciz "written: status "
s_max:       .asciz "native max: "
s_none:      .asciz "no size: status "
s_failed:    .asciz "failed: status "
s_nl:        .asciz "\n"
s_mwrite:    .asciz "multiple write ?"
    .data
    .align 8
IDTR
got:  .byte 0
pause: .byte 0
irq_status: .byte 0
    .bss
    .align 8
idt: .skip 256 * 8
buf: .skip 5 * 512
    .section .note.GNU-stack, "", @progbits

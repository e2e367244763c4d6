/* A packet command in flight on QEMU's empty CD-ROM drive (the secondary IDE master,
 * ports 0x170-0x177 and 0x376, polled with nIEN set), for a snapshot taken half-way
 * through its reply. First state a snapshot must keep besides the transfer: PREVENT
 * ALLOW MEDIUM REMOVAL locks the tray and TEST UNIT READY leaves NOT READY / MEDIUM
 * NOT PRESENT as the sense; a line each with the status and error they end with. Then
 * INQUIRY's device identification page (EVPD 0x83, 100 bytes: the serial, then "ATA",
 * the model and the serial) with a byte count limit of 16, so the reply comes in
 * seven DRQ blocks: a line per block with the interrupt reason, its size (LBA high and
 * mid) and its bytes in hex; then the status and reason at the end and the page's text
 * (bytes 8-27 and 32-99). With the command line ending in "pause" it reads four bytes
 * of the fourth block, says so and waits for a byte from the keyboard before it reads
 * the rest (a transfer in flight for a snapshot). After: REQUEST SENSE's key and
 * additional sense code and MODE SENSE's capabilities page byte 6 (the lock, bit 1),
 * kept from before. Then debug-exit 0x21. A drive that stops asking for data before
 * the reply's end (neither BSY nor DRQ), or reports an error there, prints its status
 * and ends with debug-exit 0x23; no drive (status 0 or 0xff) ends with 0x22. */
#include "mb.h"
#define BLOCKS 7
#define PAUSE_BLOCK 4
KERNEL_ENTRY
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x65737561, pause)     /* "ause" of "pause" */
    mov $0xa0, %al                  /* the master */
    mov $0x176, %dx
    out %al, %dx
    inc %dx
    in %dx, %al
    test %al, %al
    jz no_drive
    cmp $0xff, %al
    je no_drive
    mov $0x02, %al                  /* nIEN: polled */
    mov $0x376, %dx
    out %al, %dx

    movb $0x1e, cdb                 /* PREVENT ALLOW MEDIUM REMOVAL: prevent */
    movb $1, cdb + 4
    call packet
    PUTS(s_lock)
    call print_end
    movb $0x00, cdb                 /* TEST UNIT READY: NOT READY, the sense kept */
    call packet
    PUTS(s_tur)
    call print_end

    movb $0x12, cdb                 /* INQUIRY, EVPD page 0x83, 100 bytes */
    movb $1, cdb + 1
    movb $0x83, cdb + 2
    movb $100, cdb + 4
    movb $16, limit
    call packet
    mov $buf, %edi
    xor %ebx, %ebx                  /* the block */
1:  inc %ebx
    call wait_drq
    mov $0x172, %dx                 /* the reason and the block's size, printed after it */
    in %dx, %al
    mov %al, reason
    mov $0x174, %dx
    in %dx, %al
    mov %al, size
    inc %dx
    in %dx, %al
    mov %al, size + 1
    movzwl size, %esi               /* 4 bytes, then the rest */
    push %esi
    mov $2, %ecx
    mov $0x170, %dx
    rep insw
    cmp $PAUSE_BLOCK, %ebx
    jne 2f
    cmpb $0, pause
    je 2f
    PUTS(s_waiting)
    WAIT_KEY
2:  pop %esi
    lea -4(%esi), %ecx
    shr $1, %ecx
    mov $0x170, %dx
    rep insw
    push %esi                       /* the block's line (edi kept) */
    PUTS(s_block)
    movzbl reason, %eax
    call puthex2
    PUTS(s_bytes)
    movzbl size + 1, %eax
    call puthex2
    movzbl size, %eax
    call puthex2
    pop %esi
    mov %edi, %eax
    sub %esi, %eax
    mov %eax, %esi
    mov $s_bar, %eax
    call hexdump
    cmp $BLOCKS, %ebx
    jb 1b
    PUTS(s_inq)
    call print_end
    PUTS(s_text)
    mov $buf + 8, %esi
    mov $20, %ecx
    call put_bytes
    PUTS(s_bar)
    mov $buf + 32, %esi
    mov $68, %ecx
    call put_bytes
    PUTS(s_nl)

    movb $0x03, cdb                 /* REQUEST SENSE, 18 bytes */
    movb $18, cdb + 4
    call packet
    call read_all
    PUTS(s_sense)
    movzbl buf + 2, %eax
    call puthex2
    PUTS(s_asc)
    movzbl buf + 12, %eax
    call puthex2
    PUTS(s_nl)
    movb $0x5a, cdb                 /* MODE SENSE(10), the capabilities page, 30 bytes */
    movb $0x2a, cdb + 2
    movb $30, cdb + 8
    call packet
    call read_all
    PUTS(s_caps)
    movzbl buf + 14, %eax
    call puthex2
    PUTS(s_nl)
    DEBUG_EXIT(0x21)
no_drive:
    PUTS(s_none)
    mov $0x177, %dx
    call print_port
    PUTS(s_nl)
    DEBUG_EXIT(0x22)

/* PACKET with the byte count limit at `limit` (2048 when 0) and the 12 bytes at cdb;
 * the cdb and limit are cleared after. */
packet:
    xor %al, %al
    mov $0x171, %dx                 /* features: PIO, no overlap */
    out %al, %dx
    mov $0x174, %dx
    mov limit, %al
    out %al, %dx
    inc %dx
    mov $0x08, %al
    cmpb $0, limit
    je 1f
    xor %al, %al
1:  out %al, %dx
    mov $0xa0, %al
    mov $0x177, %dx
    out %al, %dx
    call wait_drq
    mov $cdb, %esi
    mov $6, %ecx
    mov $0x170, %dx
    rep outsw
    movl $0, cdb
    movl $0, cdb + 4
    movl $0, cdb + 8
    movb $0, limit
    ret

/* A reply of one block (below the limit of 2048) into buf, then its end. */
read_all:
    call wait_drq
    mov $0x174, %dx
    in %dx, %al
    movzbl %al, %ecx
    shr $1, %ecx
    mov $buf, %edi
    mov $0x170, %dx
    rep insw
    ret

/* Until DRQ; a drive that is neither busy nor asking for data, or reports an error,
 * is a failure. */
wait_drq:
    mov $0x376, %dx
1:  in %dx, %al
    test $0x80, %al
    jnz 1b
    test $0x01, %al
    jnz failed
    test $0x08, %al
    jz failed
    ret

/* " status XX error XX reason XX\n" at a command's end (the status read last: it is
 * what acknowledges). */
print_end:
    PUTS(s_error)
    mov $0x171, %dx
    call print_port
    PUTS(s_reason)
    mov $0x172, %dx
    call print_port
    PUTS(s_status)
    mov $0x177, %dx
    call print_port
    PUTS(s_nl)
    ret

/* The string at EAX, then the bytes from ESI to EDI in hex, then a newline. */
hexdump:
    push %esi
    mov %eax, %esi
    call puts
    pop %esi
1:  cmp %edi, %esi
    jae 2f
    push %esi
    movzbl (%esi), %eax
    call puthex2
    pop %esi
    inc %esi
    jmp 1b
2:  PUTS(s_nl)
    ret

MB_PRINT_PORT

/* ECX bytes at ESI to COM1. */
put_bytes:
    mov $0x3f8, %dx
1:  lodsb
    out %al, %dx
    loop 1b
    ret

failed:
    PUTS(s_failed)
    mov $0x376, %dx
    call print_port
    PUTS(s_nl)
    DEBUG_EXIT(0x23)
DEAD_END

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_lock:    .asciz "lock:"
s_tur:     .asciz "test unit ready:"
s_block:   .asciz "block: reason "
s_bytes:   .asciz " bytes "
s_bar:     .asciz " | "
s_waiting: .asciz "reading, waiting for a key\n"
s_inq:     .asciz "inquiry:"
s_text:    .asciz "text: "
s_sense:   .asciz "request sense: key "
s_asc:     .asciz " asc "
s_caps:    .asciz "capabilities: byte 6 "
s_error:   .asciz " error "
s_reason:  .asciz " reason "
s_status:  .asciz " status "
s_failed:  .asciz "failed: status "
s_none:    .asciz "no drive: status "
s_nl:      .asciz "\n"
    .data
pause: .byte 0
limit: .byte 0
reason: .byte 0
    .align 2
size: .word 0
    .align 4
cdb: .skip 12
    .bss
buf: .skip 512
    .section .note.GNU-stack, "", @progbits

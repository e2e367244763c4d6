/* fw_cfg as firmware and kernels written for QEMU use it (docs/specs/fw_cfg.rst): the
 * interfaces (FW_CFG_ID), the DMA register's signature, the file directory read by DMA
 * (each file's selector, size and name), then the file "opt/vmmkit/greeting" (given
 * with --fw-cfg): selected and skipped into by one DMA transfer and read on by another,
 * read through the data port and then on by DMA (one offset for both), read past its
 * end (zeros), written (refused: error bit), read into memory outside RAM or across
 * RAM's end (error bit), and a descriptor outside RAM (nothing to report; the guest goes
 * on). Debug-exit 0x25 at the end; 0x26 when the greeting is not in the directory. With
 * the command line ending in "wait" it waits for a key (i8042) after reading "hello"
 * through the data port, so a snapshot can be taken half-way through the file. */
#include "mb.h"
#define DESC 0x7000                 /* the FWCfgDmaAccess, 16 bytes */
#define SCRATCH 0x7100
#define SIG 0x7200                  /* the signature and a NUL */
#define GSEL 0x7300                 /* the greeting's selector and size */
#define GSIZE 0x7304
#define COUNT 0x7308
#define RESULT 0x730c
#define WAIT 0x7310
#define TEXT 0x7400
#define DIR 0x8000                  /* the directory's entries, 64 bytes each */
#define OUTSIDE 0x40000000          /* past the 128 MiB of RAM the tests give (the default) */
#define CTL_ERROR 0x01
#define CTL_READ 0x02
#define CTL_SKIP 0x04
#define CTL_SELECT 0x08
#define CTL_WRITE 0x10
/* DMA(control, length, address): one transfer; EAX = the control word after it. */
#define DMA(control, length, address) mov control, %eax; mov length, %ecx; mov address, %edi; call dma
/* GREETING(op): EAX = the control word selecting the greeting for `op`. */
#define GREETING(op) mov GSEL, %eax; shl $16, %eax; or $(CTL_SELECT | (op)), %eax
/* REPORT(op, length, address, label): that transfer on the greeting, then the label and
 * the control word it left. */
#define REPORT(op, length, address, label) \
    GREETING(op); DMA(%eax, length, address); mov %eax, RESULT; PRINT(label, RESULT)
KERNEL_ENTRY
    cld
    movb $0, WAIT
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x74696177, WAIT)  /* "wait" */
    /* FW_CFG_ID through the traditional interface: bit 0 it, bit 1 DMA. */
    mov $0x01, %ax
    mov $0x510, %dx
    out %ax, %dx
    mov $SCRATCH, %edi
    mov $4, %ecx
    mov $0x511, %dx
    rep insb
    PRINT(s_id, SCRATCH)
    /* The DMA register reads "QEMU CFG", big-endian: in port order. */
    mov $0x514, %dx
    in %dx, %eax
    mov %eax, SIG
    mov $0x518, %dx
    in %dx, %eax
    mov %eax, SIG + 4
    movb $0, SIG + 8
    PUTS(s_sig)
    PUTS(SIG)
    PUTS(s_nl)
    /* The directory's count (big-endian) by DMA, then its entries, on from offset 4. */
    DMA($(0x19 << 16 | CTL_SELECT | CTL_READ), $4, $SCRATCH)
    mov %eax, RESULT
    mov SCRATCH, %eax
    bswap %eax
    mov %eax, COUNT
    PRINT(s_count, COUNT)
    PRINT(s_control, RESULT)
    PUTS(s_nl)
    mov COUNT, %ecx
    shl $6, %ecx
    DMA($CTL_READ, %ecx, $DIR)
    movl $0, GSIZE
    mov $DIR, %ebx
    mov COUNT, %ebp
1:  test %ebp, %ebp
    jz 3f
    PUTS(s_file)
    movzwl 4(%ebx), %eax
    xchg %al, %ah
    call puthex
    PUTS(s_space)
    mov (%ebx), %eax
    bswap %eax
    call puthex
    PUTS(s_space)
    lea 8(%ebx), %esi
    call puts
    PUTS(s_nl)
    lea 8(%ebx), %esi
    mov $s_greeting, %edi
    mov $(s_greeting_end - s_greeting), %ecx
    repe cmpsb
    jne 2f
    movzwl 4(%ebx), %eax
    xchg %al, %ah
    mov %eax, GSEL
    mov (%ebx), %eax
    bswap %eax
    mov %eax, GSIZE
2:  add $64, %ebx
    dec %ebp
    jmp 1b
3:  cmpl $0, GSIZE
    je missing
    /* Select and skip 7 bytes in one transfer (no memory touched), then read the rest. */
    GREETING(CTL_SKIP)
    DMA(%eax, $7, $0)
    mov GSIZE, %ecx
    sub $7, %ecx
    mov %ecx, SCRATCH
    DMA($CTL_READ, %ecx, $TEXT)
    mov SCRATCH, %ecx
    movb $0, TEXT(%ecx)
    PUTS(s_skipped)
    PUTS(TEXT)
    PUTS(s_nl)
    /* Five bytes through the data port, then six more by DMA from where they stopped. */
    mov GSEL, %ax
    mov $0x510, %dx
    out %ax, %dx
    mov $TEXT, %edi
    mov $5, %ecx
    mov $0x511, %dx
    rep insb
    cmpb $0, WAIT
    je 4f
    PUTS(s_waiting)
    WAIT_KEY
4:  DMA($CTL_READ, $6, $(TEXT + 5))
    movb $0, TEXT + 11
    PUTS(s_mixed)
    PUTS(TEXT)
    PUTS(s_nl)
    /* Eight bytes past the end read as zeros; the byte after the transfer is untouched. */
    mov $TEXT, %edi
    mov $0xff, %al
    mov $64, %ecx
    rep stosb
    GREETING(CTL_READ)
    mov GSIZE, %ecx
    add $8, %ecx
    DMA(%eax, %ecx, $TEXT)
    mov GSIZE, %ebx
    xor %eax, %eax
    cmpl $0, TEXT(%ebx)
    jne 6f
    cmpl $0, TEXT + 4(%ebx)
    jne 6f
    cmpb $0xff, TEXT + 8(%ebx)
    jne 6f
    inc %eax
6:  mov %eax, RESULT
    PRINT(s_zeros, RESULT)
    /* A write is refused; so is a buffer outside RAM or across its end. */
    REPORT(CTL_WRITE, $4, $TEXT, s_write)
    REPORT(CTL_READ, $4, $OUTSIDE, s_outside)
    REPORT(CTL_READ, $4, $(0x8000000 - 2), s_across)
    /* A descriptor outside RAM: the device has nowhere to answer. */
    xor %eax, %eax
    mov $0x514, %dx
    out %eax, %dx
    mov $OUTSIDE, %eax
    bswap %eax
    mov $0x518, %dx
    out %eax, %dx
    PUTS(s_done)
    DEBUG_EXIT(0x25)
missing:
    PUTS(s_missing)
    DEBUG_EXIT(0x26)
dead:
    hlt
    jmp dead

/* dma: the transfer EAX (control), ECX (length), EDI (address) describe, its
 * descriptor at DESC and its address written high half first; returns the control word
 * the device wrote back in EAX (clobbers ecx, edx). */
dma:
    bswap %eax
    mov %eax, DESC
    bswap %ecx
    mov %ecx, DESC + 4
    movl $0, DESC + 8
    bswap %edi
    mov %edi, DESC + 12
    bswap %edi
    xor %eax, %eax
    mov $0x514, %dx
    out %eax, %dx
    mov $DESC, %eax
    bswap %eax
    mov $0x518, %dx
    out %eax, %dx
    mov DESC, %eax
    bswap %eax
    ret

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_id: .asciz "fw_cfg: interfaces "
s_sig: .asciz "\nfw_cfg: DMA signature "
s_nl: .asciz "\n"
s_space: .asciz " "
s_count: .asciz "fw_cfg: files by DMA "
s_control: .asciz ", control after "
s_file: .asciz "fw_cfg: file "
s_greeting: .asciz "opt/vmmkit/greeting"
s_greeting_end:
s_skipped: .asciz "fw_cfg: after skipping 7 bytes: "
s_waiting: .asciz "fw_cfg: waiting for a key\n"
s_mixed: .asciz "fw_cfg: 5 bytes by port, 6 by DMA: "
s_zeros: .asciz "fw_cfg: past the end zeros, the next byte untouched "
s_write: .asciz "\nfw_cfg: a write's control "
s_outside: .asciz "\nfw_cfg: a buffer outside RAM, control "
s_across: .asciz "\nfw_cfg: a buffer across RAM's end, control "
s_done: .asciz "\nfw_cfg: a descriptor outside RAM answers nothing; done\n"
s_missing: .asciz "\nfw_cfg: no opt/vmmkit/greeting\n"
    .section .note.GNU-stack, "", @progbits

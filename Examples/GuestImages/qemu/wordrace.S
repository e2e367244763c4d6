/* Two vCPUs, word accesses to byte-register devices: each `outw`/`inw` is one access
 * (QEMU holds its big lock for the whole exit), so another vCPU's access never lands
 * between its index byte and its data byte. The AP is started by INIT/SIPI. The command
 * line's last word picks the test:
 *   "cmos": each round both vCPUs write their own 32 CMOS bytes with `outw (value << 8 |
 *           index), $0x70` (the BSP 0x40-0x5f, the AP 0x60-0x7f), meet, and the BSP reads
 *           all 64 back; prints how many were not what their writer wrote.
 *   "crtc": CR0C = 0x11 and CR0E = 0x22; the AP writes index 0x0c and 0x0e to 0x3d4 in a
 *           loop while the BSP reads 0x3d4 as a word, which must be 0x110c or 0x220e;
 *           prints how many were neither.
 * Debug-exit 0x2b. */
#include "mb.h"
#define GDT_SAVE 0x7f00
#define AP_UP 0x7f10
#define ROUNDS 300
KERNEL_ENTRY
    cld
    mov %ebx, %esi
    call cmdline_end
    test %esi, %esi
    jz dead
    mov -4(%esi), %eax
    mov $bsp_cmos, %ebx
    mov $ap_cmos, %edx
    cmp $0x736f6d63, %eax           /* "cmos" */
    je 1f
    mov $bsp_crtc, %ebx
    mov $ap_crtc, %edx
    cmp $0x63747263, %eax           /* "crtc" */
    jne dead
1:  mov %ebx, bsp_task
    mov %edx, ap_task
    /* The AP starts in real mode at 0x8000 and loads this GDT to reach ap32. */
    sgdt GDT_SAVE
    mov %ds, %ax
    movw %ax, GDT_SAVE + 8
    movl $0, AP_UP
    mov $ap_start, %esi
    mov $0x8000, %edi
    mov $(ap_end - ap_start), %ecx
    rep movsb
    mov $LAPIC, %ebx
    movl $0x1ff, 0xf0(%ebx)         /* APIC on */
    movl $0x000c4500, 0x300(%ebx)   /* INIT to all but self */
2:  movl $0x000c4608, 0x300(%ebx)   /* SIPI, vector 8: 0x8000; resent until the AP is up */
    mov $20000, %ecx
3:  pause
    cmpl $0, AP_UP
    jne 4f
    loop 3b
    jmp 2b
4:  jmp *bsp_task
DEAD_END

ap32:
    movw GDT_SAVE + 8, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x70000, %esp
    lock incl AP_UP
    jmp *ap_task

bsp_cmos:
    movl $1, round
1:  mov round, %eax
    mov %eax, go
    mov round, %ah                  /* the BSP's value: round * 2 + (index >= 0x60) */
    shl $1, %ah
    mov $0x40, %al
2:  outw %ax, $0x70
    inc %al
    cmp $0x60, %al
    jb 2b
3:  mov round, %eax                 /* wait for the AP's round */
    cmp ap_done, %eax
    jne 3b
    mov round, %bl
    shl $1, %bl
    mov $0x40, %cl
4:  mov %cl, %al
    out %al, $0x70
    in $0x71, %al
    cmp %bl, %al
    je 5f
    incl errs
5:  inc %cl
    cmp $0x60, %cl
    jne 6f
    inc %bl                         /* the AP's bytes are one more */
6:  cmp $0x80, %cl
    jb 4b
    incl round
    cmpl $ROUNDS, round
    jbe 1b
    jmp report
ap_cmos:
1:  mov expect, %eax
    inc %eax
2:  cmp go, %eax
    jne 2b
    mov %eax, expect
    mov %al, %ah
    shl $1, %ah
    inc %ah
    mov $0x60, %al
3:  outw %ax, $0x70
    inc %al
    cmp $0x80, %al
    jb 3b
    mov expect, %eax
    mov %eax, ap_done
    jmp 1b

bsp_crtc:
    mov $0x3d4, %dx
    mov $0x110c, %ax
    outw %ax, %dx
    mov $0x220e, %ax
    outw %ax, %dx
    movl $1, go
    mov $200000, %ecx
1:  inw %dx, %ax
    cmp $0x110c, %ax
    je 2f
    cmp $0x220e, %ax
    je 2f
    incl errs
2:  loop 1b
    jmp report
ap_crtc:
1:  cmpl $0, go
    je 1b
    mov $0x3d4, %dx
2:  mov $0x0c, %al
    out %al, %dx
    mov $0x0e, %al
    out %al, %dx
    jmp 2b

report:
    PRINT(s_errs, errs)
    PUTS(s_nl)
    DEBUG_EXIT(0x2b)

MB_HELPERS
MB_CMDLINE_END
    .section .rodata
s_errs: .asciz "torn: "
s_nl:   .asciz "\n"
    .code16
ap_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lgdtl GDT_SAVE
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    .byte 0x66, 0xea                /* ljmpl $0x08, $ap32 */
    .long ap32
    .word 0x08
ap_end:
    .code32
    .data
    .align 8
ap_task: .long 0
bsp_task: .long 0
go: .long 0
round: .long 0
ap_done: .long 0
expect: .long 0
errs: .long 0
    .section .note.GNU-stack, "", @progbits

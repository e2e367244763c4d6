/* Stop as a whole: the BSP starts every AP (INIT/SIPI through its LAPIC), waits until
 * all have checked in (they then wait in `sti; hlt`), prints a line and executes ud2
 * with no IDT: a triple fault on vCPU 0 that must stop the whole machine at once. */
#include "mb.h"
#define COUNTER 0x7000
KERNEL_START
    movl $0, COUNTER
    mov $ap_start, %esi
    mov $0x8000, %edi
    mov $(ap_end - ap_start), %ecx
    rep movsb
    FWCFG_CPUS
    dec %eax
    mov %eax, %ebp
    mov $LAPIC, %ebx
    movl $0x1ff, 0xf0(%ebx)
    movl $0x000c4500, 0x300(%ebx)   /* INIT */
    movl $0x000c4608, 0x300(%ebx)   /* SIPI vector 8 */
    movl $0x000c4608, 0x300(%ebx)
1:  pause
    cmp COUNTER, %ebp
    ja 1b
    mov $0x80000, %esp
    PUTS(s_up)
    ud2

MB_HELPERS

    .section .rodata
s_up: .asciz "all APs up; vCPU 0 faults\n"
    .code16
ap_start:
    xor %ax, %ax
    mov %ax, %ds
    lock incw COUNTER
3:  sti
    hlt
    jmp 3b
ap_end:
    .section .note.GNU-stack, "", @progbits

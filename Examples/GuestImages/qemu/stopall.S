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
    /* SIPI again until the APs are in: a SIPI that reaches an AP before it has taken
     * the INIT is dropped with the INIT's reset (an AP thread the host started late,
     * under load: the BSP then waited for ever). A started AP ignores a SIPI. */
10: movl $0x000c4608, 0x300(%ebx)
    mov $20000, %ecx
11: pause
    cmp COUNTER, %ebp
    jbe 12f
    loop 11b
    jmp 10b
12:
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

/* An SMP Multiboot kernel: the bootstrap processor reads the CPU count from fw_cfg,
 * starts the application processors with INIT/SIPI through its local APIC (the
 * in-kernel irqchip), waits until each has checked in, prints the count and ends
 * with debug-exit code 0x20. APs enter the real-mode trampoline at 0x8000 (SIPI
 * vector 8; the BSP copies it there), increment the counter at 0x7000 and halt. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003
#define LAPIC 0xfee00000
#define COUNTER 0x7000
    .code32
    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .section .text
    .globl _start
_start:
    movl $0, COUNTER
    mov $ap_start, %esi             /* copy the AP trampoline below 1 MiB */
    mov $0x8000, %edi
    mov $(ap_end - ap_start), %ecx
    rep movsb
    mov $0x05, %ax                  /* FW_CFG_NB_CPUS */
    mov $0x510, %dx
    out %ax, %dx
    mov $0x511, %dx
    xor %eax, %eax
    inb %dx, %al
    dec %eax
    mov %eax, %ebp                  /* APs expected */
    mov $LAPIC, %ebx
    movl $0x1ff, 0xf0(%ebx)         /* spurious vector register: APIC enabled */
    movl $0x000c4500, 0x300(%ebx)   /* INIT to all excluding self */
    movl $0x000c4608, 0x300(%ebx)   /* SIPI, vector 8: start at 0x8000 */
    movl $0x000c4608, 0x300(%ebx)   /* second SIPI, as the MP spec asks */
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
    mov $0x3f8, %dx
    mov $'s', %al
    out %al, %dx
    mov $'m', %al
    out %al, %dx
    mov $'p', %al
    out %al, %dx
    mov $':', %al
    out %al, %dx
    mov $' ', %al
    out %al, %dx
    mov COUNTER, %eax
    inc %eax                        /* count the BSP too */
    add $'0', %al
    out %al, %dx
    mov $'\n', %al
    out %al, %dx
    mov $0x20, %al
    mov $0xf4, %dx
    out %al, %dx
2:  hlt
    jmp 2b

    /* Position-independent 16-bit code, copied to 0x8000 by the BSP. */
    .section .rodata
    .code16
ap_start:
    xor %ax, %ax
    mov %ax, %ds
    lock incw COUNTER
3:  cli
    hlt
    jmp 3b
ap_end:
    .section .note.GNU-stack, "", @progbits

/* The 2-vCPU guest of the snapshot tests (Multiboot, in-kernel irqchip): the BSP starts
 * the APs as smp.S does; the first AP then serves a sequence: for each request the BSP
 * posts (0x7008 = 1) it advances a 32-bit LCG in its registers, adds the value to its
 * own sum at 0x7010 and answers (0x700c = value, 0x7008 = 2). The BSP prints each of
 * LINES values as 8 hex digits, waits 2^32 TSC cycles after the first half (a pause
 * after that many lines lands mid-run, both vCPUs live), then prints the AP's sum and
 * ends with debug-exit 0x20 (status 65). The output is independent of timing. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003
#define LAPIC 0xfee00000
#define COUNTER 0x7000
#define FLAG 0x7008
#define VALUE 0x700c
#define APSUM 0x7010
#define LINES 128
    .code32
    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .section .text
    .globl _start
_start:
    mov $0x80000, %esp              /* Multiboot leaves ESP undefined */
    movl $0, COUNTER
    movl $0, FLAG
    movl $0, APSUM
    mov $ap_start, %esi             /* the AP trampoline below 1 MiB */
    mov $0x8000, %edi
    mov $(ap_end - ap_start), %ecx
    rep movsb
    mov $LAPIC, %ebx
    movl $0x1ff, 0xf0(%ebx)         /* spurious vector register: APIC enabled */
    movl $0x000c4500, 0x300(%ebx)   /* INIT to all excluding self */
    movl $0x000c4608, 0x300(%ebx)   /* SIPI, vector 8: start at 0x8000 */
    movl $0x000c4608, 0x300(%ebx)
    /* SIPI again until the APs are in: a SIPI that reaches an AP before it has taken
     * the INIT is dropped with the INIT's reset (an AP thread the host started late,
     * under load: the BSP then waited for ever). A started AP ignores a SIPI. */
10: movl $0x000c4608, 0x300(%ebx)
    mov $20000, %ecx
11: pause
    cmpl $0, COUNTER                /* at least one AP checked in */
    jne 12f
    loop 11b
    jmp 10b
12:
    xor %edi, %edi                  /* line number */
2:  movl $1, FLAG                   /* request the next value */
3:  pause
    cmpl $2, FLAG
    jne 3b
    mov VALUE, %eax
    call puthex
    mov $'\n', %al
    out %al, %dx
    inc %edi
    cmp $(LINES / 2), %edi
    jne 5f
    rdtsc                           /* the pause half-way: 2^32 TSC cycles */
    mov %edx, %esi
    mov %eax, %ebp
4:  rdtsc
    sub %ebp, %eax
    sbb %esi, %edx                  /* edx:eax = elapsed (unsigned) */
    jz 4b
5:  cmp $LINES, %edi
    jb 2b
    mov $s_sum, %esi
6:  lodsb
    test %al, %al
    jz 7f
    out %al, %dx
    jmp 6b
7:  mov APSUM, %eax
    call puthex
    mov $'\n', %al
    out %al, %dx
    mov $0x20, %al
    mov $0xf4, %dx
    out %al, %dx
8:  cli
    hlt
    jmp 8b

puthex:                             /* EAX as 8 hex digits; leaves DX = 0x3f8 */
    mov %eax, %ebx
    mov $0x3f8, %dx
    mov $8, %ecx
1:  rol $4, %ebx
    mov %bl, %al
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 2f
    add $39, %al
2:  out %al, %dx
    loop 1b
    ret

    .section .rodata
s_sum: .asciz "smp: the AP's sum "
    /* Position-independent 16-bit code, copied to 0x8000 by the BSP. */
    .code16
ap_start:
    xor %ax, %ax
    mov %ax, %ds
    mov $1, %ax                     /* only the first AP serves: the count before its */
    lock xaddw %ax, COUNTER         /* own increment, read in the same locked access (a */
    test %ax, %ax                   /* second read let two APs both see 2: none served) */
    jnz 3f
    mov $1, %esi                    /* the LCG's state */
1:  pause
    cmpl $1, FLAG
    jne 1b
    imul $1103515245, %esi, %esi
    add $12345, %esi
    addl %esi, APSUM
    movl %esi, VALUE
    movl $2, FLAG
    jmp 1b
3:  cli
    hlt
    jmp 3b
ap_end:
    .section .note.GNU-stack, "", @progbits

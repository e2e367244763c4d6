/* Guest payloads for the MMIO fast paths (coalesced writes, ioeventfd, irqfd).
 * Same conventions as core_exits.S: loaded at 0x10000, scratch RAM at 0x20000, test
 * ports 0x10-0x1f, exit code on port 0xf4. Bulk loops run at ring 3 (native speed). */
#include "guest_asm.h"

    .code64

/* Ring 3. For i in 0..<RCX: value = i*13 + i/256 (low byte); write it to (RBX) when
 * RBX != 0, to port R9 when R9 != 0, and to port 0x10 (an ordinary exit) whenever
 * (i & R8) == R8 with R8 != 0. Then store 1 at 0x20000 and, when RSI == 0, exit with
 * code 0 on port 0xf4; when RSI != 0, spin (the host stops the vCPU). */
BEGIN(coalesced_writes)
    xor %r10, %r10
1:  cmp %rcx, %r10
    jae 4f
    imul $13, %r10, %rax
    mov %r10, %r11
    shr $8, %r11
    add %r11, %rax
    test %rbx, %rbx
    jz 2f
    mov %al, (%rbx)
2:  test %r9, %r9
    jz 3f
    mov %r9d, %edx
    out %al, %dx
3:  test %r8, %r8
    jz 5f
    mov %r10, %r11
    and %r8, %r11
    cmp %r8, %r11
    jne 5f
    mov $0x10, %dx
    out %al, %dx
5:  inc %r10
    jmp 1b
4:  movl $1, 0x20000
    test %rsi, %rsi
    jnz 6f
    xor %eax, %eax
    mov $0xf4, %dx
    out %al, %dx
6:  jmp 6b
END(coalesced_writes)

/* Ring 3. Three 4-byte writes to port 0x30; 2-byte writes of 0x77, 0x78, 0x77 to
 * 0xd0000100; then exit code 0 on port 0xf4. */
BEGIN(doorbell)
    mov $0x30, %dx
    mov $1, %eax
    out %eax, %dx
    out %eax, %dx
    out %eax, %dx
    mov $0xd0000100, %ebx
    movw $0x77, (%rbx)
    movw $0x78, (%rbx)
    movw $0x77, (%rbx)
    xor %eax, %eax
    mov $0xf4, %dx
    out %al, %dx
1:  jmp 1b
END(doorbell)

/* Gate `vector` -> `handler`, then the IDT loaded (guest_asm.h). */
#define SET_GATE(vector, handler) IDT_GATE(vector, handler); LOAD_IDT

/* 8259 pair: vectors 0x20-0x2f, every line masked but IRQ `irq` (< 8). */
#define PIC_INIT(irq) \
    mov $0x11, %al; out %al, $0x20; out %al, $0xa0; \
    mov $0x20, %al; out %al, $0x21; mov $0x28, %al; out %al, $0xa1; \
    mov $4, %al; out %al, $0x21; mov $2, %al; out %al, $0xa1; \
    mov $1, %al; out %al, $0x21; out %al, $0xa1; \
    mov $(0xff & ~(1 << (irq))), %al; out %al, $0x21; mov $0xff, %al; out %al, $0xa1

/* Ring 0, in-kernel irqchip. Takes IRQ 4 (vector 0x24): says "ready" on port 0x10,
 * sleeps with sti;hlt until the handler ran (it writes 0x24 to port 0x11), then exits
 * with code 0 on port 0xf4. */
BEGIN(irq_wait)
    SET_GATE(0x24, 9f)
    PIC_INIT(4)
    movl $0, 0x20004
    mov $0x10, %dx
    out %al, %dx
1:  sti
    hlt
    cli
    cmpl $0, 0x20004
    je 1b
    xor %eax, %eax
    mov $0xf4, %dx
    out %al, %dx
2:  jmp 2b
9:  push %rax
    push %rdx
    mov $0x24, %al
    mov $0x11, %dx
    out %al, %dx
    movl $1, 0x20004
    mov $0x20, %al
    out %al, $0x20
    pop %rdx
    pop %rax
    iretq
END(irq_wait)

/* Ring 3. Writes the 32-bit RDI to the debug-exit device: port 0xf4 when RSI == 0,
 * else the MMIO address in RSI. Spins after (the device stops the VM). */
BEGIN(debug_exit_value)
    mov %edi, %eax
    test %rsi, %rsi
    jnz 1f
    mov $0xf4, %dx
    out %eax, %dx
    jmp 2f
1:  mov %eax, (%rsi)
2:  jmp 2b
END(debug_exit_value)

    .section .note.GNU-stack, "", @progbits

/* apf_kernel: a tiny ring-0 kernel implementing the guest side of async page faults
 * the way Linux does, and two ring-3 tasks.
 *
 *   boot (ring 0): IDT (#PF, #GP, #DF, "ready" vector 0xf3), CPUID 0x40000001 check,
 *     MSR_KVM_ASYNC_PF_INT = 0xf3, MSR_KVM_ASYNC_PF_EN = area 0x20040 | enabled |
 *     delivery as interrupt (only if both bits are advertised), then iretq to task A.
 *   #PF: flags == 1 (page not present): read CR2 (the token) and flags, clear flags
 *     first, block A on the token and switch to B. "Not present" for B (A is blocked
 *     then: a lazily restored snapshot pages B's code and data in too) idles B with
 *     `sti; hlt` until its token is ready, as Linux does when nothing else can run.
 *     Any other #PF is fatal.
 *   "ready" (0xf3): read the token, write token = 0, then ACK through
 *     MSR_KVM_ASYNC_PF_ACK; if B idles on it (or it is ~0) B's wait ends; if A waits
 *     on it (or it is ~0) wake A and switch to it.
 *   task A (ring 3): reads the first and last qword of pages 0x200000 + i * 4 KiB,
 *     i < [0x20158], into 0x21000 + 16 i, and B's progress meanwhile into 0x22000 + 8 i;
 *     then `out` to port 0xf4 (exit 0).
 *   task B (ring 3): increments 0x20110 forever, or (benchmark) until it reaches
 *     [0x20160] when that is not 0, then waits for A; when A is done first it runs
 *     B's remaining work itself. Whoever finishes last exits through port 0xf4.
 *   fatal: `out` of the vector to port 0xf5.
 * Kernel data: 0x20100 not-present count, 0x20108 ready count, 0x20110 B's counter,
 * 0x20118 current task (0 A, 1 B), 0x20120 A's wait token, 0x20128 A waiting,
 * 0x20130/0x20138 saved kernel rsp of A/B, 0x20140 fatal CR2, 0x20150 async PF on,
 * 0x20158 page count, 0x20160 B's work target (0: none), 0x20168 A done, 0x201b0 B's
 * wait token, 0x201b8 B waiting, 0x201c0 != 0: the VMM has an in-kernel LAPIC (boot
 * software-enables it; "ready" ends with an EOI).
 * Test hooks: [0x20170] a lazy address read at CPL 0 during boot (value to 0x20178);
 * [0x20180] != 0: the #PF handler first does `out` to port 0x12 (an exit while
 * flags is still set). NMI handler: count 0x20188, flags seen 0x20190, CR2 0x20198.
 * Demo hook: [0x201a0] != 0: instead of port 0xf4 the finishing task executes `hlt` at
 * ring 3, and the #GP handler jumps to the ring-0 address [0x201a0] (a guest that
 * reports and halts, so a launcher run can end with status 0).
 * Kernel stacks: A 0xd000, B 0xe000 (TSS.RSP0 at 0x8004 follows the current task).
 * Ring-0 code is emulated on kvm_pvm: the handlers are a few dozen instructions. */
#include "guest_asm.h"

#define SAVE_REGS push %rax; push %rbx; push %rcx; push %rdx; push %rsi; push %rdi; push %rbp; \
    push %r8; push %r9; push %r10; push %r11; push %r12; push %r13; push %r14; push %r15
#define RESTORE_REGS pop %r15; pop %r14; pop %r13; pop %r12; pop %r11; pop %r10; pop %r9; pop %r8; \
    pop %rbp; pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rbx; pop %rax

#define APF_VECTOR  0xf3

    .code64
BEGIN(apf_kernel)
    IDT_GATE(14, pf_handler)
    IDT_GATE(13, gp_handler)
    IDT_GATE(8, df_handler)
    IDT_GATE(APF_VECTOR, ready_handler)
    IDT_GATE(2, nmi_handler)
    lidt idtr(%rip)
    cmpq $0, 0x201c0            /* in-kernel LAPIC: spurious-vector register, enabled */
    je 2f
    mov $0xfee000f0, %eax
    movl $0x1ff, (%rax)
2:  mov 0x20170, %rax           /* test: a lazy page to read at CPL 0 (0: none) */
    test %rax, %rax
    jz 1f
    mov (%rax), %rbx
    mov %rbx, 0x20178
1:
    mov $0x40000001, %eax
    cpuid
    and $0x4010, %eax
    cmp $0x4010, %eax
    jne 1f
    mov $MSR_APF_INT, %ecx
    mov $APF_VECTOR, %eax
    xor %edx, %edx
    wrmsr
    mov $MSR_APF_EN, %ecx
    mov $0x20049, %eax
    wrmsr
    movq $1, 0x20150
1:  /* B's first frame on its kernel stack: as if interrupted at task_b's entry. */
    mov $0xe000, %rsp
    pushq $0x1b
    pushq $0x60000
    pushq $0x3202
    pushq $0x23
    lea task_b(%rip), %rax
    push %rax
    pushq $0
    sub $120, %rsp
    mov %rsp, 0x20138
    /* Enter A at ring 3. */
    movq $0xd000, 0x8004
    mov $0xd000, %rsp
    pushq $0x1b
    pushq $0x70000
    pushq $0x3202
    pushq $0x23
    lea task_a(%rip), %rax
    push %rax
    iretq

pf_handler:
    SAVE_REGS
    cmpq $0, 0x20180            /* test: an exit while flags is still set */
    je 1f
    mov $0x12, %dx
    out %al, %dx
1:
    mov %cr2, %rax
    mov 0x20040, %ebx
    cmp $1, %ebx
    jne real_pf
    movl $0, 0x20040            /* clear flags before anything that may fault */
    cmpq $0, 0x20118
    jne b_wait
    incq 0x20100
    mov %rax, 0x20120
    movq $1, 0x20128
    mov %rsp, 0x20130           /* switch A -> B */
    mov 0x20138, %rsp
    movq $0xe000, 0x8004
    movq $1, 0x20118
    RESTORE_REGS
    add $8, %rsp
    iretq
b_wait:                         /* B: A is blocked, so idle until B's page is ready */
    mov %rax, 0x201b0
    movq $1, 0x201b8
1:  sti
    hlt                         /* "ready" (for A too: it switches to A meanwhile) */
    cli
    cmpq $0, 0x201b8
    jne 1b
    RESTORE_REGS
    add $8, %rsp
    iretq                       /* retry B's access */
real_pf:
    mov %rax, 0x20140
    mov $14, %al
    jmp fatal

ready_handler:
    pushq $0
    SAVE_REGS
    mov 0x20044, %ebx           /* token */
    movl $0, 0x20044            /* token = 0, then ACK */
    mov $MSR_APF_ACK, %ecx
    mov $1, %eax
    xor %edx, %edx
    wrmsr
    cmpq $0, 0x201c0            /* in-kernel LAPIC: EOI */
    je 6f
    mov $0xfee000b0, %eax
    movl $0, (%rax)
6:  incq 0x20108
    cmpq $1, 0x201b8            /* B idles on this token? */
    jne 4f
    cmp $0xffffffff, %ebx
    je 5f
    cmp 0x201b0, %rbx
    jne 4f
5:  movq $0, 0x201b8
4:  cmpq $1, 0x20128
    jne 2f
    cmp $0xffffffff, %ebx
    je 3f
    cmp 0x20120, %rbx
    jne 2f
3:  movq $0, 0x20128
    cmpq $1, 0x20118
    jne 2f
    mov %rsp, 0x20138           /* switch B -> A */
    mov 0x20130, %rsp
    movq $0xd000, 0x8004
    movq $0, 0x20118
2:  RESTORE_REGS
    add $8, %rsp
    iretq

nmi_handler:                    /* records what an NMI handler would find */
    push %rax
    incq 0x20188
    mov 0x20040, %eax
    mov %rax, 0x20190
    mov %cr2, %rax
    mov %rax, 0x20198
    pop %rax
    iretq

gp_handler:
    mov 0x201a0, %rax           /* demo hook: finish at ring 0 */
    test %rax, %rax
    jz 1f
    mov 8(%rsp), %rdx           /* the faulting RIP (after the error code) */
    cmpb $0xf4, (%rdx)          /* only a ring-3 hlt is the finish */
    jne 1f
    jmp *%rax
1:  mov $13, %al
    jmp fatal
df_handler:
    mov $8, %al
fatal:
    mov $0xf5, %dx
    out %al, %dx
    hlt

task_a:
    xor %esi, %esi
    mov $0x200000, %rdi
1:  mov 0x20110, %rax
    mov (%rdi), %rbx            /* may be missing: not present -> B runs */
    mov 0xff8(%rdi), %rcx
    mov %rsi, %rdx
    shl $4, %rdx
    mov %rbx, 0x21000(%rdx)
    mov %rcx, 0x21008(%rdx)
    mov 0x20110, %rdx
    sub %rax, %rdx
    mov %rdx, 0x22000(,%rsi,8)
    add $0x1000, %rdi
    inc %rsi
    cmp 0x20158, %rsi
    jb 1b
    movq $1, 0x20168            /* A is done */
    cmpq $0, 0x20160
    jne task_b                  /* B has a fixed amount of work left: do it here */
exit0:
    cmpq $0, 0x201a0
    je 4f
    hlt                         /* ring 3: #GP, see the demo hook */
4:  mov $0xf4, %dx
    xor %eax, %eax
    out %al, %dx
    hlt

task_b:
1:  mov 0x20160, %rax
    test %rax, %rax
    jz 2f                       /* no target: count forever */
    cmp %rax, 0x20110
    jae 3f
2:  incq 0x20110
    jmp 1b
3:  cmpq $0, 0x20168            /* B's work is done: wait for A */
    je 3b
    jmp exit0

idtr:
    .word 0xfff
    .quad 0xb000
END(apf_kernel)

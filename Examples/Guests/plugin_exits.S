/* Guest payloads for the plugin tests (Tests/VMMKitTests/Plugin*.swift). Ring 0, a few
 * dozen instructions each (ring-0 code is emulated on kvm_pvm). Loaded at 0x10000;
 * results go to scratch RAM at 0x20000. */
#include "guest_asm.h"

    .code64

/* The ScratchDevice plugin (ports 0x540.., MMIO 0xe0001000..): writes through both
 * windows, reads back through the other one.
 *   0x20000 <- in port 0x542 (4 bytes)   = register 2, written via MMIO
 *   0x20008 <- MMIO read of 8 bytes at +0 = registers 0 and 1, written via PIO
 *   0x20010 <- in port 0x541 (1 byte)    */
BEGIN(plugin_scratch)
    mov $0x540, %dx
    mov $0x11223344, %eax
    out %eax, %dx              /* register 0 */
    inc %dx
    mov $0x55, %al
    out %al, %dx               /* register 1, low byte */
    mov $0xe0001000, %ebx
    movabs $0x8877665544332211, %rax
    mov %rax, 8(%rbx)          /* registers 2 and 3 */
    mov $0x542, %dx
    in %dx, %eax
    mov %rax, 0x20000
    mov (%rbx), %rax
    mov %rax, 0x20008
    mov $0x541, %dx
    xor %eax, %eax
    in %dx, %al
    mov %rax, 0x20010
    hlt
END(plugin_scratch)

/* The scratch device's fault port (0x550): the handler fails; the hlt is never reached. */
BEGIN(plugin_scratch_fault)
    mov $0x550, %dx
    mov $0xbad, %eax
    out %eax, %dx
    hlt
END(plugin_scratch_fault)

/* PCTestDev's state across a save and a restore (PluginStateTests): with r12 = 0 it
 * writes the scratch register (port 0xe0, 4 bytes) and 8 bytes of MMIO scratch at
 * 0xff001230; with r12 = 1 it reads them back into 0x20000 and 0x20008. */
BEGIN(plugin_testdev_state)
    mov $0xe0, %dx
    mov $0xff001230, %ebx
    test %r12, %r12
    jnz 1f
    mov $0x12345678, %eax
    out %eax, %dx
    movabs $0x1122334455667788, %rax
    mov %rax, (%rbx)
    hlt
1:  in %dx, %eax
    mov %rax, 0x20000
    mov (%rbx), %rax
    mov %rax, 0x20008
    hlt
END(plugin_testdev_state)

/* The DebugExit plugin on port 0xf4: a read returns 0 (0x20000 <- 0x123400), then
 * the write of 42 stops the VM with code 42. The hlt is never reached. */
BEGIN(plugin_debug_exit)
    mov $0x1234ff, %eax
    in $0xf4, %al
    mov %rax, 0x20000
    mov $42, %eax
    out %eax, $0xf4
    hlt
END(plugin_debug_exit)

/* The DebugExit plugin in MMIO mode at 0xd0002000: exit code 7. */
BEGIN(plugin_debug_exit_mmio)
    mov $0xd0002000, %ebx
    movl $7, (%rbx)
    hlt
END(plugin_debug_exit_mmio)

/* The v1.0 compatibility plugin on port 0x520: out 41, in -> 0x20000 (expects 42);
 * the plugin stores RBX (0x7777) at 0x20100 via get_reg + write_guest. */
BEGIN(plugin_compat)
    mov $0x7777, %ebx
    mov $0x520, %dx
    mov $41, %eax
    out %eax, %dx
    xor %eax, %eax
    in %dx, %eax
    mov %rax, 0x20000
    hlt
END(plugin_compat)

/* The C fixture whose handler fails (port 0x530). */
BEGIN(plugin_c_fail)
    mov $0x530, %dx
    mov $5, %al
    out %al, %dx
    hlt
END(plugin_c_fail)

/* Typed hypercalls (number in EAX, args in RDI RSI RDX R10 R8 R9, out %eax to 0xe4,
 * result in RAX), stored at 0x20000 + 8 * k for k = 0..7. The libHypercalls fixture
 * defines the numbers 100..107. */
#define HCALL(n, slot) mov $n, %eax; out %eax, $0xe4; mov %rax, 0x20000 + 8 * slot
BEGIN(plugin_hypercalls)
    movabs $0x0102030405060708, %rax
    mov %rax, 0x20100          /* read by hypercall 106 through its ptr argument */
    HCALL(100, 0)              /* u64() */
    mov $1000, %edi
    HCALL(101, 1)              /* u64(u64): 3 * a */
    mov $5, %edi
    mov $7, %esi
    HCALL(102, 2)              /* i32(i32,i32): a - b = -2, sign-extended */
    mov $0x1ff, %edi           /* truncated to u8: 0xff */
    mov $0x30001, %esi         /* truncated to u16: 1 */
    movabs $0x100000002, %rdx  /* truncated to u32: 2 */
    HCALL(103, 3)              /* u64(u8,u16,u32): a + b + c */
    mov $1, %edi
    mov $2, %esi
    mov $3, %edx
    mov $4, %r10d
    HCALL(104, 4)              /* u64(u64 x4): a + 2b + 3c + 4d */
    mov $5, %r8d
    HCALL(105, 5)              /* u64(u64 x5): a + 2b + 3c + 4d + 5e */
    mov $0x20100, %edi
    mov $0x10, %esi
    mov $0x20, %edx
    mov $0x30, %r10d
    mov $0x40, %r8d
    mov $0xff, %r9d            /* i8: -1 */
    HCALL(106, 6)              /* i64(ptr,u64,u64,u64,u64,i8): *ptr + b + c + d + e + f */
    HCALL(999, 7)              /* unregistered: -ENOSYS */
    hlt
END(plugin_hypercalls)

/* Host services through the libServices fixture (port 0x540), see services_plugin.c:
 *   0x20010 <- RCX after action 2 (async-PF raise verdict), 0x20018 <- RBX (set by
 *   the receiver plugin), 0x20020 <- RCX after action 3 (EBUSY), then action 1
 *   injects #PF: the handler at +0x80 stores CR2 at 0x20000 and the error code at
 *   0x20008 and halts. The test writes the IDT gate and the IDTR at 0x20100. */
BEGIN(plugin_services)
    mov $0x540, %dx
    mov $2, %eax
    out %eax, %dx
    mov %rcx, 0x20010
    mov %rbx, 0x20018
    mov $3, %eax
    out %eax, %dx
    mov %rcx, 0x20020
    lidt 0x20100
    mov $1, %eax
    out %eax, %dx
    hlt                        /* not reached: the #PF handler halts */
    .org 0x80
    mov %cr2, %rax
    mov %rax, 0x20000
    pop %rax                   /* the error code */
    mov %rax, 0x20008
    hlt
END(plugin_services)

/* inject_interrupt through the libServices fixture (action 4): with interrupts enabled
 * the plugin queues vector 0x40; its handler at +0x80 stores 0x40 at 0x20000 and the
 * plugin's result (RCX, 0 = injected) at 0x20008, then halts. The test writes the gate
 * and the IDTR at 0x20100. */
BEGIN(plugin_interrupt)
    lidt 0x20100
    mov $0x540, %dx
    mov $-1, %rcx
    sti
    nop                        /* past the STI interrupt shadow */
    mov $4, %eax
    out %eax, %dx
    cli
    hlt                        /* not reached when the interrupt arrives */
    .org 0x80
    movq $0x40, 0x20000
    mov %rcx, 0x20008
    hlt
END(plugin_interrupt)

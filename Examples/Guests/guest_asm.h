/* guest_asm.h - what every guest payload (.S) in this folder shares. */
#ifndef GUEST_ASM_H
#define GUEST_ASM_H

/* A payload is the bytes between two global labels in a .rodata section of its own;
 * payloads.c finds them by name (payload_list.h). */
#define BEGIN(name) .section .rodata.guest_##name, "a"; .globl guest_##name##_start; guest_##name##_start:
#define END(name) .globl guest_##name##_end; guest_##name##_end:

/* 64-bit interrupt gate `vector` -> `handler` (cs 0x08, DPL 0) in the IDT at 0xb000
 * (GuestLayout.idt). Clobbers rax, rcx, rdx. */
#define IDT_GATE(vector, handler) \
    lea handler(%rip), %rax; \
    mov %rax, %rcx; and $0xffff, %ecx; \
    mov %rax, %rdx; shr $16, %rdx; and $0xffff, %edx; shl $48, %rdx; or %rdx, %rcx; \
    movabs $0x00008e0000080000, %rdx; or %rdx, %rcx; \
    mov %rcx, 0xb000 + (vector) * 16; \
    shr $32, %rax; mov %rax, 0xb008 + (vector) * 16

/* Loads the IDT at 0xb000 (256 gates) through a descriptor built on the stack. */
#define LOAD_IDT \
    sub $16, %rsp; movw $0xfff, (%rsp); movq $0xb000, 2(%rsp); lidt (%rsp); add $16, %rsp

/* Linux's async page fault MSRs (KVM paravirtual ABI). */
#define MSR_APF_EN  0x4b564d02
#define MSR_APF_INT 0x4b564d06
#define MSR_APF_ACK 0x4b564d07

#endif

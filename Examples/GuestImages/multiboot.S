/* A Multiboot v1 kernel (ELF32) for `vmm run`: prints its command line, each module's
 * string and contents, and the fw_cfg CPU count and RAM size (QEMU's legacy I/O
 * interface: selector 0x510, data 0x511), then ends with debug-exit code 0x10.
 * Entered in 32-bit protected mode, EAX = 0x2BADB002, EBX = multiboot info. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, want memory info */
    .code32
    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .section .text
    .globl _start
_start:
    cmp $0x2BADB002, %eax
    jne fail
    mov $0x80000, %esp              /* Multiboot leaves ESP undefined */
    mov %ebx, %ebp                  /* keep the info pointer */
    mov $s_cmdline, %esi
    call puts
    testl $4, (%ebp)                /* flags bit 2: cmdline valid */
    jz 1f
    mov 16(%ebp), %esi
    call puts
1:  mov $s_nl, %esi
    call puts
    testl $8, (%ebp)                /* flags bit 3: modules valid */
    jz 3f
    mov 24(%ebp), %ebx              /* mods_addr */
    mov 20(%ebp), %edi              /* mods_count */
4:  test %edi, %edi
    jz 3f
    mov $s_module, %esi
    call puts
    mov 8(%ebx), %esi               /* the module's string */
    call puts
    mov $s_colon, %esi
    call puts
    mov (%ebx), %esi                /* mod_start */
    mov 4(%ebx), %ecx               /* mod_end */
    mov $0x3f8, %dx
2:  cmp %ecx, %esi
    jae 5f
    lodsb
    out %al, %dx
    jmp 2b
5:  add $16, %ebx
    dec %edi
    jmp 4b
3:  mov $s_cpus, %esi
    call puts
    mov $0x05, %ax                  /* FW_CFG_NB_CPUS */
    call fwcfg_select
    call fwcfg_u16
    call putdec
    mov $s_ram, %esi
    call puts
    mov $0x03, %ax                  /* FW_CFG_RAM_SIZE: u64, little endian */
    call fwcfg_select
    call fwcfg_u16                  /* low 32 bits in two reads */
    mov %eax, %ebx
    call fwcfg_u16
    shl $16, %eax
    or %ebx, %eax
    shr $20, %eax                   /* MiB */
    call putdec
    mov $s_mib, %esi
    call puts
    mov $0x10, %al
    mov $0xf4, %dx
    out %al, %dx
fail:
    hlt
    jmp fail

/* puts: NUL-terminated string at ESI to COM1 */
puts:
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  ret

/* putdec: EAX in decimal to COM1 */
putdec:
    mov $10, %ecx
    xor %edi, %edi
1:  xor %edx, %edx
    div %ecx
    push %edx
    inc %edi
    test %eax, %eax
    jnz 1b
    mov $0x3f8, %dx
2:  pop %eax
    add $'0', %al
    out %al, %dx
    dec %edi
    jnz 2b
    ret

fwcfg_select:
    mov $0x510, %dx
    out %ax, %dx
    ret

/* two data-port bytes, little endian, into EAX */
fwcfg_u16:
    mov $0x511, %dx
    xor %eax, %eax
    inb %dx, %al
    mov %al, %ah
    inb %dx, %al
    xchg %al, %ah
    ret

    .section .rodata
s_cmdline: .asciz "cmdline: "
s_nl:      .asciz "\n"
s_module:  .asciz "module "
s_colon:   .asciz ": "
s_cpus:    .asciz "cpus: "
s_ram:     .asciz "\nram: "
s_mib:     .asciz " MiB\n"
    .section .note.GNU-stack, "", @progbits

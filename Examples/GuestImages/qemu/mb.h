/* Shared by the QEMU-style Multiboot test kernels (ELF32, entered in 32-bit protected
 * mode with EAX = 0x2BADB002, EBX = the Multiboot info; COM1 console; debug-exit 0xf4). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003
#define MULTIBOOT_HEADER \
    .section .multiboot, "a"; .align 4; .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
#define LAPIC 0xfee00000
/* PUTS label: the NUL-terminated string at label to COM1 (clobbers eax, edx, esi). */
#define PUTS(label) mov $label, %esi; call puts
#define DEBUG_EXIT(code) mov $(code), %al; mov $0xf4, %dx; out %al, %dx
/* For kernels that print device registers, once in their .text: print_port, the byte at
 * port DX in hex (clobbers eax, ecx, edx). */
#define MB_PRINT_PORT print_port: in %dx, %al; movzbl %al, %eax; jmp puthex2
/* For kernels that wait for their interrupt handler to set the byte `got`, once in their
 * .text: wait_irq, `sti; hlt` until it is set, then clears it. */
#define MB_WAIT_IRQ wait_irq: 6: sti; hlt; cmpb $0, got; je 6b; movb $0, got; ret
/* WAIT_KEY: until the i8042 holds a byte (a key typed into the paused guest), which it
 * takes into AL. */
#define WAIT_KEY 7: in $0x64, %al; test $1, %al; jz 7b; in $0x60, %al
/* DEAD_END: the label `dead`, where a kernel that is done or failed halts for good. */
#define DEAD_END dead: cli; hlt; jmp dead
/* PRINT(label, value): the string, then `value` (memory or a constant: PUTS clobbers
 * eax) in hex (clobbers eax, ecx, edx, esi). */
#define PRINT(label, value) PUTS(label); mov value, %eax; call puthex
/* FWCFG_CPUS: EAX = fw_cfg's CPU count (selector 0x05; clobbers edx). */
#define FWCFG_CPUS \
    mov $0x05, %ax; mov $0x510, %dx; out %ax, %dx; mov $0x511, %dx; xor %eax, %eax; inb %dx, %al
/* IOAPIC_REG(base, index): EAX = the I/O APIC's register `index` (base in a register). */
#define IOAPIC_REG(base, index) movl $(index), (base); mov 0x10(base), %eax
/* The helpers each kernel includes once, in its .text: puts (the string at ESI), puthex (EAX as 8
 * hex digits) and puthex2 (AL as 2), both on COM1 (clobbering eax, ecx, edx). */
#define MB_HELPERS \
puts: mov $0x3f8, %dx; 1: lodsb; test %al, %al; jz 2f; out %al, %dx; jmp 1b; 2: ret; \
puthex2: shl $24, %eax; mov $2, %ecx; jmp 3f; \
puthex: mov $8, %ecx; 3: rol $4, %eax; push %eax; and $0xf, %al; add $'0', %al; cmp $'9', %al; jbe 4f; add $7, %al; \
    4: mov $0x3f8, %dx; out %al, %dx; pop %eax; loop 3b; ret
/* For kernels whose command line picks what they do, once in their .text: cmdline_end
 * takes the Multiboot info in ESI and returns in ESI the command line's terminating
 * NUL, or 0 when the info has none (clobbers nothing else). */
/* For kernels that look for a PCI function, once in their .text: pci_find takes EBX =
 * 0x80000000 | a dword offset, ESI a mask and EDI a value, and returns with ZF set and EBX
 * at the first function on bus 0 whose dword there, masked, is EDI (EAX the dword), or
 * with ZF clear when none is (clobbers edx). */
#define MB_PCI_FIND \
pci_find: mov %ebx, %eax; mov $0xcf8, %dx; out %eax, %dx; mov $0xcfc, %dx; in %dx, %eax; mov %eax, %edx; \
    and %esi, %edx; cmp %edi, %edx; je 1f; add $0x100, %ebx; cmp $0x80010000, %ebx; jb pci_find; test %ebx, %ebx; 1: ret
/* CMDLINE_FLAG(value, flag): after cmdline_end, the byte `flag` = 1 when the command line
 * ends in the four bytes `value` (little-endian: "spin" is 0x6e697073); nothing when ESI is 0. */
#define CMDLINE_FLAG(value, flag) test %esi, %esi; jz 8f; cmpl $(value), -4(%esi); jne 8f; movb $1, flag; 8:
#define MB_CMDLINE_END \
cmdline_end: testl $4, (%esi); jz 2f; mov 16(%esi), %esi; 1: cmpb $0, (%esi); je 3f; inc %esi; jmp 1b; \
    2: xor %esi, %esi; 3: ret
/* IDT_GATE(vector, handler): a 32-bit interrupt gate, CS 0x08 (the loader's GDT), in the
 * kernel's `idt` (clobbers eax, edi). */
#define IDT_GATE(vector, handler) \
    mov $handler, %eax; mov $(idt + (vector) * 8), %edi; mov %ax, (%edi); movw $0x08, 2(%edi); \
    movw $0x8e00, 4(%edi); shr $16, %eax; mov %ax, 6(%edi)
/* IOAPIC_ROUTE(pin, vector): both PICs masked, the local APIC on with LINT0 masked, and
 * the IOAPIC's redirection entry `pin` to `vector` (edge, fixed, APIC 0); clobbers eax. */
#define IOAPIC 0xfec00000
#define IOAPIC_ROUTE(pin, vector) \
    mov $0xff, %al; out %al, $0x21; out %al, $0xa1; \
    movl $0x1ff, LAPIC + 0xf0; movl $0x10000, LAPIC + 0x350; \
    movl $(0x10 + 2 * (pin)), IOAPIC; movl $(vector), IOAPIC + 0x10; \
    movl $(0x11 + 2 * (pin)), IOAPIC; movl $0, IOAPIC + 0x10
/* PIT_QUIET: PIT channel 0 silenced for good, with no interrupt left in flight: mode 0
 * with count 0x10000, then mode 5 (hardware-triggered strobe, which waits for a rising
 * edge of a gate channel 0, tied high, never has). On KVM's PIT the first load cancels
 * the channel's timer, waits for the kernel thread that injects its interrupts and
 * forgets the ticks it owed (reinjection); the second stops the one-shot it started
 * and waits for that thread again. Call it with pin 2 masked: what that thread injects
 * meanwhile is lost there. (Mode 0 with count 1 alone raced: a busy host ran the thread
 * late and its interrupt reached pin 2 once unmasked for another timer.) Clobbers eax.
 * SeaBIOS leaves channel 0 ticking at 18.2 Hz on IRQ 0, which reaches I/O APIC pin 2:
 * a kernel that uses pin 2 for another timer quiets it first. */
#define PIT_QUIET mov $0x30, %al; out %al, $0x43; xor %al, %al; out %al, $0x40; out %al, $0x40; PIT_MODE5
/* PIT_MODE5: channel 0 in mode 5 with count 1, as PIT_QUIET's second half. Clobbers eax. */
#define PIT_MODE5 mov $0x3a, %al; out %al, $0x43; mov $1, %al; out %al, $0x40; xor %al, %al; out %al, $0x40
/* PIT_PERIODIC(count): channel 0 as a rate generator (mode 2, low then high byte), an
 * interrupt on IRQ 0 every `count` ticks of its 1193182 Hz clock. Clobbers eax. */
#define PIT_PERIODIC(count) mov $0x34, %al; out %al, $0x43; mov $((count) & 0xff), %al; out %al, $0x40; \
    mov $((count) >> 8), %al; out %al, $0x40
/* LAPIC_DRAIN(vec): takes the interrupt the local APIC holds for vector `vec` (its IRR
 * bit), if any, with `sti; hlt` (which wakes on it at once); its handler must return
 * with interrupts off (IRET_CLI). `sti; nop; cli` is no drain here: the emulated ring 0
 * ran the three without taking an interrupt pending in IRR, which then came at the
 * next `sti; hlt` (the HPET guest under load, with two vCPUs). Clobbers nothing. */
#define LAPIC_DRAIN(vec) 8: testl $(1 << ((vec) % 32)), LAPIC + 0x200 + 0x10 * ((vec) / 32); jz 9f; sti; hlt; jmp 8b; 9:
/* An interrupt handler's return, IRET spelled out: KVM's instruction emulator (all
 * ring-0 code is emulated on kvm_pvm) executes IRET in real mode only; a 32-bit one is
 * an internal error. The handlers only ever interrupt `sti; hlt` (IF was 1, CS 0x08).
 * IRET_STI returns with interrupts on (STI's one-instruction shadow keeps a new one from
 * landing before the jump); IRET_CLI with them off, so each `sti; hlt` takes exactly
 * one interrupt. Both clobber EDI. */
#define IRET_STI pop %edi; add $8, %esp; sti; jmp *%edi
#define IRET_CLI pop %edi; add $8, %esp; jmp *%edi
/* KERNEL_START: the Multiboot header, then `_start` in 32-bit code. */
#define KERNEL_START .code32; MULTIBOOT_HEADER; .text; .globl _start; _start:
/* KERNEL_ENTRY: KERNEL_START, then to `dead` unless EAX holds the Multiboot magic, and
 * the stack below 0x80000. */
#define KERNEL_ENTRY KERNEL_START cmp $0x2BADB002, %eax; jne dead; mov $0x80000, %esp
/* IDTR: the `lidt` operand for the kernel's 256-gate `idt` (in its .data). */
#define IDTR idtr: .word 256 * 8 - 1; .long idt

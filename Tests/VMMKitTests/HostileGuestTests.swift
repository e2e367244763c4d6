import Foundation
import Glibc
import Testing
import VMMKit

/// Hostile guests on real KVM (issue 12, item 5): each ends with its documented status
/// (launcher) or stop reason (library) and a diagnosis naming what the guest did, and
/// none takes the VMM down or keeps it running.
@Suite("Hostile guests on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct HostileGuestTests {
    /// Runs a flat 64-bit image at 1 MiB under `vmm run` with `extra` flags.
    static func run(_ name: String, _ code: [UInt8], _ extra: [String] = []) throws -> VMMProcess.Result {
        let image = try VMMProcess.temp(name, code)
        defer { unlink(image) }
        return try VMMProcess.run(["run", image, "--load-addr", "0x100000"] + extra)
    }

    @Test("MSR_KVM_ASYNC_PF_EN with an area in the top 64 bytes is refused with #GP (it trapped the VMM, status 132)")
    func asyncPFAreaPastTheEnd() throws {
        // mov $0x4b564d02,%ecx; mov $0xffffffc1,%eax; mov $0xffffffff,%edx; wrmsr;
        // mov $0x21,%al; out %al,$0xf4; hlt — with no IDT the #GP is a triple fault.
        let code: [UInt8] = [0xb9, 0x02, 0x4d, 0x56, 0x4b, 0xb8, 0xc1, 0xff, 0xff, 0xff, 0xba, 0xff, 0xff, 0xff, 0xff,
                             0x0f, 0x30, 0xb0, 0x21, 0xe6, 0xf4, 0xf4]
        let r = try Self.run("apf-area.bin", code, ["--max-seconds", "30"])
        #expect(r.status == 10, "\(r.stderr)")
        #expect(r.stderr == "vmm: vCPU 0: shutdown (triple fault)\n")
    }

    @Test("an instruction fetch that fails at RIP 2^64-8 under a pager stops with KVM's error (the pager's rip + 14 trapped)")
    func fetchNearTheTop() throws {
        // Maps the top 2 MiB of virtual space to guest-physical 0xffe00000 (no RAM there)
        // with PML4[511] -> PDPT 0x200000 -> PD 0x201000, then jumps to 0xfffffffffffffff8.
        let code: [UInt8] = [0x48, 0xc7, 0xc0, 0x03, 0x10, 0x20, 0x00, 0x48, 0x89, 0x04, 0x25, 0xf8, 0x0f, 0x20, 0x00,
                             0x48, 0xb8, 0x83, 0x00, 0xe0, 0xff, 0x00, 0x00, 0x00, 0x00, 0x48, 0x89, 0x04, 0x25, 0xf8,
                             0x1f, 0x20, 0x00, 0x48, 0xc7, 0xc0, 0x03, 0x00, 0x20, 0x00, 0x0f, 0x20, 0xdb, 0x48, 0x81,
                             0xe3, 0x00, 0xf0, 0xff, 0xff, 0x48, 0x89, 0x83, 0xf8, 0x0f, 0x00, 0x00, 0x0f, 0x22, 0xdb,
                             0x48, 0xb8, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe0]
        let page = try VMMProcess.temp("fetch-top.mem", [UInt8](repeating: 0, count: 4096))
        defer { unlink(page) }
        let r = try Self.run("fetch-top.bin", code, ["--max-seconds", "30", "--plugin", "MemoryFault,snapshot=\(page),base=0x400000,priority=10"])
        #expect(r.status == 12, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("vmm: vCPU 0: KVM internal error: emulation failure") && r.stderr.contains("RIP 0xfffffffffffffff8"), "\(r.stderr)")
    }

    @Test("rep insb of 1024 bytes from a port whose handler answers one byte gives the guest zeros, not host memory")
    func repInsLeaksNothing() throws {
        // Fills 0x200000 with 0xaa, reads 1024 bytes from unassigned port 0x99 (all 0xff:
        // the vCPU's I/O buffer now holds them), rep insb 1024 bytes from fw_cfg's selector
        // port 0x510 (its handler writes element 0 only), rep outsb them to COM1, debug-exit 0.
        // Before, bytes 1... were the buffer's last contents: 0xff here, host heap at first.
        let code: [UInt8] = [0xfc, 0x48, 0xc7, 0xc7, 0x00, 0x00, 0x20, 0x00, 0xb0, 0xaa, 0xb9, 0x00, 0x04, 0x00, 0x00,
                             0xf3, 0xaa,
                             0x48, 0xc7, 0xc7, 0x00, 0x00, 0x20, 0x00, 0x66, 0xba, 0x99, 0x00, 0xb9, 0x00, 0x04, 0x00, 0x00,
                             0xf3, 0x6c,
                             0x48, 0xc7, 0xc7, 0x00, 0x00, 0x20, 0x00, 0x66, 0xba, 0x10, 0x05, 0xb9, 0x00,
                             0x04, 0x00, 0x00, 0xf3, 0x6c, 0x48, 0xc7, 0xc6, 0x00, 0x00, 0x20, 0x00, 0x66, 0xba, 0xf8,
                             0x03, 0xb9, 0x00, 0x04, 0x00, 0x00, 0xf3, 0x6e, 0xb0, 0x00, 0xe6, 0xf4, 0xf4]
        let r = try Self.run("rep-ins.bin", code, ["--max-seconds", "30"])
        #expect(r.status == 1, "\(r.stderr)")
        let console = Array(r.stdout.utf8)
        #expect(console.count == 1024 && console.allSatisfy { $0 == 0 }, "\(console.count) bytes, non-zero: \(console.filter { $0 != 0 }.prefix(16))")
    }

    @Test("triple fault: #DE with an empty IDT escalates to shutdown, status 10")
    func tripleFault() throws {
        // push 0; push 0; lidt (%rsp); xor %ecx,%ecx; div %ecx
        let r = try Self.run("triple.bin", [0x6a, 0x00, 0x6a, 0x00, 0x0f, 0x01, 0x1c, 0x24, 0x31, 0xc9, 0xf7, 0xf1])
        #expect(r.status == 10)
        #expect(r.stderr == "vmm: vCPU 0: shutdown (triple fault)\n")
    }

    // mov $0xe0000000,%eax; 1: movl $1,(%rax); add $4,%rax; jmp 1b
    static let storm: [UInt8] = [0xb8, 0x00, 0x00, 0x00, 0xe0, 0xc7, 0x00, 0x01, 0x00, 0x00, 0x00,
                                 0x48, 0x83, 0xc0, 0x04, 0xeb, 0xf4]

    @Test("an unclaimed MMIO storm under --strict-io stops at the first access, status 18, naming address and RIP")
    func unclaimedMMIOStorm() throws {
        let r = try Self.run("storm.bin", Self.storm, ["--strict-io"])
        #expect(r.status == 18)
        #expect(r.stderr == "vmm: vCPU 0: unhandled MMIO write of 0x1 (4 bytes) at guest-physical 0xe0000000, vCPU 0 at RIP 0x10000b\n")
    }

    @Test("an unclaimed MMIO storm by default is dropped, counted for a bounded set of addresses, and ends at --max-seconds")
    func unclaimedMMIOStormDefault() throws {
        let r = try Self.run("storm-default.bin", Self.storm, ["--max-seconds", "1", "--stats"])
        #expect(r.status == 16)
        #expect(r.stderr.contains("unassigned mmio write gpa=0xe0000000: 1\n"))
        #expect(r.stderr.contains("unassigned accesses at further addresses (past 1024): "))
        #expect(!r.stderr.contains("gpa=0xe0001000:"))
    }

    /// mov $0x800000,%ebx; mov (%rbx),%eax; out %al,$0xf4; hlt
    static let readPage800000: [UInt8] = [0xbb, 0x00, 0x00, 0x80, 0x00, 0x8b, 0x03, 0xe6, 0xf4, 0xf4]

    @Test("a fault no plugin resolves (a page source claims the page and declines it, or answers without writing it) stops as stuck, status 14",
          arguments: ["notmine", "handled"])
    func stuckFault(verdict: String) throws {
        precondition(PluginFixtures.built)
        // The fault-probe plugin is a page source for [0x800000, 0x801000) (a memory-fault
        // handler that does not only zero-fill), so that page is demand-paged through it.
        let probe = PluginFixtures.fixture("FaultProbe") + ",trace=0x20000,base=0x800000,length=0x1000,verdict=\(verdict)"
        let r = try Self.run("stuck.bin", Self.readPage800000, ["--no-default-plugins", "--plugin", probe])
        #expect(r.status == 14)
        let why = verdict == "notmine" ? "no memory-fault plugin delivered guest-physical page 0x800000"
            : "org.vmmkit.test.fault-probe 'range' (\(PluginFixtures.fixture("FaultProbe"))) handled the fault on guest-physical page 0x800000 but did not write the whole page with write_guest"
        #expect(r.stderr == "vmm: vCPU 0: stuck: vCPU 0 (blocked in the kernel on the page): memory-fault plugin (org.vmmkit.test.fault-probe) "
            + "could not deliver guest-physical page 0x800000 after 3 tries: \(why)\n")
    }

    @Test("a page source's write_guest that runs past the page being fetched is refused (-EFAULT), not a wait on its own fetch")
    func fetchWriteCrossingThePage() throws {
        precondition(PluginFixtures.built)
        let probe = PluginFixtures.fixture("FaultProbe") + ",trace=0x20000,base=0x800000,length=0x2000,verdict=handled"
        // The page alone: delivered, and the guest reads the plugin's byte (exit code 0x2a).
        let page = try Self.run("fill-page.bin", Self.readPage800000, ["--no-default-plugins", "--plugin", "DebugExit", "--plugin", probe + ",fill=4096"])
        #expect(page.status == 0x2a << 1 | 1, "stderr: \(page.stderr)")
        // The page and the next one, also demand-paged: it waited for ever on this fetch
        // (the budget only bounds the test). Now the plugin hears -EFAULT and fails the
        // fetch, and the vCPU stops as stuck, naming the plugin's reason.
        let two = try Self.run("fill-two.bin", Self.readPage800000, ["--no-default-plugins", "--plugin", "DebugExit", "--plugin", probe + ",fill=8192", "--handler-budget", "2"])
        #expect(two.status == 14)
        #expect(two.stderr.hasSuffix("fault-probe: write_guest of 8192 bytes at 0x800000 answered -14\n"), "stderr: \(two.stderr)")
        // The page source is named by the plugins that deliver pages, not every plugin loaded.
        #expect(two.stderr.hasPrefix("vmm: vCPU 0: stuck: vCPU 0 (blocked in the kernel on the page): memory-fault plugin (org.vmmkit.test.fault-probe) could not"),
                "stderr: \(two.stderr)")
    }

    /// The page source is called on the fault router, the only thread that reads the
    /// faults: a read of another missing page there faulted on that very thread, which
    /// waited for itself until the handler budget ended the run (status 8, naming a
    /// plugin that "did not return"). Now `read_guest` answers -EAGAIN at once and the
    /// plugin's own failure is the diagnosis.
    @Test("a page source that reads another missing page while it delivers one gets -EAGAIN on the fault router, not a wait on itself")
    func fetchReadingAnotherMissingPage() throws {
        precondition(PluginFixtures.built)
        // Its trace (read, then written, after it wrote the page) lies in the next page,
        // demand-paged through the same plugin and not present yet.
        let probe = PluginFixtures.fixture("FaultProbe") + ",trace=0x801000,base=0x800000,length=0x2000,verdict=handled,fill=4096"
        let r = try Self.run("fetch-reads.bin", Self.readPage800000, ["--no-default-plugins", "--plugin", "DebugExit", "--plugin", probe, "--handler-budget", "2"])
        #expect(r.status == 14, "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("vmm: vCPU 0: stuck: vCPU 0 (blocked in the kernel on the page): memory-fault plugin (org.vmmkit.test.fault-probe) could not deliver guest-physical page 0x800000"),
                "stderr: \(r.stderr)")
        #expect(r.stderr.hasSuffix("fault-probe: cannot write the trace\n"), "stderr: \(r.stderr)")
    }

    @Test("RAM outside a snapshot plugin's range (no zero-fill default) is the kernel's demand-zero RAM: the read gives 0, the snapshot's page its byte")
    func outsideSnapshotReadsZero() throws {
        var page = [UInt8](repeating: 0, count: 4096)
        page[0] = 0x2a
        let snapshot = try VMMProcess.temp("stuck.mem", page)
        defer { unlink(snapshot) }
        let plugins = ["--no-default-plugins", "--plugin", "MemoryFault,snapshot=\(snapshot),base=0x400000", "--plugin", "DebugExit,port=0xf4", "--stats"]
        // Outside the snapshot: 0, written to the debug-exit port (status 0 << 1 | 1); nothing fetched.
        let outside = try Self.run("outside.bin", Self.readPage800000, plugins)
        #expect(outside.status == 1)
        #expect(outside.stderr.contains("demand paging: 0 pages fetched"))
        // Inside it: the snapshot's 0x2a, fetched lazily (status 0x2a << 1 | 1).
        var inside = Self.readPage800000
        inside[3] = 0x40
        let r = try Self.run("inside.bin", inside, plugins)
        #expect(r.status == 0x55)
        #expect(r.stderr.contains("demand paging: 1 pages fetched"))
    }

    @Test("an instruction fetch from unmapped memory stops with KVM's internal error, status 12")
    func fetchFromUnmapped() throws {
        // mov $0xe0000000,%eax; jmp *%rax
        let r = try Self.run("fetch.bin", [0xb8, 0x00, 0x00, 0x00, 0xe0, 0xff, 0xe0])
        #expect(r.status == 12)
        #expect(r.stderr == "vmm: vCPU 0: KVM internal error: emulation failure (suberror 1), data [0x0, 0x1000, 0x0, 0x0, 0x0, 0x0] at RIP 0xe0000000\n")
    }

    @Test("a huge string PIO (rep outsb, 1 MiB) to an unclaimed port under --strict-io stops at its first element: status 18")
    func hugeStringPIOUnclaimed() throws {
        // mov $0x100000,%rcx; mov $0x100000,%esi; mov $0x99,%dx; rep outsb
        let r = try Self.run("outs.bin", [0x48, 0xc7, 0xc1, 0x00, 0x00, 0x10, 0x00, 0xbe, 0x00, 0x00, 0x10, 0x00,
                                          0x66, 0xba, 0x99, 0x00, 0xf3, 0x6e], ["--strict-io"])
        #expect(r.status == 18)
        #expect(r.stderr == "vmm: vCPU 0: unhandled PIO write of 0x48 (1 byte x1) at port 0x99, vCPU 0 at RIP 0x100010\n")
    }

    @Test("a long string PIO (rep outsb, 16 KiB) to the console arrives whole, then the guest exits")
    func longStringPIOClaimed() throws {
        // mov $0x4000,%rcx; mov $0x100000,%esi; mov $0x3f8,%dx; rep outsb; xor %eax,%eax; out %al,$0xf4; hlt
        let code: [UInt8] = [0x48, 0xc7, 0xc1, 0x00, 0x40, 0x00, 0x00, 0xbe, 0x00, 0x00, 0x10, 0x00,
                             0x66, 0xba, 0xf8, 0x03, 0xf3, 0x6e, 0x31, 0xc0, 0xe6, 0xf4, 0xf4]
        let console = NSTemporaryDirectory() + "vmm-outs-\(getpid()).txt"
        defer { unlink(console) }
        let r = try Self.run("outs-console.bin", code, ["--serial", "file:\(console)"])
        #expect(r.status == 1)
        #expect(r.stderr == "")
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: console)))
        #expect(written == code + [UInt8](repeating: 0, count: 0x4000 - code.count))
    }

    @Test("an endless loop of exits (polling the UART) under --max-seconds: status 16")
    func endlessLoop() throws {
        // mov $0x3fd,%dx; 1: in (%dx),%al; jmp 1b
        let r = try Self.run("poll.bin", [0x66, 0xba, 0xfd, 0x03, 0xec, 0xeb, 0xfd], ["--max-seconds", "0.3", "--serial", "none"])
        #expect(r.status == 16)
        #expect(r.stderr == "vmm: stopped after --max-seconds 0.3\n")
    }

    @Test("a write to a read-only slot is an MMIO exit: unhandled, named, and the ROM keeps its bytes")
    func writeToReadOnlySlot() throws {
        let guest = try TestGuest("hlt")
        try guest.vm.memory.addRegion(name: "rom", guestAddress: 0x300000, size: 0x1000, readOnly: true)
        try guest.vm.memory.write(0x300000, UInt32(0x5a5a_5a5a))
        // mov $0x300000,%eax; mov (%rax),%ebx; movl $0x1234,(%rax); hlt
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [0xb8, 0x00, 0x00, 0x30, 0x00, 0x8b, 0x18,
                                                               0xc7, 0x00, 0x34, 0x12, 0x00, 0x00, 0xf4])
        let reason = try guest.run()
        #expect(reason == .unhandled("unhandled MMIO write of 0x1234 (4 bytes) at guest-physical 0x300000, vCPU 0 at RIP 0x1000d"))
        #expect(try guest.vcpu.registers().rbx == 0x5a5a_5a5a) // reads come from the slot
        #expect(try guest.vm.memory.read(0x300000, as: UInt32.self) == 0x5a5a_5a5a)
    }

    @Test("guest addresses outside RAM handed to every host service get error codes, and the guest runs on",
          arguments: [(0xffff_ffff_ffff_fff8, 8), (0x1ff_ffc, 8), (0x1_0000_0000, 8), (0xd000_0000, 4),
                      (0x1000, UInt64.max), (0x1000, 1 << 63)] as [(UInt64, UInt64)])
    func hostServicesOutsideRAM(gpa: UInt64, length: UInt64) throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        try host.load(PluginFixtures.fixture("GPA"))
        // mov $0x5b0,%dx; out %al,%dx; hlt  (RBX = gpa, RCX = length)
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [0x66, 0xba, 0xb0, 0x05, 0xee, 0xf4])
        var regs = try guest.vcpu.registers()
        regs.rbx = gpa
        regs.rcx = length
        try guest.vcpu.setRegisters(regs)
        #expect(try guest.run() == .halted)
        let after = try guest.vcpu.registers()
        let code = { (v: UInt64) in Int32(truncatingIfNeeded: v) }
        let expected: Int32 = length > UInt64(Int.max) ? -EINVAL : -EFAULT
        #expect(code(after.rax) == expected) // read_guest
        #expect(code(after.rdx) == expected) // write_guest
        #expect(code(after.rsi) == -ENODEV)  // pager/1 install_page: no pager in this VM
        #expect(after.rdi == 1) // async_pf/1 raise: VMM_NOT_MINE, nobody handles it
    }

    @Test("the same services with an address inside RAM succeed (the fixture really calls them)")
    func hostServicesInsideRAM() throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        try host.load(PluginFixtures.fixture("GPA"))
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, [0x66, 0xba, 0xb0, 0x05, 0xee, 0xf4])
        try guest.vm.memory.write(0x30000, UInt64(0x1122_3344_5566_7788))
        var regs = try guest.vcpu.registers()
        regs.rbx = 0x30000
        regs.rcx = 8
        try guest.vcpu.setRegisters(regs)
        #expect(try guest.run() == .halted)
        let after = try guest.vcpu.registers()
        #expect(after.rax == 0 && after.rdx == 0)
        #expect(try guest.vm.memory.read(0x30000, as: UInt64.self) == 0x1122_3344_5566_7788)
    }
}

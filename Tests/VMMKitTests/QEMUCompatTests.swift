import Foundation
import Testing
import VMMKit
import VMMLoader

/// Guests written for `qemu-system-x86_64 -kernel`, run unmodified by `vmm run`
/// (issue 13). The kernels are Examples/GuestImages/qemu, built by scripts/build-guests.
@Suite("QEMU -kernel compatibility on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct QEMUCompatTests {
    static let halfMinute = "30"

    @Test("one vCPU has a local APIC: the LAPIC timer interrupts a guest in HLT; `cli; hlt` then ends the run with status 0")
    func lapicTimer() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("lapic_timer.elf"), "--max-seconds", Self.halfMinute])
        #expect(r.stdout == "lapic timer: 3 interrupts on vector 0x40\n")
        #expect(r.stderr == "")
        #expect(r.status == 0)
    }

    /// in $0x99,%al; mov %al,%bl; out %al,$0x98; mov $0xd0000000,%ecx; mov (%rcx),%eax;
    /// mov %eax,(%rcx); and %bl,%al; out %al,$0xf4 (debug-exit with the AND of both reads); hlt
    static let unassignedProbe: [UInt8] = [0xe4, 0x99, 0x88, 0xc3, 0xe6, 0x98, 0xb9, 0x00, 0x00, 0x00, 0xd0,
                                           0x8b, 0x01, 0x89, 0x01, 0x20, 0xd8, 0xe6, 0xf4, 0xf4]

    @Test("unassigned I/O as QEMU answers it: a port reads all-ones, MMIO 0, writes dropped, counted per address in --stats and shown by --trace")
    func unassignedIO() throws {
        let probe = try VMMProcess.temp("unassigned.bin", Self.unassignedProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--stats", "--trace", "exits"])
        #expect(r.status == 1) // the port's 0xff and the MMIO's 0: debug-exit 0 (all-ones MMIO gave 0xff)
        #expect(r.stderr.contains("unassigned vcpu0 port=0x99 read as all-ones\n"))
        #expect(r.stderr.contains("unassigned vcpu0 mmio gpa=0xd0000000 read as 0\n"))
        #expect(r.stderr.contains("unassigned vcpu0 mmio gpa=0xd0000000 write dropped\n"))
        #expect(r.stderr.contains("""
            unassigned io write port=0x98: 1
            unassigned io read port=0x99: 1
            unassigned mmio read gpa=0xd0000000: 1
            unassigned mmio write gpa=0xd0000000: 1

            """))
    }

    @Test("--strict-io and the config key strictIO keep the stop with status 18")
    func strictIO() throws {
        let probe = try VMMProcess.temp("strict.bin", Self.unassignedProbe)
        let flag = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--strict-io"])
        #expect(flag.status == 18)
        #expect(flag.stderr == "vmm: vCPU 0: unhandled PIO read (1 byte x1) at port 0x99, vCPU 0 at RIP 0x100000\n")
        let config = try VMMProcess.temp("strict.json", Array("{\"strictIO\": true, \"loadAddr\": \"0x100000\"}".utf8))
        let viaConfig = try VMMProcess.run(["run", "--config", config, probe])
        #expect(viaConfig.status == 18 && viaConfig.stderr == flag.stderr)
    }

    /// mov $0xcf9,%dx; mov $6,%al; out %al,(%dx); jmp . (a reset as Linux's reboot=pci and
    /// QEMU's ACPI reset register do it; a guest that gets no reset spins)
    static let resetProbe: [UInt8] = [0x66, 0xba, 0xf9, 0x0c, 0xb0, 0x06, 0xee, 0xeb, 0xfe]

    /// mov $0xcf9,%dx; in (%dx),%al; mov %al,%bl; mov $0x0a,%al; out %al,(%dx) (bits 1 and 3,
    /// no reset); in (%dx),%al; shl $4,%al; or %bl,%al; out %al,$0xf4 (debug-exit with
    /// (second read << 4) | first read); hlt
    static let resetControlProbe: [UInt8] = [0x66, 0xba, 0xf9, 0x0c, 0xec, 0x88, 0xc3, 0xb0, 0x0a, 0xee, 0xec,
                                             0xc0, 0xe0, 0x04, 0x08, 0xd8, 0xe6, 0xf4, 0xf4]

    @Test("a guest reset through port 0xcf9 (PIIX3's reset control) ends the run with status 0, as QEMU's -no-reboot does, and says so")
    func resetEndsRun() throws {
        let probe = try VMMProcess.temp("reset.bin", Self.resetProbe)
        for extra in [[], ["--no-default-plugins", "--plugin", "DebugExit"], ["--vcpus", "2"]] {
            let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "20"] + extra)
            #expect(r.status == 0, "\(extra): \(r.stderr)")
            #expect(r.stderr == "vmm: the guest asked for a reset (vCPU 0 wrote 0x6 to port 0xcf9); vmm does not reboot, so the run ends, as QEMU's with -no-reboot\n", "\(extra)")
        }
    }

    /// 1: in $0x64,%al; test $2,%al; jnz 1b (wait until the controller takes input);
    /// mov $0xfe,%al; out %al,$0x64 (pulse the reset line); jmp . (the usual keyboard-
    /// controller reset of Linux's reboot=kbd and of unikernels)
    static let kbdResetProbe: [UInt8] = [0xe4, 0x64, 0xa8, 0x02, 0x75, 0xfa, 0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe]

    /// The controller's own commands, each reply polled from the output buffer: self-test
    /// (0xaa), the configuration byte (0x20), a new one (0x60, then 0x45 to port 0x60),
    /// the output port (0xd0); then the output port written with bit 0 clear (0xd1, 0xce):
    /// a reset. Each `in` shows in `--trace exits` with what the guest received.
    static let kbdCommandProbe: [UInt8] = [
        0xb0, 0xaa, 0xe6, 0x64, 0xe4, 0x64, 0xe4, 0x60, 0xe4, 0x64, // self-test: status, 0x55, status
        0xb0, 0x20, 0xe6, 0x64, 0xe4, 0x60, // configuration byte
        0xb0, 0x60, 0xe6, 0x64, 0xb0, 0x45, 0xe6, 0x60, 0xb0, 0x20, 0xe6, 0x64, 0xe4, 0x60, // write it, read it back
        0xb0, 0xd0, 0xe6, 0x64, 0xe4, 0x60, // output port
        0xb0, 0xd1, 0xe6, 0x64, 0xb0, 0xce, 0xe6, 0x60, 0xeb, 0xfe, // output port bit 0 clear: reset
    ]

    @Test("the keyboard controller's reset (command 0xfe, or output-port bit 0 cleared) ends the run as a reset; its commands answer as QEMU's i8042")
    func keyboardControllerReset() throws {
        let reset = try VMMProcess.temp("kbdreset.bin", Self.kbdResetProbe)
        let r = try VMMProcess.run(["run", reset, "--load-addr", "0x100000", "--max-seconds", "20"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "vmm: the guest asked for a reset (vCPU 0 wrote 0xfe to port 0x64); vmm does not reboot, so the run ends, as QEMU's with -no-reboot\n")

        let commands = try VMMProcess.temp("kbdcmd.bin", Self.kbdCommandProbe)
        let c = try VMMProcess.run(["run", commands, "--load-addr", "0x100000", "--max-seconds", "20", "--strict-io", "--trace", "exits"])
        #expect(c.status == 0, "\(c.stderr)")
        let reads = c.stderr.split(separator: "\n").filter { $0.contains(" io in ") }.map { line in
            line.split(separator: " ").first { $0.hasPrefix("data=") }.map(String.init) ?? String(line)
        }
        // Status 0x1d: input (command) last, self-test passed, output full; then 0x55; then
        // 0x1c, the buffer read. Configuration 0x61 as SeaBIOS leaves it, then 0x45; output port 0xcf.
        #expect(reads == ["data=0x1d", "data=0x55", "data=0x1c", "data=0x61", "data=0x45", "data=0xcf"])
        #expect(c.stderr.hasSuffix("vmm: the guest asked for a reset (vCPU 0 wrote 0xce to port 0x60); vmm does not reboot, so the run ends, as QEMU's with -no-reboot\n"))
    }

    /// mov $0x604,%dx; in (%dx),%ax; mov %eax,%ebx; mov $0x2001,%ax; out %ax,(%dx) (SCI_EN,
    /// then SLP_TYP 0 with SLP_EN: the ACPI soft-off QEMU's pc and q35 machines take at
    /// port 0x604); mov $0x33,%al; out %al,$0xf4 (status 0x67 if the machine ran on); hlt
    static let powerOffProbe: [UInt8] = [0x66, 0xba, 0x04, 0x06, 0x66, 0xed, 0x89, 0xc3, 0x66, 0xb8, 0x01, 0x20,
                                         0x66, 0xef, 0xb0, 0x33, 0xe6, 0xf4, 0xf4]

    /// mov $0x604,%dx; mov $0x01,%al; out %al,(%dx) (SCI_EN, the low byte alone); mov $0x0c,%al;
    /// inc %dx; out %al,(%dx) (SLP_TYP 3 into the high byte, no SLP_EN: no sleep); dec %dx;
    /// in (%dx),%ax; xor %ah,%al; out %al,$0xf4 (0x0c ^ 0x01 = 0x0d: both bytes kept); hlt
    static let pmControlProbe: [UInt8] = [0x66, 0xba, 0x04, 0x06, 0xb0, 0x01, 0xee, 0xb0, 0x0c, 0x66, 0xff, 0xc2,
                                          0xee, 0x66, 0xff, 0xca, 0x66, 0xed, 0x30, 0xe0, 0xe6, 0xf4, 0xf4]

    /// mov $0x55,%al; out %al,$0x80 (a POST code, Linux's I/O delay); out %al,$0xf0 (the
    /// FPU error cleared); in $0xf0,%al; mov %al,%bl; in $0x80,%al; and %bl,%al;
    /// out %al,$0xf4 (both read 0xff: status 255); hlt
    static let postPortProbe: [UInt8] = [0xb0, 0x55, 0xe6, 0x80, 0xe6, 0xf0, 0xe4, 0xf0, 0x88, 0xc3, 0xe4, 0x80,
                                         0x20, 0xd8, 0xe6, 0xf4, 0xf4]

    @Test("ports 0x80 (POST codes, Linux's I/O delay) and 0xf0 (FPU error) are devices, as QEMU's ioport80 and ioportF0: with --strict-io the guest runs on and reads 0xff")
    func postPort() throws {
        let probe = try VMMProcess.temp("post.bin", Self.postPortProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "20", "--strict-io"])
        #expect(r.status == 255, "\(r.stderr)")
        #expect(r.stderr == "")
    }

    @Test("ACPI soft-off (SLP_EN with SLP_TYP 0 to port 0x604, as on QEMU's pc and q35) ends the run with status 0, quietly, as QEMU exits; the register keeps its other bits")
    func acpiPowerOff() throws {
        let probe = try VMMProcess.temp("poweroff.bin", Self.powerOffProbe)
        for extra in [[], ["--vcpus", "2"], ["--strict-io"]] {
            let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "20"] + extra)
            #expect(r.status == 0, "\(extra): \(r.stderr)")
            #expect(r.stderr == "", "\(extra)")
        }
        let control = try VMMProcess.temp("pm1cnt.bin", Self.pmControlProbe)
        let c = try VMMProcess.run(["run", control, "--load-addr", "0x100000", "--max-seconds", "20", "--strict-io"])
        #expect(c.status == (0x0d << 1) | 1, "\(c.stderr)")
    }

    /// Waits for register A's "update in progress" to clear, then reads register B, CMOS
    /// 0x35 (memory between 16 MiB and 4 GiB, high byte), 0x5f (CPUs - 1), the century and
    /// the year; sets the year to 99 and reads it back; debug-exit 0x10 (status 33).
    static let rtcProbe: [UInt8] = [
        0xb0, 0x0a, 0xe6, 0x70, 0xe4, 0x71, 0xa8, 0x80, 0x75, 0xf6, 0xb0, 0x0b,
        0xe6, 0x70, 0xe4, 0x71, 0xb0, 0x35, 0xe6, 0x70, 0xe4, 0x71, 0xb0, 0x5f,
        0xe6, 0x70, 0xe4, 0x71, 0xb0, 0x32, 0xe6, 0x70, 0xe4, 0x71, 0xb0, 0x09,
        0xe6, 0x70, 0xe4, 0x71, 0xb0, 0x99, 0xe6, 0x71, 0xe4, 0x71, 0xb0, 0x10,
        0xe6, 0xf4, 0xf4,
    ]

    @Test("the CMOS RTC as QEMU's: update-in-progress clears, BCD time from the host's UTC clock, the guest can set it, CMOS memory sizes and CPU count")
    func cmosClock() throws {
        func bcd(_ v: Int) -> String { "data=0x" + String((v / 10) << 4 | v % 10, radix: 16) }
        func utcYear() -> Int { var t = time(nil); var parts = tm(); gmtime_r(&t, &parts); return Int(parts.tm_year) + 1900 }
        let probe = try VMMProcess.temp("rtc.bin", Self.rtcProbe)
        let before = utcYear()
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--vcpus", "2", "--memory", "64M",
                                    "--max-seconds", "20", "--strict-io", "--trace", "exits"])
        let after = utcYear()
        #expect(r.status == 33, "\(r.stderr)")
        // Only the trace: the clock makes no system call the vCPU's seccomp list refuses
        // (glibc's gmtime_r opened /etc/localtime there).
        #expect(r.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("exit vcpu") }, "\(r.stderr)")
        var reads = r.stderr.split(separator: "\n").filter { $0.contains(" io in port=0x71 ") }.map { line in
            line.split(separator: " ").first { $0.hasPrefix("data=") }.map(String.init) ?? String(line)
        }
        // The probe reads register A until "update in progress" (0x80) is clear: in the
        // last 244 µs of a second it is set.
        while reads.first == "data=0xa6" { reads.removeFirst() }
        let years = Set([before, after]).map { [bcd($0 / 100), bcd($0 % 100)] }
        #expect(years.contains { reads == ["data=0x26", "data=0x2", "data=0x3", "data=0x1"] + $0 + ["data=0x99"] }, "\(reads)")
    }

    @Test("port 0xcf9 reads 0 at first and keeps only bit 1 (hard reset) of a write without bit 2, as QEMU's PIIX3")
    func resetControlRegister() throws {
        let probe = try VMMProcess.temp("rcr.bin", Self.resetControlProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "20", "--strict-io"])
        #expect(r.status == (0x20 << 1) | 1, "\(r.stderr)")
        #expect(r.stderr == "")
    }

    /// in $0x92,%al; mov %al,%bl; mov $0x42,%al; out %al,$0x92 (A20 and bit 6, no reset);
    /// in $0x92,%al; or %bl,%al; out %al,$0xf4 (debug-exit with the OR of both reads:
    /// unassigned, the first read's all-ones would show); hlt
    static let portAProbe: [UInt8] = [0xe4, 0x92, 0x88, 0xc3, 0xb0, 0x42, 0xe6, 0x92, 0xe4, 0x92,
                                      0x08, 0xd8, 0xe6, 0xf4, 0xf4]

    /// in $0x92,%al; or $1,%al; out %al,$0x92; jmp . (the fast reset of System Control Port A)
    static let portAResetProbe: [UInt8] = [0xe4, 0x92, 0x0c, 0x01, 0xe6, 0x92, 0xeb, 0xfe]

    /// 1: register A until "update in progress" is set (the last 244 µs of a second); 2:
    /// until it clears (the second has begun); register C twice: "update ended" (0x10),
    /// then clear; debug-exit with the first read OR the second shifted left by one.
    static let rtcUpdateProbe: [UInt8] = [
        0xb0, 0x0a, 0xe6, 0x70, 0xe4, 0x71, 0xa8, 0x80, 0x74, 0xf6, 0xb0, 0x0a,
        0xe6, 0x70, 0xe4, 0x71, 0xa8, 0x80, 0x75, 0xf6, 0xb0, 0x0c, 0xe6, 0x70,
        0xe4, 0x71, 0x88, 0xc3, 0xe4, 0x71, 0xd0, 0xe0, 0x08, 0xd8, 0xe6, 0xf4,
        0xf4,
    ]

    @Test("the RTC polled as QEMU's: 'update in progress' rises before each second and falls at it; register C then reads 'update ended' once")
    func rtcUpdateCycle() throws {
        let probe = try VMMProcess.temp("rtcupdate.bin", Self.rtcUpdateProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "20", "--strict-io"])
        #expect(r.status == (0x10 << 1) | 1, "\(r.stderr)")
        #expect(r.stderr == "")
    }

    @Test("the RTC's periodic, update-ended and alarm interrupts reach a QEMU-style kernel through IRQ 8 and the IOAPIC; register C acknowledges them")
    func rtcInterrupts() throws {
        for extra in [[], ["--vcpus", "2"]] {
            let r = try VMMProcess.run(["run", VMMProcess.guest("rtc_irq.elf"), "--max-seconds", Self.halfMinute] + extra)
            #expect(r.stdout == Self.rtcInterruptOutput, "\(extra)")
            #expect(r.stderr == "", "\(extra)")
            #expect(r.status == (0x19 << 1) | 1, "\(extra)")
        }
    }

    @Test("the RTC set as Linux sets it: fields held while SET is on, taken together when it clears (31 January, then February 15: not March); register C counts afresh when the clock is moved back or forward")
    func rtcSetTime() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("rtc_set.elf"), "--max-seconds", Self.halfMinute, "--strict-io"])
        #expect(r.stdout == "rtc set: 1418020F 0A141E86\nrtc set back: 00000010\nrtc set forward: 00000000\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x1b << 1) | 1)
    }

    static let rtcInterruptOutput = "rtc periodic irq flags: 000000C0\nrtc update irq flags: 00000090\nrtc alarm irq flags: 000000A0\n"

    @Test("port 0x92 (System Control Port A) reads 0 at first and keeps what is written; setting bit 0 resets, as QEMU's port92")
    func systemControlPortA() throws {
        let probe = try VMMProcess.temp("port92.bin", Self.portAProbe)
        let r = try VMMProcess.run(["run", probe, "--load-addr", "0x100000", "--max-seconds", "20", "--strict-io"])
        #expect(r.status == (0x42 << 1) | 1, "\(r.stderr)")
        #expect(r.stderr == "")
        let reset = try VMMProcess.temp("port92reset.bin", Self.portAResetProbe)
        for extra in [[], ["--no-default-plugins", "--plugin", "DebugExit"]] {
            let s = try VMMProcess.run(["run", reset, "--load-addr", "0x100000", "--max-seconds", "20"] + extra)
            #expect(s.status == 0, "\(extra): \(s.stderr)")
            #expect(s.stderr == "vmm: the guest asked for a reset (vCPU 0 wrote 0x1 to port 0x92); vmm does not reboot, so the run ends, as QEMU's with -no-reboot\n", "\(extra)")
        }
    }

    @Test("PCI configuration mechanism #1 by default: a bus scan finds QEMU's i440FX host bridge and PIIX3's ISA bridge and IDE controller; read-only fields ignore writes")
    func pciScan() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("pciscan.elf"), "--max-seconds", Self.halfMinute])
        // The IDE function in compatibility mode (class 01:01:00), no bus-master BAR.
        #expect(r.stdout == "00:00.0 8086:1237 class 060000\n00:01.0 8086:7000 class 060100\n00:01.1 8086:7010 class 010100\n"
            + "functions: 3\nafter writes: ids 12378086 command 0007\nisa header 80, ide bar4 00000000\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x15 << 1) | 1)
        // Without the default plugins the ports are unassigned: all-ones, nothing found.
        let bare = try VMMProcess.run(["run", VMMProcess.guest("pciscan.elf"), "--no-default-plugins",
                                       "--plugin", "DebugExit", "--plugin", "UART,output=stdout"])
        #expect(bare.stdout.hasPrefix("functions: 0\n"))
    }

    @Test("pc-testdev by name: scratch port, MMIO scratch, and IRQ line 10 through the IOAPIC to vector 0x50")
    func testDevice() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("testdev.elf"), "--plugin", "PCTestDev", "--max-seconds", Self.halfMinute])
        #expect(r.stdout == "scratch port: 12345678 mmio scratch: CAFEF00D\nirq line 10 -> ioapic -> vector 0x50\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x17 << 1) | 1)
        // Without an in-kernel irqchip the IRQ lines cannot work: the plugin says so.
        let none = try VMMProcess.run(["run", VMMProcess.guest("testdev.elf"), "--plugin", "PCTestDev", "--irqchip", "none"])
        #expect(none.status == 8)
        #expect(none.stderr.contains("pc-testdev: IRQ lines need the in-kernel irqchip"))
    }

    @Test("pc-testdev's port 0xe4 is also the typed-hypercall port: loading both is refused, naming both owners, in either order")
    func testDeviceHypercallConflict() throws {
        let hypercalls = VMMProcess.root.appendingPathComponent(".build/plugins/fixtures/libHypercalls.so").path
        let image = VMMProcess.guest("testdev.elf")
        let a = try VMMProcess.run(["run", image, "--plugin", "PCTestDev", "--plugin", hypercalls])
        #expect(a.status == 8)
        #expect(a.stderr.contains("needs the hypercall port: VMMKit typed hypercalls: port range [0xe4..<0xe5] overlaps [0xe4..<0xe5] owned by org.vmmkit.pc-testdev 'pc-testdev flush-page'"))
        let b = try VMMProcess.run(["run", image, "--plugin", hypercalls, "--plugin", "PCTestDev"])
        #expect(b.status == 8)
        #expect(b.stderr.contains("'pc-testdev flush-page'") && b.stderr.contains("owned by VMMKit typed hypercalls"))
        #expect(a.stdout.isEmpty && b.stdout.isEmpty)
    }

    @Test("--memory 5G: 3 GiB below the hole, 2 GiB from 4 GiB, in the Multiboot memory map and fw_cfg; the guest writes RAM at 4 GiB")
    func memoryAbove4G() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("highmem.elf"), "--memory", "5G", "--max-seconds", Self.halfMinute])
        // The Multiboot info as QEMU's: flags 0x24f (memory, boot device 0x8000ffff, command
        // line, modules, memory map, boot loader name), the loader naming itself.
        #expect(r.stdout == """
            multiboot flags 0000024F, boot device 8000FFFF, loader VMMKit
            mem_lower 0000027F mem_upper 002FFB80
            mmap 0000000000000000 len 000000000009FC00 type 1
            mmap 000000000009FC00 len 0000000000000400 type 2
            mmap 00000000000F0000 len 0000000000010000 type 2
            mmap 0000000000100000 len 00000000BFEE0000 type 1
            mmap 00000000BFFE0000 len 0000000000020000 type 2
            mmap 00000000FEFFC000 len 0000000000004000 type 2
            mmap 00000000FFFC0000 len 0000000000040000 type 2
            mmap 0000000100000000 len 0000000080000000 type 1
            fw_cfg ram 0000000140000000
            at 0xC8000000: 00000000
            at 4 GiB: 600DCAFE 5CA1AB1E

            """)
        #expect(r.status == (0x19 << 1) | 1)
        // With the default 128M (QEMU's) there is no RAM at 4 GiB: the same stores are
        // dropped, the loads read 0 (unassigned MMIO, as under QEMU).
        let small = try VMMProcess.run(["run", VMMProcess.guest("highmem.elf"), "--max-seconds", Self.halfMinute])
        #expect(small.stdout.hasSuffix("fw_cfg ram 0000000008000000\nat 0xC8000000: 00000000\nat 4 GiB: 00000000 00000000\n"))
        #expect(!small.stdout.contains("mmap 0000000100000000"))
    }

    @Test("--irqchip none opts out: the first LAPIC access is an exit nobody handles")
    func irqchipNone() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("lapic_timer.elf"), "--irqchip", "none", "--strict-io"])
        #expect(r.status == 18)
        #expect(r.stderr.contains("at guest-physical 0xfee000f0"))
    }

    @Test("a VM stops as a whole: vCPU 0's triple fault stops the two APs waiting in HLT at once, each reason printed")
    func stopAsAWhole() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("stopall.elf"), "--vcpus", "3", "--max-seconds", "60"])
        #expect(r.stdout == "all APs up; vCPU 0 faults\n")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines.first == "vmm: vCPU 0: shutdown (triple fault)")
        for ap in 1...2 {
            // Halted, normally; an AP the host has not scheduled since it checked in may still be running.
            #expect(lines.contains { $0.hasPrefix("vmm: vCPU \(ap): stopped with the machine (was halted at RIP 0x")
                || $0.hasPrefix("vmm: vCPU \(ap): stopped with the machine (was running at RIP 0x") })
        }
        #expect(r.status == 10) // the error's status, not --max-seconds' 16
    }
}

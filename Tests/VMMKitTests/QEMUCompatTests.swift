import Foundation
import Testing
import VMMKit
import VMMLoader

/// Guests written for `qemu-system-x86_64 -kernel`, run unmodified by `vmm run`
/// (issue 13). The kernels are Examples/GuestImages/qemu, built by scripts/build-guests.
@Suite("QEMU -kernel compatibility on real KVM", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct QEMUCompatTests {
    static let halfMinute = "30"

    @Test("--append takes a value that begins with '-', as QEMU's -append does")
    func appendDash() throws {
        let image = VMMProcess.guest("multiboot.elf")
        let r = try VMMProcess.run(["run", image, "--append", "-flag value --other"])
        #expect(r.stdout.hasPrefix("cmdline: \(image) -flag value --other\n"))
        #expect(r.status == (0x10 << 1) | 1)
    }

    @Test("a kernel at 0x8000 loads; the loader's tables and Multiboot info go elsewhere; it visits real mode and comes back")
    func kernelAt0x8000() throws {
        let image = VMMProcess.guest("lowboot.elf")
        let r = try VMMProcess.run(["run", image, "--append", "low", "--max-seconds", Self.halfMinute])
        #expect(r.stdout == "protected mode at 0x8000\nreal mode\nprotected mode again, cmdline: \(image) low\n")
        #expect(r.stderr == "")
        #expect(r.status == (0x13 << 1) | 1)
    }

    @Test("the loader moves its 64 KiB table window off an image in low memory, and refuses only the first page")
    func tableWindowMoves() throws {
        let elf = try [UInt8](Data(contentsOf: URL(fileURLWithPath: VMMProcess.guest("hello64.elf"))))
        let text = Array(elf[0x1000..<min(elf.count, 0x1100)]) // position-independent hello
        let low = try ImageLoaderTests.boot(ImageRequest(path: "hello.bin", loadAddress: 0x2000), bytes: text)
        #expect(low.entry == .longMode(entry: 0x2000, stack: (4 << 20) - 0x10, tables: 0x10000))
        #expect(String(decoding: low.console, as: UTF8.self) == "Hello from an ELF64 guest\n")
        #expect(low.stop == .guestExit(code: 0))
        // An image over [0x10000, 0x20000) too: the next free window.
        let wide = try ImageLoaderTests.boot(ImageRequest(path: "wide.bin", loadAddress: 0x2000),
                                             bytes: text + [UInt8](repeating: 0xf4, count: 0x10000))
        #expect(wide.entry == .longMode(entry: 0x2000, stack: (4 << 20) - 0x10, tables: 0x20000))
        #expect(wide.stop == .guestExit(code: 0))

        let vm = try KVM.open().createVM()
        defer { vm.close() }
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: 2 << 20)
        #expect(throws: LoaderError(.image, "x.bin: flat image [0x800..<0x803] overlaps the first page [0x0..<0x1000] (real-mode interrupt vectors)")) {
            try ImageLoader(memory: vm.memory, ramSize: 2 << 20).load([1, 2, 3], ImageRequest(path: "x.bin", loadAddress: 0x800))
        }
    }

    @Test("one vCPU has a local APIC: the LAPIC timer interrupts a guest in HLT; `cli; hlt` then ends the run with status 0")
    func lapicTimer() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("lapic_timer.elf"), "--max-seconds", Self.halfMinute])
        #expect(r.stdout == "lapic timer: 3 interrupts on vector 0x40\n")
        #expect(r.stderr == "")
        #expect(r.status == 0)
    }

    @Test("--irqchip none opts out: the first LAPIC access is an exit nobody handles")
    func irqchipNone() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("lapic_timer.elf"), "--irqchip", "none"])
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
            #expect(lines.contains { $0.hasPrefix("vmm: vCPU \(ap): stopped with the machine (was halted at RIP 0x") })
        }
        #expect(r.status == 10) // the error's status, not --max-seconds' 16
    }
}

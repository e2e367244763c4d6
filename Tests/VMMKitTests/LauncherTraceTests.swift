import Foundation
import Testing

/// `vmm run --trace exits`: one line per exit, once handled, with what reads returned
/// and which handler took it.
@Suite("vmm launcher: --trace exits", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherTraceTests {
    @Test("reads show the data the guest got (IN, string IN, MMIO read) and every line names its handler")
    func readsAndHandlers() throws {
        let guest: [UInt8] = [
            0x66, 0xba, 0x10, 0x05, 0x66, 0x31, 0xc0, 0x66, 0xef,  // out 0 -> port 0x510 (fw_cfg: signature)
            0x66, 0xba, 0x11, 0x05, 0xec,                          // in al, 0x511: 'Q'
            0xbf, 0x00, 0x00, 0x20, 0x00, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xf3, 0x6c, // rep insb x3 to 0x200000: "EMU"
            0xb8, 0x08, 0x10, 0x00, 0xd0,                          // mov eax, 0xd0001008 (scratch register 2)
            0xc7, 0x00, 0xcd, 0xab, 0x34, 0x12,                    // mov dword [rax], 0x1234abcd
            0x8b, 0x18,                                            // mov ebx, [rax]
            0xf4,                                                  // hlt
        ]
        let image = try VMMProcess.temp("trace-reads.bin", guest)
        // --irqchip none: HLT then exits to user space, so the last line is the halt.
        let r = try VMMProcess.run(["run", image, "--load-addr", "0x100000", "--trace", "exits", "--irqchip", "none",
                                    "--plugin", "ScratchDevice,port=0x600,mmio=0xd0001000"])
        #expect(r.status == 0)
        let scratch = "org.vmmkit.scratch-device 'scratch-mmio' (\(VMMProcess.root.path)/.build/debug/libScratchDevice.so)"
        #expect(r.stderr == """
            exit vcpu0 io out port=0x510 size=2 count=1 data=0x0 by fw_cfg
            exit vcpu0 io in port=0x511 size=1 count=1 data=0x51 by fw_cfg
            exit vcpu0 io in port=0x511 size=1 count=3 data=0x45,0x4d,0x55 by fw_cfg
            exit vcpu0 mmio write gpa=0xd0001008 len=4 data=0x1234abcd by \(scratch)
            exit vcpu0 mmio read gpa=0xd0001008 len=4 data=0x1234abcd by \(scratch)
            exit vcpu0 hlt by default => stop: halted

            """)
    }

    @Test("the last exit of a guest is its debug-exit write, taken by the DebugExit plugin, named with its library")
    func pluginOwner() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--trace", "exits", "--serial", "none"])
        #expect(r.status == 1)
        let last = r.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last == "exit vcpu0 io out port=0xf4 size=1 count=1 data=0x0 by org.vmmkit.debug-exit 'debug-exit' "
            + "(\(VMMProcess.root.path)/.build/plugins/libDebugExit.so)")
    }

    @Test("a handler's name and failure text holding a newline and terminal escapes are traced on one line, escaped")
    func hostileHandlerText() throws {
        let fixture = VMMProcess.root.appendingPathComponent(".build/plugins/fixtures/libC_FAIL.so").path
        let guest = try VMMProcess.temp("trace-escape.bin", [0x66, 0xba, 0x30, 0x05, 0xb0, 0x07, 0xee, 0xf4]) // out 7 -> 0x530; hlt
        let r = try VMMProcess.run(["run", guest, "--load-addr", "0x100000", "--trace", "exits", "--plugin", "\(fixture),escape"])
        #expect(r.status == 8)
        #expect(!r.stderr.contains("\u{1b}") && !r.stderr.contains("\u{7}"), "\(r.stderr.debugDescription)")
        let owner = #"org.vmmkit.test.fixture 'fail\u{1b}]0;title\u{7}port' ("# + fixture + ")"
        let text = #"c-fixture: refused\n\u{1b}[2Jvmm: forged 7"#
        #expect(r.stderr == """
            exit vcpu0 io out port=0x530 size=1 count=1 data=0x7 by \(owner) => fail: \(owner): \(text)
            vmm: vCPU 0: handler failed: \(owner): \(text)

            """)
    }
}

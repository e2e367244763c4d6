import Glibc
import Testing
@testable import VMMKit

/// vCPU threads under the seccomp allow-list: a forbidden call from a plugin handler
/// is refused with EPERM and reported (vCPU, number, name); a plugin that declares it
/// at init gets it; a VM without a policy is unaffected. Fixture: guard_plugin.c.
@Suite("seccomp on vCPU threads", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct SeccompTests {
    /// mov $0x532,%dx; in %dx,%al (the handler's socket() result); mov %al,0x20000; hlt
    static let code: [UInt8] = [0x66, 0xba, 0x32, 0x05, 0xec, 0x88, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0xf4]

    func run(config: String = "", policy: (PluginHost) -> SeccompPolicy?) throws -> UInt8 {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, Self.code)
        try host.load(PluginFixtures.fixture("Guard"), config: config)
        guest.vm.setSeccomp(policy(host))
        #expect(try guest.run() == .halted)
        return try guest.vm.memory.read(0x20000, as: UInt8.self)
    }

    @Test("a syscall outside the allow-list from a plugin handler is refused with EPERM and reported with vCPU and name")
    func refused() throws {
        let before = Seccomp.refusedCount
        #expect(try run { _ in .vcpuDefault } == 0) // 0: socket() failed with EPERM
        #expect(Seccomp.refusedCount == before + 1)
        let last = try #require(Seccomp.recentRefusals.first)
        #expect(last.number == 41 && last.name == "socket" && last.vcpuID == 0)
        #expect(last.description == "vCPU 0 made system call 41 (socket): refused with EPERM")
    }

    @Test("a plugin that declares the call at init (seccomp/1) gets it")
    func declared() throws {
        let before = Seccomp.refusedCount
        #expect(try run(config: "seccomp_allow=1") { SeccompPolicy.vcpuDefault.allowing(numbers: $0.requestedSyscalls) } == 1)
        #expect(Seccomp.refusedCount == before)
    }

    @Test("without a policy the call succeeds; the errno action refuses without a report")
    func withoutAndSilent() throws {
        #expect(try run { _ in nil } == 1)
        let before = Seccomp.refusedCount
        var silent = SeccompPolicy.vcpuDefault
        silent.action = .errno
        #expect(try run { _ in silent } == 0)
        #expect(Seccomp.refusedCount == before)
    }

    @Test("names and numbers; the default list is what Docs/Seccomp.md documents")
    func table() throws {
        #expect(Seccomp.number(of: "ioctl") == 16 && Seccomp.name(of: 41) == "socket")
        #expect(Seccomp.number(of: "no_such_call") == nil)
        let doc = try String(contentsOfFile: PluginFixtures.root + "/Docs/Seccomp.md", encoding: .utf8)
        let documented = Set(doc.split(separator: "\n").filter { $0.hasPrefix("| `") }
            .compactMap { $0.split(separator: "`").dropFirst().first.map(String.init) })
        let names = Set(SeccompPolicy.vcpuDefault.allowed.compactMap { Seccomp.name(of: $0) })
        #expect(names == documented)
    }
}

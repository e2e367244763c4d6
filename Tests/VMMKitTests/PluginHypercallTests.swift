import Glibc
import Testing
@testable import VMMKit

@Suite("Typed hypercalls through libffi")
struct PluginHypercallTests {
    @Test("0 to 6 integer/pointer arguments round-trip: guest registers in, RAX out",
          .enabled(if: KVMAvailability.present, KVMAvailability.reason))
    func roundTrip() throws {
        let (guest, host) = try PluginFixtures.guest("plugin_hypercalls")
        defer { host.close() }
        try host.load(PluginFixtures.fixture("Hypercalls"))
        #expect(try guest.run() == .halted)
        let results = try (0..<8).map { try guest.vm.memory.read(TestGuest.scratch + UInt64($0 * 8), as: UInt64.self) }
        let expected: [UInt64] = [
            0x1122_3344_5566_7788, // u64()
            3000, // u64(u64)
            UInt64(bitPattern: -2), // i32(i32,i32), sign-extended
            0x102, // u64(u8,u16,u32): 0xff + 1 + 2, registers truncated to the declared types
            30, // four arguments: 1 + 2*2 + 3*3 + 4*4
            55, // five: ... + 5*5
            0x0102_0304_0506_07a7, // ptr into guest RAM (0x..0708) + 0x10 + 0x20 + 0x30 + 0x40 + i8 -1
            UInt64(bitPattern: Int64(-ENOSYS)), // an unregistered number
        ]
        #expect(results == expected)
    }

    @Test("the hypercall port already taken by another device: refused at registration, naming both",
          .enabled(if: KVMAvailability.present, KVMAvailability.reason))
    func portTaken() throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        try guest.dispatcher.registerPIO(port: 0xe4, owner: "my-device") { _, _ in .handled }
        let path = PluginFixtures.fixture("Hypercalls")
        let error = pluginError { () throws(PluginError) in try host.load(path) }
        #expect(error?.description == "plugin 'org.vmmkit.test.hypercalls' (\(path)): init failed: hypercalls: "
            + "org.vmmkit.test.hypercalls (\(path)): hypercall 100 needs the hypercall port: VMMKit typed hypercalls: "
            + "port range [0xe4..<0xe5] overlaps [0xe4..<0xe5] owned by my-device (an exclusive range cannot be shared)")
        #expect(host.plugins.isEmpty)
    }

    @Test("signature parsing: accepted forms and clear refusals")
    func parsing() {
        func parse(_ s: String) -> String {
            switch TypedHypercall.parse(s) {
            case let .success((ret, args)): "\(ret)(\(args.map { "\($0)" }.joined(separator: ",")))"
            case let .failure(e): String(e.message.split(separator: ";")[0])
            }
        }
        #expect(parse("void()") == "void()")
        #expect(parse(" u64 ( ptr , i8 ) ") == "u64(ptr,i8)")
        #expect(parse("i32(void)") == "i32()")
        #expect(parse("u64(u64,u64,u64,u64,u64,u64,u64)") == "bad hypercall signature 'u64(u64,u64,u64,u64,u64,u64,u64)': 7 arguments (at most 6 fit the registers)")
        #expect(parse("f32(u64)") == "bad hypercall signature 'f32(u64)': unknown return type 'f32'")
        #expect(parse("u64(u64,)") == "bad hypercall signature 'u64(u64,)': unknown type '' for argument 2")
        #expect(parse("u64") == "bad hypercall signature 'u64': no '(...)' argument list")
        #expect(parse("u64(void,u8)") == "bad hypercall signature 'u64(void,u8)': unknown type 'void' for argument 1")
    }
}

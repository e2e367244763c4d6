import CVMMPlugin
import Testing
@testable import VMMPluginKit

/// The SDK's views on the host's record and the trampolines the host calls: what a
/// Swift plugin's handler reads and writes, and what the host receives back.
@Suite("Plugin SDK: exit views and trampolines")
struct PluginExitViewTests {
    /// A PIO record over `bytes`, with a guard byte before and after the data.
    final class PIORecord {
        let record = UnsafeMutablePointer<vmm_exit_t>.allocate(capacity: 1)
        let buffer: UnsafeMutablePointer<UInt8>
        let length: Int
        init(size: UInt8, count: UInt32, bytes: [UInt8], isWrite: Bool = false) {
            length = bytes.count
            buffer = .allocate(capacity: bytes.count + 2)
            buffer.initialize(repeating: 0xee, count: bytes.count + 2)
            for (i, b) in bytes.enumerated() { buffer[i + 1] = b }
            record.initialize(to: vmm_exit_t())
            record.pointee.struct_size = UInt32(MemoryLayout<vmm_exit_t>.size)
            record.pointee.exit_class = VMM_EXIT_PIO.rawValue
            record.pointee.pio = vmm_exit_pio_t(port: 0x10, size: size, is_write: isWrite ? 1 : 0, count: count,
                                                data: buffer + 1)
        }
        var data: [UInt8] { (1...length).map { buffer[$0] } }
        var guards: [UInt8] { [buffer[0], buffer[length + 1]] }
        deinit { record.deallocate(); buffer.deallocate() }
    }

    @Test("elements of 1, 2 and 4 bytes read little endian and write back truncated", arguments: [1, 2, 4])
    func elements(size: Int) {
        let bytes = (0..<(3 * size)).map { UInt8(0x11 &* ($0 + 1)) }
        let r = PIORecord(size: UInt8(size), count: 3, bytes: bytes)
        let io = PIOExit(record: r.record)
        for i in 0..<3 {
            let expected = (0..<size).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[i * size + $1]) }
            #expect(io.element(i) == expected)
        }
        #expect(io.value == io.element(0))
        io.setElement(1, 0xa1b2_c3d4)
        let written: [UInt8] = [0xd4, 0xc3, 0xb2, 0xa1]
        #expect(Array(r.data[size..<(2 * size)]) == Array(written[0..<size]))
        #expect(Array(r.data[0..<size]) == Array(bytes[0..<size]))
        #expect(Array(r.data[(2 * size)...]) == Array(bytes[(2 * size)...]))
        io.value = 0
        #expect(io.element(0) == 0)
        #expect(r.guards == [0xee, 0xee])
    }

    @Test("an index out of range reads 0 and writes nothing, negative ones included")
    func outOfRange() {
        let r = PIORecord(size: 2, count: 2, bytes: [1, 2, 3, 4])
        let io = PIOExit(record: r.record)
        for index in [-1, -2, 2, 3, Int.max, Int.min] {
            #expect(io.element(index) == 0)
            io.setElement(index, 0xffff_ffff)
        }
        #expect(r.data == [1, 2, 3, 4])
        #expect(r.guards == [0xee, 0xee])
        r.record.pointee.pio.data = nil
        #expect(io.element(0) == 0)
        io.setElement(0, 1)
    }

    @Test("MMIO data reads and writes the record's 8 bytes little endian")
    func mmioData() {
        var exit = vmm_exit_t()
        exit.exit_class = VMM_EXIT_MMIO.rawValue
        exit.mmio.len = 4
        withUnsafeMutableBytes(of: &exit.mmio.data) { $0.copyBytes(from: [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]) }
        withUnsafeMutablePointer(to: &exit) { record in
            let access = MMIOExit(record: record)
            #expect(access.data == 0x1234_5678)
            access.data = 0x0102_0304_0506_0708
        }
        #expect(withUnsafeBytes(of: exit.mmio.data) { Array($0) } == [8, 7, 6, 5, 4, 3, 2, 1])
    }

    /// What the host gets back from the PIO trampoline for `answer`, and the message.
    func call(_ answer: @escaping (PIOExit) throws -> PluginVerdict) -> (vmm_verdict_t, String?) {
        let r = PIORecord(size: 1, count: 1, bytes: [7])
        let box = PIOHandlerBox(answer)
        let v = withExtendedLifetime(box) { PIOHandlerBox.trampoline(Unmanaged.passUnretained(box).toOpaque(), r.record) }
        return (v, r.record.pointee.message.map { String(cString: $0) })
    }

    struct Refusal: Error, CustomStringConvertible { var description: String { "port 0x10 refused" } }

    @Test("the trampoline turns each verdict and a thrown error into the host's answer")
    func verdicts() {
        #expect(call { _ in .handled } == (VMM_HANDLED.rawValue, nil))
        #expect(call { _ in .notMine } == (VMM_NOT_MINE.rawValue, nil))
        #expect(call { _ in .backingReplaced } == (VMM_BACKING_REPLACED, nil))
        #expect(call { io in .fail("value \(io.value) not accepted") } == (VMM_FAIL.rawValue, "value 7 not accepted"))
        #expect(call { _ in throw Refusal() } == (VMM_FAIL.rawValue, "port 0x10 refused"))
        #expect(call { _ in throw VMMPluginError("bad state") } == (VMM_FAIL.rawValue, "bad state"))
    }

    @Test("the raw and MMIO trampolines answer as the PIO one")
    func otherTrampolines() {
        var exit = vmm_exit_t()
        exit.exit_class = VMM_EXIT_MMIO.rawValue
        exit.mmio.len = 8
        let mmio = MMIOHandlerBox { access in access.isWrite ? .handled : .fail("read of 0x\(String(access.address, radix: 16))") }
        let raw = HandlerBox { record in record.pointee.exit_class == VMM_EXIT_HLT.rawValue ? .handled : .notMine }
        withExtendedLifetime((mmio, raw)) {
            withUnsafeMutablePointer(to: &exit) { record in
                let m = Unmanaged.passUnretained(mmio).toOpaque(), r = Unmanaged.passUnretained(raw).toOpaque()
                record.pointee.mmio.gpa = 0xd000_0000
                #expect(MMIOHandlerBox.trampoline(m, record) == VMM_FAIL.rawValue)
                #expect(record.pointee.message.map { String(cString: $0) } == "read of 0xd0000000")
                record.pointee.mmio.is_write = 1
                #expect(MMIOHandlerBox.trampoline(m, record) == VMM_HANDLED.rawValue)
                #expect(HandlerBox.trampoline(r, record) == VMM_NOT_MINE.rawValue)
                record.pointee.exit_class = VMM_EXIT_HLT.rawValue
                #expect(HandlerBox.trampoline(r, record) == VMM_HANDLED.rawValue)
                #expect(MMIOHandlerBox.trampoline(m, record) == VMM_FAIL.rawValue)
                #expect(HandlerBox.trampoline(nil, record) == VMM_FAIL.rawValue)
            }
        }
    }

    @Test("a record of another exit class is refused, not read as PIO")
    func wrongClass() {
        let r = PIORecord(size: 1, count: 1, bytes: [7])
        r.record.pointee.exit_class = VMM_EXIT_MMIO.rawValue
        let box = PIOHandlerBox { _ in .handled }
        let v = withExtendedLifetime(box) { PIOHandlerBox.trampoline(Unmanaged.passUnretained(box).toOpaque(), r.record) }
        #expect(v == VMM_FAIL.rawValue)
        #expect(r.record.pointee.message.map { String(cString: $0) }?.contains("exit class") == true)
    }

    /// `call`, through the trampoline of a handler that cannot throw.
    func callPlain(_ answer: @escaping (PIOExit) -> PluginVerdict) -> (vmm_verdict_t, String?) {
        let r = PIORecord(size: 1, count: 1, bytes: [7])
        let box = PlainPIOHandlerBox(answer)
        let v = withExtendedLifetime(box) { PlainPIOHandlerBox.trampoline(Unmanaged.passUnretained(box).toOpaque(), r.record) }
        return (v, r.record.pointee.message.map { String(cString: $0) })
    }

    @Test("the trampolines of handlers that cannot throw answer as the others")
    func plainTrampolines() {
        #expect(callPlain { _ in .handled } == (VMM_HANDLED.rawValue, nil))
        #expect(callPlain { _ in .notMine } == (VMM_NOT_MINE.rawValue, nil))
        #expect(callPlain { _ in .backingReplaced } == (VMM_BACKING_REPLACED, nil))
        #expect(callPlain { io in .fail("value \(io.value) not accepted") } == (VMM_FAIL.rawValue, "value 7 not accepted"))
        var exit = vmm_exit_t()
        exit.exit_class = VMM_EXIT_MMIO.rawValue
        exit.mmio.len = 8
        let pio = PlainPIOHandlerBox { _ in .handled }
        let mmio = PlainMMIOHandlerBox { access in access.isWrite ? .handled : .fail("read of 0x\(String(access.address, radix: 16))") }
        let raw = PlainHandlerBox { record in record.pointee.exit_class == VMM_EXIT_HLT.rawValue ? .handled : .notMine }
        withExtendedLifetime((pio, mmio, raw)) {
            withUnsafeMutablePointer(to: &exit) { record in
                let p = Unmanaged.passUnretained(pio).toOpaque(), m = Unmanaged.passUnretained(mmio).toOpaque()
                let r = Unmanaged.passUnretained(raw).toOpaque()
                record.pointee.mmio.gpa = 0xd000_0000
                #expect(PlainMMIOHandlerBox.trampoline(m, record) == VMM_FAIL.rawValue)
                #expect(record.pointee.message.map { String(cString: $0) } == "read of 0xd0000000")
                record.pointee.mmio.is_write = 1
                #expect(PlainMMIOHandlerBox.trampoline(m, record) == VMM_HANDLED.rawValue)
                #expect(PlainHandlerBox.trampoline(r, record) == VMM_NOT_MINE.rawValue)
                // Another class's record is refused, not read as the view's.
                #expect(PlainPIOHandlerBox.trampoline(p, record) == VMM_FAIL.rawValue)
                #expect(record.pointee.message.map { String(cString: $0) }?.contains("exit class") == true)
                record.pointee.exit_class = VMM_EXIT_HLT.rawValue
                #expect(PlainHandlerBox.trampoline(r, record) == VMM_HANDLED.rawValue)
                #expect(PlainMMIOHandlerBox.trampoline(m, record) == VMM_FAIL.rawValue)
                for trampoline in [PlainHandlerBox.trampoline, PlainPIOHandlerBox.trampoline, PlainMMIOHandlerBox.trampoline,
                                   HandlerBox.trampoline, PIOHandlerBox.trampoline, MMIOHandlerBox.trampoline] {
                    record.pointee.message = nil
                    #expect(trampoline(nil, record) == VMM_FAIL.rawValue)
                    #expect(record.pointee.message.map { String(cString: $0) }?.contains("without the user pointer") == true)
                    #expect(trampoline(r, nil) == VMM_FAIL.rawValue)
                }
            }
        }
    }

    /// The `handle` of the last `register_handler` (`registeredHandle`).
    nonisolated(unsafe) static var lastHandle: HandlerTrampoline?
    /// Its `user`.
    nonisolated(unsafe) static var lastUser: UnsafeMutableRawPointer?

    /// A host whose `register_handler` records `handle` and `user` and refuses (EINVAL)
    /// a range based at 0xbad.
    static var recordingHost: vmm_host_t {
        var host = vmm_host_t()
        host.register_handler = { _, desc, _ in
            PluginExitViewTests.lastHandle = desc?.pointee.handle
            PluginExitViewTests.lastUser = desc?.pointee.user
            return desc?.pointee.base == 0xbad ? -22 : 0
        }
        return host
    }

    @Test("a handler with no try or throw is registered with the trampoline that tests no error")
    func overloads() throws {
        let host = Self.recordingHost
        func handle(_ register: (PluginServices) throws -> Void) throws -> UnsafeRawPointer? {
            Self.lastHandle = nil
            try withUnsafePointer(to: host) { try register(PluginServices($0, pluginName: "test")) }
            return Self.lastHandle.map { unsafeBitCast($0, to: UnsafeRawPointer.self) }
        }
        func address(_ t: HandlerTrampoline) -> UnsafeRawPointer { unsafeBitCast(t, to: UnsafeRawPointer.self) }
        func refuse(_ io: PIOExit) throws -> PluginVerdict { throw Refusal() }
        #expect(try handle { try $0.registerPIO(port: 1, name: "p") { _ in .handled } } == address(PlainPIOHandlerBox.trampoline))
        #expect(try handle { try $0.registerPIO(port: 1, name: "p") { io in try refuse(io) } } == address(PIOHandlerBox.trampoline))
        #expect(try handle { try $0.registerMMIO(address: 0, length: 1, name: "m") { _ in .notMine } }
                == address(PlainMMIOHandlerBox.trampoline))
        #expect(try handle { try $0.registerMMIO(address: 0, length: 1, name: "m") { _ in throw Refusal() } }
                == address(MMIOHandlerBox.trampoline))
        #expect(try handle { try $0.registerRaw(VMM_EXIT_HLT, base: 0, length: 0, name: "h") { _ in .handled } }
                == address(PlainHandlerBox.trampoline))
        #expect(try handle { try $0.registerRaw(VMM_EXIT_HLT, base: 0, length: 0, name: "h") { _ in throw Refusal() } }
                == address(HandlerBox.trampoline))
    }

    @Test("a plugin's own C-convention function is registered as the handle, with its user pointer, no trampoline")
    func directFunction() throws {
        let host = Self.recordingHost
        let function: PluginHandlerFunction = { user, _ in
            user!.storeBytes(of: user!.load(as: UInt64.self) &+ 1, as: UInt64.self)
            return VMM_HANDLED.rawValue
        }
        var count: UInt64 = 41
        try withUnsafeMutablePointer(to: &count) { counter in
            try withUnsafePointer(to: host) { raw in
                let services = PluginServices(raw, pluginName: "test")
                try services.registerFunction(VMM_EXIT_HLT, base: 0, length: 0, name: "h", user: counter, function)
                #expect(Self.lastUser == UnsafeMutableRawPointer(counter))
                #expect(services.boxes.isEmpty)
                // What the host does with it: call it with `user` and a record.
                var record = vmm_exit_t()
                #expect(Self.lastHandle?(Self.lastUser, &record) == VMM_HANDLED.rawValue)
                // A refusal is thrown with the host's errno, as for every other register.
                #expect(throws: VMMPluginError.self) {
                    try services.registerFunction(VMM_EXIT_PIO, base: 0xbad, length: 1, name: "p", user: nil, function)
                }
            }
        }
        #expect(count == 42)
    }
}

import Foundation
import Testing
import VMMKit
import VMMLoader
import VMMAsyncPF
import VMMPaging

/// Regression tests for the inputs that crashed or hung the VMM (issue 12, "Defects
/// found"): each ends with the documented status or error and one line naming what was
/// wrong and where.
@Suite("Hostile input: loader, config, flags and plugin ranges", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct HostileInputTests {
    /// A little-endian ELF64 x86-64 executable: the header, then `segments` program
    /// headers (paddr, file bytes, memsz), then the segments' bytes.
    static func elf64(phoff: UInt64? = nil, entry: UInt64 = 0x100000, segments: [(UInt64, [UInt8], UInt64)]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 64)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) { withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[at + i] = x } } }
        b[0...5] = [0x7f, 0x45, 0x4c, 0x46, 2, 1]
        b[6] = 1
        put(UInt16(2), 16); put(UInt16(62), 18); put(UInt32(1), 20); put(entry, 24)
        put(phoff ?? 64, 32); put(UInt16(64), 52); put(UInt16(56), 54); put(UInt16(segments.count), 56)
        var offset = 64 + 56 * segments.count
        for (paddr, bytes, memsz) in segments {
            let at = b.count
            b += [UInt8](repeating: 0, count: 56)
            put(UInt32(1), at); put(UInt32(7), at + 4); put(UInt64(offset), at + 8); put(paddr, at + 16); put(paddr, at + 24)
            put(UInt64(bytes.count), at + 32); put(memsz, at + 40); put(UInt64(0x1000), at + 48)
            offset += bytes.count
        }
        for (_, bytes, _) in segments { b += bytes }
        return b
    }

    /// A Multiboot kernel with the a.out kludge (flag 16): the header at offset 0 with
    /// its five addresses, then 64 bytes of `hlt`.
    static func multibootAOut(header: UInt32, load: UInt32, loadEnd: UInt32, bssEnd: UInt32, entry: UInt32) -> [UInt8] {
        let magic: UInt32 = 0x1BAD_B002, flags: UInt32 = 1 << 16
        let words: [UInt32] = [magic, flags, 0 &- (magic &+ flags), header, load, loadEnd, bssEnd, entry]
        return words.flatMap { w in withUnsafeBytes(of: w.littleEndian) { Array($0) } } + [UInt8](repeating: 0xf4, count: 64)
    }

    /// A new FIFO in the temporary directory (the caller unlinks it).
    static func fifo(_ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "vmm-fifo-\(getpid())-\(name)"
        unlink(path)
        try #require(mkfifo(path, 0o600) == 0)
        return path
    }

    static func vm(ram: UInt64, firmware: PCFirmware? = nil) throws -> (VirtualMachine, ImageLoader) {
        let vm = try KVM.open().createVM()
        try vm.memory.addRegion(name: "ram", guestAddress: 0, size: ram)
        return (vm, ImageLoader(memory: vm.memory, ramSize: ram, firmware: firmware))
    }

    @Test("an ELF whose e_phoff is near 2^64 is refused, not a trap")
    func elfPhoffOverflow() throws {
        let (vm, loader) = try Self.vm(ram: 2 << 20)
        defer { vm.close() }
        let bytes = Self.elf64(phoff: 0xffff_ffff_ffff_ffd0, segments: [(0x100000, [0xf4], 1)])
        #expect(throws: LoaderError(.image, "x.elf: program header offset 0xffffffffffffffd0 plus 1 entries of 56 bytes runs past 2^64")) {
            try loader.load(bytes, ImageRequest(path: "x.elf"))
        }
    }

    @Test("an ELF segment whose file range wraps past 2^64 is named as such, not by its wrapped end")
    func elfSegmentOffsetOverflow() throws {
        let (vm, loader) = try Self.vm(ram: 2 << 20)
        defer { vm.close() }
        var bytes = Self.elf64(segments: [(0x100000, [0xf4, 0xf4], 2)])
        withUnsafeBytes(of: UInt64(0xffff_ffff_ffff_ffff).littleEndian) { bytes.replaceSubrange(72..<80, with: $0) } // p_offset
        #expect(throws: LoaderError(.image, "x.elf: segment 0: 2 bytes at file offset 0xffffffffffffffff run past 2^64")) {
            try loader.load(bytes, ImageRequest(path: "x.elf"))
        }
    }

    @Test("a Multiboot a.out-kludge header with load_end_addr below load_addr is refused")
    func multibootLoadEndBelowLoad() throws {
        let (vm, loader) = try Self.vm(ram: 4 << 20)
        defer { vm.close() }
        let bytes = Self.multibootAOut(header: 0x100000, load: 0x100000, loadEnd: 0xfffff, bssEnd: 0, entry: 0x100000)
        #expect(throws: LoaderError(.image, "k.bin: Multiboot load_end_addr 0xfffff is below load_addr 0x100000")) {
            try loader.load(bytes, ImageRequest(path: "k.bin"))
        }
    }

    @Test("a small ELF with a 3 GiB p_memsz loads without touching the BSS: RAM is already zero")
    func hugeBSSNotWritten() throws {
        let ram: UInt64 = 0xc010_0000 // 3 GiB + 1 MiB, demand-allocated by the kernel: the BSS runs to its end
        let (vm, loader) = try Self.vm(ram: ram)
        defer { vm.close() }
        let bss: UInt64 = 3 << 30
        let bytes = Self.elf64(segments: [(0x100000, [0xb0, 0x00, 0xe6, 0xf4], bss)])
        // The BSS reaches the stack's page at the top of low RAM: the window's stack instead.
        #expect(try loader.load(bytes, ImageRequest(path: "big.elf")) == .longMode(entry: 0x100000, stack: 0xf000))
        // No page of the BSS past the first (which holds the code) was written: none is resident.
        let region = try #require(vm.memory.regions.first)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = region.hostAddress + 0x101000, length = Int(bss) - 0x1000
        var resident = [UInt8](repeating: 0, count: (length + page - 1) / page)
        #expect(mincore(start, length, &resident) == 0)
        #expect(resident.filter { $0 & 1 != 0 }.count == 0)
        #expect(try vm.memory.read(0x100000 + bss - 8, as: UInt64.self) == 0)
        #expect(try vm.memory.readBytes(0x100000, count: 5) == [0xb0, 0x00, 0xe6, 0xf4, 0])
    }

    @Test("an entry point outside every loaded range is refused, naming the ranges; a virtual entry moves with its executable segment, as in QEMU")
    func elfEntryOutsideSegments() throws {
        let (vm, loader) = try Self.vm(ram: 4 << 20)
        defer { vm.close() }
        let code: [UInt8] = [0xb0, 0x00, 0xe6, 0xf4, 0xf4]
        #expect(throws: LoaderError(.image, "x.elf: entry point 0x300000 lies outside what the image loads ([0x100000..<0x100005], [0x200000..<0x201000])")) {
            try loader.load(Self.elf64(entry: 0x300000, segments: [(0x100000, code, 5), (0x200000, [1], 0x1000)]), ImageRequest(path: "x.elf"))
        }
        // Linked in the higher half, loaded at 1 MiB: the entry is the segment's.
        var high = Self.elf64(entry: 0xffff_ffff_8010_0002, segments: [(0x100000, code, 5)])
        withUnsafeBytes(of: UInt64(0xffff_ffff_8010_0000).littleEndian) { high.replaceSubrange(80..<88, with: $0) } // p_vaddr
        #expect(try loader.load(high, ImageRequest(path: "high.elf")) == .longMode(entry: 0x100002, stack: (4 << 20) - 0x10))
        // Only an executable segment's file bytes move it (QEMU's rule): a virtual entry
        // in a segment without PF_X stays virtual, and is outside.
        high[68] = 6 // p_flags: R W
        #expect(throws: LoaderError(.image, "high.elf: entry point 0xffffffff80100002 lies outside what the image loads ([0x100000..<0x100005])")) {
            try loader.load(high, ImageRequest(path: "high.elf"))
        }
        let aout = Self.multibootAOut(header: 0x100000, load: 0x100000, loadEnd: 0, bssEnd: 0x100100, entry: 0x100200)
        #expect(throws: LoaderError(.image, "k.bin: entry point 0x100200 lies outside what the image loads ([0x100000..<0x100100])")) {
            try loader.load(aout, ImageRequest(path: "k.bin"))
        }
    }

    @Test("an empty segment places nothing, wherever it says (QEMU's load_elf skips it); an image of empty segments only has nothing to enter")
    func emptySegmentPlacesNothing() throws {
        let (vm, loader) = try Self.vm(ram: 4 << 20)
        defer { vm.close() }
        let code: [UInt8] = [0xb0, 0x00, 0xe6, 0xf4]
        let bytes = Self.elf64(segments: [(0x100000, code, 4), (0xf000_0000, [], 0)])
        #expect(try loader.load(bytes, ImageRequest(path: "x.elf")) == .longMode(entry: 0x100000, stack: (4 << 20) - 0x10))
        #expect(throws: LoaderError(.image, "e.elf: entry point 0x100000 lies outside what the image loads (nothing: every segment is empty)")) {
            try loader.load(Self.elf64(segments: [(0x100000, [], 0)]), ImageRequest(path: "e.elf"))
        }
    }

    @Test("a Multiboot ELF for another machine than i386 is refused, as QEMU's loader refuses it")
    func multibootWrongMachine() throws {
        let (vm, loader) = try Self.vm(ram: 4 << 20)
        defer { vm.close() }
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: VMMProcess.guest("multiboot.elf"))))
        bytes[18] = 40 // e_machine: EM_ARM
        #expect(throws: LoaderError(.image, "mb.elf: ELF machine 40 is not i386")) { try loader.load(bytes, ImageRequest(path: "mb.elf")) }
    }

    @Test("a FIFO as the image is refused at once (O_NONBLOCK, fstat), never waited on")
    func fifoImage() throws {
        let fifo = try Self.fifo("lib")
        defer { unlink(fifo) }
        let (vm, loader) = try Self.vm(ram: 2 << 20)
        defer { vm.close() }
        #expect(throws: LoaderError(.image, "\(fifo): cannot read image: not a regular file (a FIFO)")) {
            try loader.load(ImageRequest(path: fifo))
        }
    }

    @Test("an image larger than guest RAM is refused before it is read into memory")
    func imageLargerThanRAM() throws {
        let path = try VMMProcess.temp("huge.bin", [UInt8](repeating: 0xf4, count: 3 << 20))
        defer { unlink(path) }
        let (vm, loader) = try Self.vm(ram: 2 << 20)
        defer { vm.close() }
        #expect(throws: LoaderError(.image, "\(path): cannot read image: too large: 3145728 bytes (at most 2097152)")) {
            try loader.load(ImageRequest(path: path, loadAddress: 0x10000))
        }
    }

    @Test("a file whose size fstat does not tell (/proc) is read to its end, or refused past the limit, never cut short")
    func procFileReadWhole() throws {
        // /proc/self/status says 0 bytes in st_size and holds a page or so.
        let status = try FileBytes.read("/proc/self/status")
        #expect(String(decoding: status, as: UTF8.self).hasPrefix("Name:"))
        #expect(String(decoding: status, as: UTF8.self).contains("\nVmRSS:"), "read past the first line")
        #expect(throws: LoaderError(.image, "too large: more than 16 bytes")) { try FileBytes.read("/proc/self/status", limit: 16) }
        // A regular file of exactly the limit, and one byte over it.
        let path = try VMMProcess.temp("limit.bin", [UInt8](repeating: 7, count: 4096))
        defer { unlink(path) }
        #expect(try FileBytes.read(path, limit: 4096) == [UInt8](repeating: 7, count: 4096))
        #expect(throws: LoaderError(.image, "too large: 4096 bytes (at most 4095)")) { try FileBytes.read(path, limit: 4095) }
        let empty = try VMMProcess.temp("empty-limit.bin", [])
        defer { unlink(empty) }
        #expect(try FileBytes.read(empty, limit: 0) == [])
    }

    @Test("launcher: an empty flat image is a bad image (status 6) named as empty, not a bad --entry (status 2)")
    func emptyFlatImage() throws {
        let path = try VMMProcess.temp("empty.bin", [])
        defer { unlink(path) }
        let r = try VMMProcess.run(["run", path, "--load-addr", "0x100000"])
        #expect(r.status == 6)
        #expect(r.stderr == "vmm: \(path): the flat image is empty (0 bytes)\n")
    }

    @Test("launcher: FIFOs as image, --config and --initrd end with their status and one line")
    func fifoLauncher() throws {
        let fifo = try Self.fifo("launcher")
        defer { unlink(fifo) }
        let image = try VMMProcess.run(["run", fifo])
        #expect(image.status == 6)
        #expect(image.stderr == "vmm: \(fifo): cannot read image: not a regular file (a FIFO)\n")
        let config = try VMMProcess.run(["run", "--config", fifo])
        #expect(config.status == 4)
        #expect(config.stderr == "vmm: \(fifo): cannot read: not a regular file (a FIFO)\n")
        let initrd = try VMMProcess.run(["run", VMMProcess.guest("multiboot.elf"), "--initrd", fifo])
        #expect(initrd.status == 6)
        #expect(initrd.stderr == "vmm: \(fifo): cannot read module (initrd): not a regular file (a FIFO)\n")
    }

    @Test("--max-seconds inf / 1e19 / nan / 1e10 are usage errors naming the flag", arguments: [("inf", "'inf'"), ("1e19", "'1e19'"), ("nan", "'nan'"), ("10000000000", "10000000000")])
    func maxSecondsFlag(value: String, shown: String) throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--max-seconds", value])
        #expect(r.status == 2)
        #expect(r.stderr == "vmm: --max-seconds must be a number of seconds from 0.000001 to 1000000000, not \(shown)\n")
    }

    @Test("range errors from a config file exit 4 naming the file's key; the same from a flag exit 2 naming the flag")
    func configRangeErrors() throws {
        let image = VMMProcess.guest("hello64.elf")
        func config(_ name: String, _ json: String) throws -> String { try VMMProcess.temp(name, Array(json.utf8)) }
        let seconds = try config("secs.json", #"{"image": "\#(image)", "maxSeconds": 1e300}"#)
        let s = try VMMProcess.run(["run", "--config", seconds])
        #expect(s.status == 4)
        #expect(s.stderr == "vmm: \(seconds): 'maxSeconds' must be a number of seconds from 0.000001 to 1000000000, not 1e300\n")
        let memory = try config("mem.json", #"{"image": "\#(image)", "memory": "2000G"}"#)
        let m = try VMMProcess.run(["run", "--config", memory])
        #expect(m.status == 4)
        #expect(m.stderr == "vmm: \(memory): 'memory' 2000 GiB is above the 1027 GiB this launcher maps\n")
        let flag = try VMMProcess.run(["run", "--config", memory, "--memory", "3000G"])
        #expect(flag.status == 2)
        #expect(flag.stderr == "vmm: --memory 3000 GiB is above the 1027 GiB this launcher maps\n")
        let small = try config("small.json", #"{"image": "\#(image)", "memory": "1M"}"#)
        let sm = try VMMProcess.run(["run", "--config", small])
        #expect(sm.status == 4)
        #expect(sm.stderr == "vmm: \(small): 'memory' must be at least 2M\n")
        let smp = try config("smp.json", #"{"image": "\#(image)", "vcpus": 2, "irqchip": "none"}"#)
        let v = try VMMProcess.run(["run", "--config", smp])
        #expect(v.status == 4)
        #expect(v.stderr == "vmm: \(smp): 'vcpus' 2 needs irqchip kernel: application processors are started with INIT/SIPI\n")
        let entry = try config("entry.json", #"{"image": "\#(image)", "loadAddr": "0x100000", "entry": "0x10"}"#)
        let e = try VMMProcess.run(["run", "--config", entry])
        #expect(e.status == 4)
        #expect(e.stderr.hasPrefix("vmm: \(entry): entry 0x10 is outside the image loaded at [0x100000..<"))
    }

    @Test("a plugin range ending exactly at 2^64 is refused at registration, naming the plugin (status 8)", arguments: ["", "pio"])
    func rangeAtTopOfSpace(config: String) throws {
        let fixture = PluginFixtures.fixture("RANGES")
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", config.isEmpty ? fixture : "\(fixture),\(config)"])
        let space = config == "pio" ? "port" : "MMIO"
        #expect(r.status == 8)
        #expect(r.stderr == "vmm: plugin 'org.vmmkit.test.fixture' (\(fixture)): init failed: org.vmmkit.test.fixture 'hostile-range' (\(fixture)): "
            + "\(space) range at 0xfffffffffffff000 with length 0x1000 runs past 0xffffffffffffffff\n")
    }

    @Test("memory-fault, async-PF and exit-reason ranges that wrap past 2^64, and MSR ranges past 2^32, are refused (status 8)",
          arguments: [("fault", "memory-fault range at 0x200000 with length 0xfffffffffff00000 runs past 0xffffffffffffffff (length 0 is the whole space)"),
                      ("apf", "async-PF range at 0x200000 with length 0xfffffffffff00000 runs past 0xffffffffffffffff (length 0 is the whole space)"),
                      ("other", "exit-reason range at 0x200000 with length 0xfffffffffff00000 runs past 0xffffffffffffffff (length 0 is the whole space)"),
                      ("msr", "MSR range at 0xffffff00 with length 0x200 runs past MSR 0xffffffff")])
    func wrappingClassRanges(config: String, message: String) throws {
        let fixture = PluginFixtures.fixture("RANGES")
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", "\(fixture),\(config)"])
        #expect(r.status == 8)
        #expect(r.stderr == "vmm: plugin 'org.vmmkit.test.fixture' (\(fixture)): init failed: org.vmmkit.test.fixture 'hostile-range' (\(fixture)): \(message)\n")
    }

    @Test("a plugin port range of all 0x10000 ports is refused (the dispatcher counts ports in 16 bits)")
    func allPorts() throws {
        let fixture = PluginFixtures.fixture("RANGES")
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", "\(fixture),allpio"])
        #expect(r.status == 8)
        #expect(r.stderr == "vmm: plugin 'org.vmmkit.test.fixture' (\(fixture)): init failed: org.vmmkit.test.fixture 'hostile-range' (\(fixture)): "
            + "port range 0x0+0x10000 covers more than 0xffff ports\n")
    }

    @Test("vmm plugins on that plugin lists it and says why its handlers are unknown")
    func pluginsCommandOnRangeAtTop() throws {
        let fixture = PluginFixtures.fixture("RANGES")
        let r = try VMMProcess.run(["plugins", "--probe", fixture])
        #expect(r.status == 0)
        #expect(r.stdout.contains("org.vmmkit.test.fixture 0.0.1"))
        #expect(r.stdout.contains("handlers: unknown (init with an empty config: "))
        #expect(r.stdout.contains("MMIO range at 0xfffffffffffff000 with length 0x1000 runs past 0xffffffffffffffff"))
    }

    @Test("a plugin's MMIO claim over guest RAM is a plugin error (status 8) naming the plugin")
    func mmioOverRAM() throws {
        let fixture = PluginFixtures.fixture("RANGES")
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", "\(fixture),ram"])
        #expect(r.status == 8)
        #expect(r.stderr == "vmm: plugin 'org.vmmkit.test.fixture' (\(fixture)): init failed: org.vmmkit.test.fixture 'hostile-range' (\(fixture)): "
            + "MMIO range [0x100000..<0x101000] overlaps guest RAM 'ram' [0x0..<0x8000000]\n")
    }

    /// Each bad port with the reason the plugin gives: beyond 16 bits (no room for its 17
    /// ports), or not an integer at all (a sign, no digits, a space).
    static let badScratchPorts: [(String, String)] = [
        ("0xffffffffffffffff", "a first port with room for 17 ports below 0x10000"),
        ("0x12345", "a first port with room for 17 ports below 0x10000"),
        ("0xfff0", "a first port with room for 17 ports below 0x10000"),
        ("0x+531", "an integer"), ("+1329", "an integer"), ("0x-0", "an integer"),
        ("0x", "an integer"), ("0x 531", "an integer"),
    ]

    @Test("ScratchDevice given a port beyond 16 bits, with a sign or without digits is refused naming the key", arguments: badScratchPorts)
    func scratchDevicePorts(port: String, reason: String) throws {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        let path = PluginSearchPath.packageRoot! + "/.build/debug/libScratchDevice.so"
        let error = pluginError { () throws(PluginError) in try host.load("ScratchDevice", config: "port=\(port)") }
        _ = guest
        #expect(error?.description == "plugin 'org.vmmkit.scratch-device' (\(path)): init failed: "
            + "org.vmmkit.scratch-device: bad value '\(port)' for key 'port' (\(reason))")
    }

    @Test("ScratchDevice's default ports no longer collide with the launcher's fw_cfg at 0x510")
    func scratchDeviceBesideFwCfg() throws {
        let r = try VMMProcess.run(["run", VMMProcess.guest("hello64.elf"), "--plugin", "ScratchDevice"])
        #expect(r.stdout == "Hello from an ELF64 guest\n")
        #expect(r.stderr == "")
        #expect(r.status == 1)
    }
}

/// Hostile recordings (no KVM needed: replay runs on a scripted vCPU).
@Suite("Hostile input: exit recordings")
struct HostileRecordingTests {
    @Test("a recording whose bytes land outside kvm_run is refused before replay, naming entry and offset")
    func patchOutsideBuffer() throws {
        for (offset, expected) in [("12287", "writes 2 bytes at offset 12287"), ("9223372036854775807", "writes 2 bytes at offset 9223372036854775807")] {
            let recording = try ExitRecording(parsing: "vmmkit-exit-recording v1\nentry 0 rc=0 errno=0 core=? kernel=\(offset):0102\n")
            #expect(throws: VMMError.invalidArgument("recording: entry 0 of vCPU 0 \(expected), outside kvm_run (12288 bytes)")) {
                _ = try ScriptedVCPU(replaying: recording, vcpu: 0)
            }
        }
    }

    @Test("a FIFO given as a recording is refused at once, not waited on")
    func fifoRecording() throws {
        let fifo = try HostileInputTests.fifo("recording")
        defer { unlink(fifo) }
        #expect(throws: VMMError.invalidArgument("recording \(fifo): not a regular file (a FIFO)")) {
            _ = try ExitRecording.load(from: fifo)
        }
    }

    @Test("a FIFO or a directory given as a demand-paging snapshot file is refused at once, not waited on")
    func fifoPageSource() throws {
        let fifo = try HostileInputTests.fifo("pages")
        defer { unlink(fifo) }
        #expect(throws: VMMError.invalidArgument("snapshot \(fifo): not a regular file (a FIFO)")) {
            _ = try SnapshotFilePageSource(path: fifo)
        }
        #expect(throws: VMMError.invalidArgument("snapshot /tmp: not a regular file (a directory)")) {
            _ = try SnapshotFilePageSource(path: "/tmp")
        }
    }

    @Test("a page source's bounds check cannot overflow: a page near 2^64 lies outside the file")
    func pageSourceBounds() throws {
        let path = NSTemporaryDirectory() + "vmm-pages-\(getpid())"
        try Data(count: 8192).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let source = try SnapshotFilePageSource(path: path)
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { page.deallocate() }
        let memory = InMemoryPageSource(guestBase: 0, bytes: [UInt8](repeating: 0, count: 8192), latencyMicroseconds: 0)
        for source in [source, memory] as [any PageSource] {
            #expect(throws: VMMError.self, "\(source.name)") {
                try source.readPage(at: 0xffff_ffff_ffff_f000, into: page, for: PageRequest(vcpu: 0, access: .read))
            }
            try source.readPage(at: 0x1000, into: page, for: PageRequest(vcpu: 0, access: .read))
        }
    }
}

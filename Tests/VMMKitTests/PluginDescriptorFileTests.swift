import Glibc
import Testing
@testable import VMMKit

/// `PluginDescriptor.read`: a plugin's descriptor read from the file, never loaded.
@Suite("Plugin descriptors read from the file")
struct PluginDescriptorFileTests {
    static func files(in dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".so") { names.append(dir + "/" + name) }
        }
        return names.sorted()
    }

    static func bytes(_ path: String) -> [UInt8] {
        guard let f = fopen(path, "rb") else { return [] }
        defer { fclose(f) }
        var out: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    static func write(_ bytes: [UInt8], _ name: String) -> String {
        let path = "/tmp/vmm-descriptor-\(getpid())-\(name)"
        let f = fopen(path, "wb")!
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
        return path
    }

    @Test("agrees with the loaded descriptor for every built C and Swift plugin and fixture")
    func agreesWithDlopen() throws {
        #expect(PluginFixtures.built)
        let root = PluginFixtures.root
        let candidates = Self.files(in: PluginFixtures.plugins) + Self.files(in: PluginFixtures.fixtures)
            + ["UART", "AsyncPF", "ScratchDevice"].map { root + "/.build/debug/lib\($0).so" }.filter { access($0, R_OK) == 0 }
        #expect(candidates.count >= 15)
        // A SysV hash table and packed relative relocations (DT_RELR) are read too.
        #expect(candidates.contains(PluginFixtures.fixture("NullSysV")) && candidates.contains(PluginFixtures.fixture("NullRELR")))
        for file in candidates {
            let loaded: Result<PluginLibrary, PluginError> = Result { () throws(PluginError) in try PluginLibrary.open(file) }
            let read: Result<PluginDescriptor, PluginError> = Result { () throws(PluginError) in try PluginDescriptor.read(file) }
            switch (loaded, read) {
            case let (.success(l), .success(r)):
                #expect([l.id, l.version, l.summary, l.abiVersion] == [r.id, r.version, r.summary, r.abiVersion], "\(file)")
            case let (.failure(l), .failure(r)):
                // Refused by both; the reasons agree except where dlopen words its own.
                if !l.description.contains("not a loadable shared library") { #expect(l == r, "\(file)") }
            default:
                Issue.record("\(file): dlopen says \(loaded), the file reader says \(read)")
            }
        }
    }

    @Test("an id pointer relocated outside the file is refused with a line saying so")
    func idOutsideTheFile() throws {
        var b = Self.bytes(PluginFixtures.fixture("Null"))
        let elf = try PluginELFFile(path: PluginFixtures.fixture("Null"))
        let entry = try #require(try elf.exportedSymbol("vmm_plugin_entry"))
        // The R_X86_64_RELATIVE record (offset, info = 8, addend) that fills in `id`.
        let pattern = withUnsafeBytes(of: (entry + 8).littleEndian, Array.init) + withUnsafeBytes(of: UInt64(8).littleEndian, Array.init)
        let at = try #require((0...(b.count - 24)).first { Array(b[$0..<($0 + 16)]) == pattern })
        b.replaceSubrange((at + 16)..<(at + 24), with: withUnsafeBytes(of: UInt64(0xdead_0000).littleEndian, Array.init))
        let path = Self.write(b, "id-outside.so")
        defer { unlink(path) }
        #expect(throws: PluginError(plugin: path,
            "malformed plugin file: vmm_plugin_entry.id points to 0xdead0000, outside the file's loadable data")) {
            try PluginDescriptor.read(path)
        }
    }

    @Test("hostile files: truncations and 1500 corruptions are refused or read, never a crash")
    func hostileBytes() throws {
        let original = Self.bytes(PluginFixtures.fixture("Null"))
        #expect(original.count > 4096)
        let path = "/tmp/vmm-descriptor-\(getpid())-hostile.so"
        defer { unlink(path) }
        let intact = try PluginDescriptor.read(PluginFixtures.fixture("Null"))
        var refused = 0, read = 0
        @discardableResult
        func attempt(_ bytes: [UInt8]) -> PluginDescriptor? {
            _ = Self.write(bytes, "hostile.so")
            do { read += 1; return try PluginDescriptor.read(path) } catch {
                #expect(error.description.hasPrefix("plugin \(path): ") || error.description.hasPrefix("plugin 'org.vmmkit.bench.null'"))
                read -= 1; refused += 1
                return nil
            }
        }
        // A prefix holding every byte the descriptor needs reads as the whole file does
        // (section headers at the end are not needed); a shorter one is refused.
        for length in stride(from: 0, to: original.count, by: 61) {
            if let d = attempt(Array(original.prefix(length))) {
                #expect(d.id == intact.id && d.version == intact.version && d.summary == intact.summary && d.abiVersion == intact.abiVersion)
            } else {
                #expect(length < original.count)
            }
        }
        #expect(attempt(Array(original.prefix(original.count / 2))) == nil)
        (refused, read) = (0, 0)
        // A fixed-seed generator: flips 1-4 bytes, most of them among the headers and tables.
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        for _ in 0..<1500 {
            var b = original
            for _ in 0...(next() % 4) {
                let span = next() % 4 == 0 ? b.count : min(b.count, 0x800)
                b[next() % span] = UInt8(truncatingIfNeeded: next())
            }
            attempt(b)
        }
        #expect(refused > 150 && read > 150, "\(refused) refused, \(read) read")
    }
}

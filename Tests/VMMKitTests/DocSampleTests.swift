import Foundation
import Testing

/// Every fenced code block of the README, the plugin guide and the DocC articles is the
/// text of a compiled region in Examples/DocSamples (see its README.md).
@Suite("Documentation samples are compiled code")
struct DocSampleTests {
    static let root = VMMProcess.root
    static let samples = root.appendingPathComponent("Examples/DocSamples")

    /// The documents whose samples must compile, relative to the package root.
    static var documents: [String] {
        var docs = ["README.md", "Plugins/README.md"]
        let sources = root.appendingPathComponent("Sources")
        for module in (try? FileManager.default.contentsOfDirectory(atPath: sources.path)) ?? [] {
            for catalogue in ((try? FileManager.default.contentsOfDirectory(atPath: sources.appendingPathComponent(module).path)) ?? [])
            where catalogue.hasSuffix(".docc") {
                let dir = "Sources/\(module)/\(catalogue)"
                for file in ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(dir).path)) ?? [])
                where file.hasSuffix(".md") { docs.append("\(dir)/\(file)") }
            }
        }
        return docs.sorted()
    }

    static func lines(_ path: URL) throws -> [String] {
        try String(contentsOf: path, encoding: .utf8).components(separatedBy: "\n")
    }

    /// The fenced code blocks of a Markdown file, in order.
    static func blocks(_ doc: String) throws -> [String] {
        var out: [String] = [], current: [String]?
        for line in try lines(root.appendingPathComponent(doc)) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if current == nil {
                if trimmed.hasPrefix("```") { current = [] }
            } else if trimmed.hasPrefix("```") {
                out.append(current!.joined(separator: "\n"))
                current = nil
            } else {
                current!.append(line)
            }
        }
        return out
    }

    struct Region { let file: String; let text: String; let wholeFile: Bool }

    /// Regions by "DOC #N", and each sample file's import lines.
    static func regions() throws -> (regions: [String: Region], imports: [String: Set<String>], problems: [String]) {
        var regions: [String: Region] = [:], imports: [String: Set<String>] = [:], problems: [String] = []
        let walker = FileManager.default.enumerator(atPath: samples.path)
        while let relative = walker?.nextObject() as? String {
            guard relative.hasSuffix(".swift") || relative.hasSuffix(".c") else { continue }
            let file = "Examples/DocSamples/\(relative)"
            let all = try lines(samples.appendingPathComponent(relative))
            imports[file] = Set(all.filter { $0.hasPrefix("import ") })
            var open: (key: String, indent: String, body: [String])?
            for line in all {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("// doc-sample-file: ") {
                    let key = String(trimmed.dropFirst("// doc-sample-file: ".count))
                    let text = all.filter { $0 != line }.joined(separator: "\n")
                    regions[key] = Region(file: file, text: text.hasSuffix("\n") ? String(text.dropLast()) : text, wholeFile: true)
                } else if trimmed == "// doc-sample: end" {
                    guard let r = open else { problems.append("\(file): an end marker without a region"); continue }
                    if regions[r.key] != nil { problems.append("\(file): a second region for \(r.key)") }
                    regions[r.key] = Region(file: file, text: r.body.joined(separator: "\n"), wholeFile: false)
                    open = nil
                } else if trimmed.hasPrefix("// doc-sample: ") {
                    if let r = open { problems.append("\(file): region \(r.key) is not closed") }
                    open = (String(trimmed.dropFirst("// doc-sample: ".count)), String(line.prefix { $0 == " " }), [])
                } else if open != nil {
                    if line.hasPrefix(open!.indent) { open!.body.append(String(line.dropFirst(open!.indent.count))) }
                    else if trimmed.isEmpty { open!.body.append("") }
                    else { problems.append("\(file): a line of region \(open!.key) is indented less than its marker: \(line)") }
                }
            }
            if let r = open { problems.append("\(file): region \(r.key) is not closed") }
        }
        return (regions, imports, problems)
    }

    @Test("each block of the docs equals its compiled region; no region is stale; imports are the ones shown")
    func samplesMatch() throws {
        let (regions, imports, found) = try Self.regions()
        var problems = found
        var shownImports: [String: Set<String>] = [:]
        var used: Set<String> = []
        let documents = Self.documents
        #expect(documents.contains("Sources/VMMPluginKit/VMMPluginKit.docc/WritingASwiftPlugin.md"))
        for doc in documents {
            for (i, block) in try Self.blocks(doc).enumerated() {
                let key = "\(doc) #\(i + 1)"
                guard let region = regions[key] else {
                    problems.append("\(key) is not compiled: no region '// doc-sample: \(key)' in Examples/DocSamples")
                    continue
                }
                used.insert(key)
                var body = block.components(separatedBy: "\n")
                var shown: [String] = []
                if !region.wholeFile {
                    while let first = body.first, first.hasPrefix("import ") { shown.append(body.removeFirst()) }
                    if !shown.isEmpty { while body.first == "" { body.removeFirst() } }
                }
                if body.joined(separator: "\n") != region.text {
                    problems.append("\(key) differs from its region in \(region.file):\n--- doc\n\(body.joined(separator: "\n"))\n--- \(region.file)\n\(region.text)")
                }
                if !shown.isEmpty { shownImports[region.file, default: []].formUnion(shown) }
            }
        }
        for key in Set(regions.keys).subtracting(used).sorted() {
            problems.append("\(regions[key]!.file): region \(key) matches no block of the docs (stale?)")
        }
        for (file, shown) in shownImports.sorted(by: { $0.key < $1.key }) where imports[file] != shown {
            problems.append("\(file) imports \(imports[file]!.sorted()) but its samples show \(shown.sorted())")
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n\n"))")
    }

    @Test("the C samples were compiled by scripts/build-plugins, the Package.swift samples are valid manifests")
    func nonSwiftSamplesBuild() throws {
        #expect(PluginFixtures.built)
        let cFiles = try FileManager.default.contentsOfDirectory(atPath: Self.samples.appendingPathComponent("C").path)
            .filter { $0.hasSuffix(".c") }
        #expect(!cFiles.isEmpty)
        for c in cFiles {
            let object = Self.root.appendingPathComponent(".build/plugins/doc-samples/\(c.dropLast(2)).o").path
            #expect(FileManager.default.fileExists(atPath: object), "\(c) was not compiled")
        }
        let walker = FileManager.default.enumerator(atPath: Self.samples.path)
        var manifests = 0
        while let relative = walker?.nextObject() as? String {
            guard relative.hasSuffix("/Package.swift") else { continue }
            manifests += 1
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["swift", "package", "dump-package", "--package-path",
                           Self.samples.appendingPathComponent(relative).deletingLastPathComponent().path]
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\(relative): \(message)")
        }
        #expect(manifests >= 1)
    }
}

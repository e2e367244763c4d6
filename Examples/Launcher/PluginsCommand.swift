import ArgumentParser
import Glibc
import VMMKit

/// `vmm plugins [PATH]`: what plugins can be found, what they are, and why any
/// candidate was refused. Each is validated without running its code, then
/// initialised once with an empty config in a scratch VM to list its handlers.
struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the plugins found on the search path (or in PATH).")

    @Argument(help: "A plugin file or a directory to list instead of the search path.")
    var path: String?

    func run() throws {
        let candidates = try Self.candidates(path)
        if candidates.isEmpty { print("no plugins found in \(path ?? PluginSearchPath.standard().directories.joined(separator: ", "))") }
        for file in candidates {
            print(Self.describe(file))
        }
    }

    static func candidates(_ path: String?) throws(LauncherError) -> [String] {
        var st = stat()
        if let path {
            guard stat(path, &st) == 0 else { throw LauncherError(.usage, "\(path): \(String(cString: strerror(errno)))") }
            if st.st_mode & S_IFMT != S_IFDIR { return [path] }
            return sharedObjects(in: path)
        }
        var seen: Set<String> = []
        return PluginSearchPath.standard().directories.flatMap(sharedObjects).filter { seen.insert($0).inserted }
    }

    static func sharedObjects(in dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".so") { names.append(dir.hasSuffix("/") ? dir + name : dir + "/" + name) }
        }
        return names.sorted()
    }

    static func describe(_ file: String) -> String {
        let library: PluginLibrary
        do { library = try PluginLibrary.open(file) } catch { return "refused  \(file): \(error)" }
        var lines = ["\(library.id) \(library.version) (ABI \(library.abiVersion))  \(file)", "    \(library.summary)"]
        do {
            let vm = try KVM.open().createVM()
            defer { vm.close() }
            let host = PluginHost(vm: vm, dispatcher: ExitDispatcher())
            host.logHandler = { _, _, _ in }
            defer { host.close() }
            let loaded = try host.load(file)
            lines += loaded.handlers.map { "    handler: \($0)" }
        } catch {
            lines.append("    handlers: unknown (init with an empty config: \(error))")
        }
        return lines.joined(separator: "\n")
    }
}

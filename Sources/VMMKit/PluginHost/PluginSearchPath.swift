import Glibc

/// Where `PluginHost.load` looks for a plugin given by name rather than by path.
///
/// A name containing a `/` is a path and is used as is. Otherwise each directory is
/// tried in order, as `lib<name>.so`, `<name>.so` and `<name>`:
/// 1. the directories passed explicitly,
/// 2. those in `VMM_PLUGIN_PATH` (colon-separated, like `LD_LIBRARY_PATH`),
/// 3. the package's own build folders: `.build/plugins` (C plugins, built by
///    `scripts/build-plugins`), then `.build/debug` and `.build/release` (Swift plugins,
///    SwiftPM dynamic library products), the one of this build's configuration first.
public struct PluginSearchPath: Sendable, Equatable {
    public var directories: [String]

    public init(_ directories: [String]) { self.directories = directories }

    /// Explicit directories, then `VMM_PLUGIN_PATH`, then the package's build folders.
    public static func standard(explicit: [String] = []) -> PluginSearchPath {
        var dirs = explicit
        if let env = getenv("VMM_PLUGIN_PATH") {
            dirs += String(cString: env).split(separator: ":").map(String.init)
        }
        dirs += buildFolders
        return PluginSearchPath(dirs)
    }

    /// The package checkout this library was compiled from (found from this source
    /// file's path at compile time), or nil if it has moved since.
    public static var packageRoot: String? {
        let file = #filePath
        let suffix = "/Sources/VMMKit/PluginHost/PluginSearchPath.swift"
        guard file.hasSuffix(suffix) else { return nil }
        let root = String(file.dropLast(suffix.count))
        return access(root + "/Package.swift", F_OK) == 0 ? root : nil
    }

    /// `.build/plugins`, then the build folder of this library's own configuration
    /// (a release `vmm` loads release plugins), then the other one.
    public static var buildFolders: [String] {
        guard let root = packageRoot else { return [] }
        #if DEBUG
        let (own, other) = ("debug", "release")
        #else
        let (own, other) = ("release", "debug")
        #endif
        return [root + "/.build/plugins", root + "/.build/" + own, root + "/.build/" + other]
    }

    /// The file `name` stands for, or an error listing every place tried.
    public func resolve(_ name: String) throws(PluginError) -> String {
        if name.contains("/") { return name }
        guard !name.isEmpty else { throw PluginError(plugin: "''", "an empty plugin name") }
        var tried: [String] = []
        for dir in directories {
            for file in ["lib\(name).so", "\(name).so", name] {
                let path = dir.hasSuffix("/") ? dir + file : dir + "/" + file
                if access(path, F_OK) == 0 { return path }
                tried.append(path)
            }
        }
        let places = directories.isEmpty ? "no directories (set VMM_PLUGIN_PATH)" : directories.joined(separator: ", ")
        throw PluginError(plugin: "'\(name)'", "not found; searched \(places) for lib\(name).so, \(name).so and \(name)")
    }
}

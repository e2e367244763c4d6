import VMMKit

/// The plugins every `vmm run` loads unless `--no-default-plugins`, by name from the
/// package's build folders (or `VMM_PLUGIN_PATH`): name, config, and the built-in
/// stand-in used when the library has not been built.
enum DefaultPlugins {
    struct Default {
        let name: String
        let config: String
        let role: String
    }

    static let all = [
        Default(name: "DebugExit", config: "port=0xf4", role: "debug-exit"),
    ]
}

extension Launcher {
    /// Loads the defaults, then every `--plugin PATH[,key=value...]`. A default that is
    /// not built falls back to a built-in device (with a warning); anything else that
    /// fails is a plugin error naming the plugin.
    func loadPlugins(_ host: PluginHost, dispatcher: ExitDispatcher) throws(LauncherError) {
        var loadedRoles: Set<String> = []
        if !options.noDefaultPlugins {
            for d in DefaultPlugins.all {
                do {
                    _ = try host.searchPath.resolve(d.name)
                } catch {
                    log.warning("default plugin \(d.name) is not built (run scripts/build-plugins); using the built-in \(d.role)")
                    continue
                }
                do {
                    let p = try host.load(d.name, config: d.config)
                    log.info("loaded default plugin \(p.id) \(p.version) from \(p.path)")
                    loadedRoles.insert(d.role)
                } catch { throw LauncherError(.plugin, error.description) }
            }
        }
        for spec in options.plugins {
            let (path, config) = Self.split(spec)
            do {
                let p = try host.load(path, config: config)
                log.info("loaded plugin \(p.id) \(p.version) from \(p.path)")
            } catch { throw LauncherError(.plugin, error.description) }
        }
        guard !options.noDefaultPlugins else { return }
        do {
            if !loadedRoles.contains("console") { try BasicConsole(options.serial).register(on: dispatcher) }
            if !loadedRoles.contains("debug-exit") {
                try dispatcher.registerPIO(port: 0xf4, owner: "debug-exit (built-in)") { io, vcpu in
                    let code = Int32(io.value & 0xff)
                    vcpu.requestVMStop(.guestExit(code: code))
                    return .stop(.guestExit(code: code))
                }
            }
        } catch let error as LauncherError {
            throw error
        } catch {
            throw LauncherError(.plugin, "\(error)")
        }
    }

    /// "PATH,key=value,key=value" -> ("PATH", "key=value,key=value").
    static func split(_ spec: String) -> (String, String) {
        guard let comma = spec.firstIndex(of: ",") else { return (spec, "") }
        return (String(spec[..<comma]), String(spec[spec.index(after: comma)...]))
    }
}

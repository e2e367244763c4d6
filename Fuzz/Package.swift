// swift-tools-version:6.1
// libFuzzer targets for VMMKit's input parsers and models (issue 12). A separate
// package so the main build and test time do not pay for them: `scripts/fuzz` builds
// it with -sanitize=fuzzer,address and runs each target. `VMMKit` is a symlink to the
// repository root (a path dependency's identity is its folder's name).
import PackageDescription

// Each target's top-level code hands its test function to libFuzzer (Driver/).
func target(_ name: String, _ deps: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzDriver"] + deps, path: "Targets/\(name)")
}

let loader: [Target.Dependency] = [.product(name: "VMMLoader", package: "VMMKit"), .product(name: "VMMKit", package: "VMMKit")]
let core: [Target.Dependency] = [.product(name: "VMMKit", package: "VMMKit"), .product(name: "CVMMPlugin", package: "VMMKit")]

let package = Package(
    name: "VMMKitFuzz",
    dependencies: [.package(path: "VMMKit")],
    targets: [
        .target(name: "FuzzDriver", path: "Driver"),
        target("fuzz-elf", loader),
        target("fuzz-multiboot", loader),
        target("fuzz-flat", loader),
        target("fuzz-config", core),
        target("fuzz-canary", core),
        target("fuzz-plugin-entry", core),
        target("fuzz-uart", [.product(name: "UART16550", package: "VMMKit")]),
        target("fuzz-recording", core),
        target("fuzz-snapshot", [.product(name: "VMMSnapshot", package: "VMMKit")] + core),
        target("fuzz-control", [.product(name: "VMMControl", package: "VMMKit")]),
        target("fuzz-plugin-file", core),
        target("fuzz-launcher-state", core + [.product(name: "VMMLoader", package: "VMMKit")]),
        target("fuzz-machine-ports", core + [.product(name: "VMMLoader", package: "VMMKit")]),
        // The bundled C plugins from their sources, with coverage (ASan comes from scripts/fuzz).
        .target(name: "CPluginsUnderTest", dependencies: [.product(name: "CVMMPlugin", package: "VMMKit")],
                path: "CPlugins", cSettings: [.unsafeFlags(["-fsanitize=fuzzer-no-link"])]),
        target("fuzz-c-plugins", ["CPluginsUnderTest"] + core),
        target("fuzz-async-pf", [.product(name: "AsyncPFPluginCode", package: "VMMKit")]),
    ]
)

// swift-tools-version:6.1
// Benchmarks live apart from the tests so `scripts/test` builds fast. Build release:
//   scripts/bench
import PackageDescription

let package = Package(
    name: "VMMKitBenchmarks",
    products: [
        // The Swift twin of the C null plugin: what the SDK path costs, no device work.
        .library(name: "NullSwift", type: .dynamic, targets: ["NullSwift", "NullSwiftEntry"]),
    ],
    dependencies: [.package(name: "VMMKit", path: "..")],
    targets: [
        .target(name: "NullSwift", dependencies: [.product(name: "VMMPluginKit", package: "VMMKit"),
                                                  .product(name: "CVMMPlugin", package: "VMMKit")]),
        .target(name: "NullSwiftEntry", dependencies: [.product(name: "CVMMPlugin", package: "VMMKit")],
                publicHeadersPath: "."),
        // The bare Swift process the start-up benchmark compares `vmm run` with.
        .executableTarget(name: "SwiftNoop"),
        // The "direct C call" baseline of the plugin benchmark (PluginBench.swift).
        .target(name: "CPluginBench", dependencies: [.product(name: "CVMMPlugin", package: "VMMKit")]),
        .executableTarget(
            name: "VMMBench",
            dependencies: [
                .product(name: "VMMKit", package: "VMMKit"),
                .product(name: "GuestPayloads", package: "VMMKit"),
                .product(name: "CKVMTestSupport", package: "VMMKit"),
                .product(name: "CVMMPlugin", package: "VMMKit"),
                .product(name: "VMMPaging", package: "VMMKit"),
                .product(name: "VMMAsyncPF", package: "VMMKit"),
                "CPluginBench",
                .product(name: "UART16550", package: "VMMKit"),
                .product(name: "UARTVMM", package: "VMMKit"),
            ]
        ),
    ]
)

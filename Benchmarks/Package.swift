// swift-tools-version:6.1
// Benchmarks live apart from the tests so `scripts/test` builds fast. Build release:
//   scripts/bench
import PackageDescription

let package = Package(
    name: "VMMKitBenchmarks",
    dependencies: [.package(name: "VMMKit", path: "..")],
    targets: [
        .executableTarget(
            name: "VMMBench",
            dependencies: [
                .product(name: "VMMKit", package: "VMMKit"),
                .product(name: "GuestPayloads", package: "VMMKit"),
                .product(name: "CKVMTestSupport", package: "VMMKit"),
            ]
        ),
    ]
)

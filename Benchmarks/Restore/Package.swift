// swift-tools-version:6.1
// Snapshot restore benchmark (issue 15, item 6), a package apart from the tests so
// `scripts/test` stays fast. Run (release): scripts/bench-restore
import PackageDescription

let package = Package(
    name: "VMMRestoreBenchmarks",
    products: [.executable(name: "restore-bench", targets: ["RestoreBench"])],
    dependencies: [.package(name: "VMMKit", path: "../..")],
    targets: [
        .executableTarget(
            name: "RestoreBench",
            dependencies: [
                .product(name: "VMMKit", package: "VMMKit"),
                .product(name: "VMMPaging", package: "VMMKit"),
                .product(name: "VMMSnapshot", package: "VMMKit"),
            ]
        ),
    ]
)

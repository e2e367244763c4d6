// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "MyDevice",
    products: [
        // .dynamic: a shared library the VMM loads with dlopen.
        .library(name: "MyDevice", type: .dynamic, targets: ["MyDevice", "MyDeviceEntry"]),
    ],
    // name: the package is known by its folder name otherwise (this is what Benchmarks/ does).
    dependencies: [.package(name: "VMMKit", path: "path/to/VMMKit")],
    targets: [
        .target(name: "MyDevice", dependencies: [
            .product(name: "VMMPluginKit", package: "VMMKit"),
            .product(name: "CVMMPlugin", package: "VMMKit"),
        ]),
        .target(name: "MyDeviceEntry", dependencies: [.product(name: "CVMMPlugin", package: "VMMKit")],
                publicHeadersPath: "."),
    ]
)
// doc-sample-file: Plugins/README.md #5

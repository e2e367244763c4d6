// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "VMMKit",
    products: [
        .library(name: "VMMKit", targets: ["VMMKit"]),
        .executable(name: "embedded-vmm", targets: ["EmbeddedVMM"]),
        // Demand paging, and what Benchmarks/Paging measures it against.
        .library(name: "VMMPaging", targets: ["VMMPaging"]),
        .library(name: "PagingBenchSupport", targets: ["GuestPayloads", "CPagingBaseline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // The raw KVM ABI: constants, layouts, ioctl wrappers. No logic.
        .target(name: "CKVM", path: "CShims/CKVM"),
        // userfaultfd(2) for the demand-paging engine: constants, layouts, wrappers.
        .target(name: "CUFFD", path: "CShims/CUFFD"),
        // A plain C run loop used as the baseline the Swift loop is measured against.
        .target(name: "CKVMTestSupport", dependencies: ["CKVM"], path: "CShims/CKVMTestSupport"),
        // Guest payloads: position-independent assembly assembled into .rodata.
        .target(name: "GuestPayloads", path: "Examples/Guests"),
        .target(
            name: "VMMKit",
            dependencies: [
                "CKVM",
                "CUFFD",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The raw C userfaultfd loop the demand pager is benchmarked against.
        .target(name: "CPagingBaseline", path: "CShims/CPagingBaseline"),
        // Demand paging of guest RAM through userfaultfd (the memory_fault engine).
        .target(name: "VMMPaging", dependencies: ["VMMKit", "CUFFD"]),
        .executableTarget(
            name: "EmbeddedVMM",
            dependencies: ["VMMKit", "GuestPayloads"],
            path: "Examples/EmbeddedVMM"
        ),
        .testTarget(
            name: "VMMKitTests",
            dependencies: ["VMMKit", "VMMPaging", "GuestPayloads", "CKVM", "CUFFD", "CKVMTestSupport"]
        ),
    ]
)

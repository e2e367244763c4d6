// swift-tools-version:6.1
// Demand-paging and exit-canary benchmarks (issue 4), a package apart from the tests so
// `scripts/test` stays fast. Run (release):
//   swift run -c release --package-path Benchmarks/Paging paging-bench [paging] [canary]
import PackageDescription

let package = Package(
    name: "VMMPagingBenchmarks",
    products: [.executable(name: "paging-bench", targets: ["PagingBench"])],
    dependencies: [.package(name: "VMMKit", path: "../..")],
    targets: [
        .executableTarget(
            name: "PagingBench",
            dependencies: [
                .product(name: "VMMKit", package: "VMMKit"),
                .product(name: "VMMPaging", package: "VMMKit"),
                .product(name: "GuestPayloads", package: "VMMKit"),
                .product(name: "CPagingBaseline", package: "VMMKit"),
            ]
        ),
    ]
)

// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "VMMKit",
    products: [
        .library(name: "VMMKit", targets: ["VMMKit"]),
        // Guest image loading (ELF64, Multiboot v1, flat) and boot-state setup.
        .library(name: "VMMLoader", targets: ["VMMLoader"]),
        // Snapshot and restore: state capture, the on-disk format, eager/lazy restore.
        .library(name: "VMMSnapshot", targets: ["VMMSnapshot"]),
        .executable(name: "vmm", targets: ["Launcher"]),
        .library(name: "VMMAPIServer", type: .dynamic, targets: ["VMMAPIServer"]),
        // The launcher's ArgumentParser front end, dlopened by `vmm` for help, errors and
        // anything but the plain forms of `vmm run` (vmm_command_line.h).
        .library(name: "VMMCommandLine", type: .dynamic, targets: ["VMMCommandLine"]),
        .executable(name: "embedded-vmm", targets: ["EmbeddedVMM"]),
        .executable(name: "uart-console", targets: ["UARTConsole"]),
        // For Benchmarks/ and tools: the guest payloads and the raw C run loop baseline.
        .library(name: "GuestPayloads", targets: ["GuestPayloads"]),
        .library(name: "CKVMTestSupport", targets: ["CKVMTestSupport"]),
        // The Swift plugin SDK (no Foundation).
        .library(name: "VMMPluginKit", targets: ["VMMPluginKit"]),
        // The plugin ABI header alone, for C code built by SwiftPM (e.g. Benchmarks/).
        .library(name: "CVMMPlugin", targets: ["CVMMPlugin"]),
        // A Swift plugin: a shared library loaded at run time (dlopen), never linked in.
        .library(name: "ScratchDevice", type: .dynamic, targets: ["ScratchDevice", "ScratchDeviceEntry"]),
        // User-space async page faults as a Swift plugin (ABI 1.1), loaded by `vmm run`.
        .library(name: "AsyncPF", type: .dynamic, targets: ["AsyncPFPlugin", "AsyncPFPluginEntry"]),
        .library(name: "CAsyncPFPlugin", targets: ["CAsyncPFPlugin"]),
        // The same plugin's code linked statically, for Fuzz/ (its state blob); never in a VMM.
        .library(name: "AsyncPFPluginCode", targets: ["AsyncPFPlugin"]),
        // Demand paging, and what Benchmarks/Paging measures it against.
        .library(name: "VMMPaging", targets: ["VMMPaging"]),
        .library(name: "VMMAsyncPF", targets: ["VMMAsyncPF"]),
        // Control of a running VM as Swift calls (info, pause, resume, stop, metrics).
        .library(name: "VMMControl", targets: ["VMMControl"]),
        // The async-PF state machine alone (no dependencies): linked by VMMKit and by
        // the AsyncPF plugin.
        .library(name: "AsyncPFCore", targets: ["AsyncPFCore"]),
        .library(name: "CPagingBaseline", targets: ["CPagingBaseline"]),
        .library(name: "PagingBenchSupport", targets: ["CPagingBaseline"]),
        // The 16550A model and its in-process wiring (Plugins/UART), for Benchmarks/ and VMMs.
        .library(name: "UART16550", targets: ["UART16550"]),
        .library(name: "UARTVMM", targets: ["UARTVMM"]),
        // The 16550A as a dlopen'd Swift plugin (libUART.so), built on VMMPluginKit.
        .library(name: "UART", type: .dynamic, targets: ["UARTPlugin", "UARTPluginEntry"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The control API's HTTP server (`vmm run --api-sock`); linked into the launcher only.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // NIOHTTPTypes: the request parts the API server's RequestDeadline handler sees.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Only for `swift package generate-documentation` (DocC); nothing links it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // The raw KVM ABI: constants, layouts, ioctl wrappers. No logic.
        .target(name: "CKVM", path: "CShims/CKVM"),
        // userfaultfd(2) for the demand-paging engine: constants, layouts, wrappers.
        .target(name: "CUFFD", path: "CShims/CUFFD"),
        // seccomp-bpf for vCPU threads: filter install, the SIGSYS reporter, syscall names.
        .target(name: "CSeccomp", path: "CShims/CSeccomp"),
        // One __thread pointer: the fast way to a thread's plugin state.
        .target(name: "CThreadLocal", path: "CShims/CThreadLocal"),
        // prctl for the launcher (Swift cannot call the variadic function).
        .target(name: "CProcess", path: "CShims/CProcess"),
        // A plain C run loop used as the baseline the Swift loop is measured against.
        .target(name: "CKVMTestSupport", dependencies: ["CKVM"], path: "CShims/CKVMTestSupport"),
        // Guest payloads: position-independent assembly assembled into .rodata.
        .target(name: "GuestPayloads", path: "Examples/Guests"),
        // The stable plugin ABI: one header (vmm_plugin.h) plus layout asserts.
        .target(name: "CVMMPlugin", path: "CShims/CVMMPlugin"),
        // libffi, for hypercall handlers whose signature is declared at run time.
        .systemLibrary(name: "CFFI", path: "CShims/CFFI", pkgConfig: "libffi",
                       providers: [.apt(["libffi-dev"])]),
        // Linux's async page fault guest ABI and the per-vCPU state machine: pure logic,
        // no dependencies, shared by the core (VMMAsyncPF) and Plugins/AsyncPF.
        .target(name: "AsyncPFCore"),
        .target(
            name: "VMMKit",
            dependencies: [
                "AsyncPFCore",
                "CKVM",
                "CVMMPlugin",
                "CFFI",
                "CUFFD",
                "CSeccomp",
                "CThreadLocal",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Image loading, a library as rust-vmm's linux-loader is: ELF64, Multiboot v1 and
        // flat images into guest RAM, and the vCPU state each expects at entry.
        .target(
            name: "VMMLoader",
            dependencies: ["VMMKit", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The Swift plugin SDK: a protocol and the entry glue. Depends on the header only.
        .target(name: "VMMPluginKit", dependencies: ["CVMMPlugin"]),
        // The scratch-register test device, a Swift plugin: its Swift code and the one
        // C file that defines the exported `vmm_plugin_entry` data symbol.
        .target(name: "ScratchDevice", dependencies: ["VMMPluginKit", "CVMMPlugin"], path: "Plugins/ScratchDevice/Sources"),
        .target(name: "ScratchDeviceEntry", dependencies: ["CVMMPlugin"], path: "Plugins/ScratchDevice/Entry", publicHeadersPath: "."),
        // The async page fault plugin: the AsyncPFCore state machine over host services.
        .target(name: "AsyncPFPlugin", dependencies: ["VMMPluginKit", "CVMMPlugin", "AsyncPFCore", "CAsyncPFPlugin"], path: "Plugins/AsyncPF/Sources"),
        // The extension the AsyncPF plugin offers (request an NMI / a real #PF under its rule).
        .target(name: "CAsyncPFPlugin", path: "Plugins/AsyncPF/Header"),
        .target(name: "AsyncPFPluginEntry", dependencies: ["CVMMPlugin"], path: "Plugins/AsyncPF/Entry", publicHeadersPath: "."),
        // The raw C userfaultfd loop the demand pager is benchmarked against.
        .target(name: "CPagingBaseline", path: "CShims/CPagingBaseline"),
        // Demand paging of guest RAM through userfaultfd (the memory_fault engine).
        .target(name: "VMMPaging", dependencies: ["VMMKit", "CUFFD"]),
        // User-space async page faults on top of the demand pager: the in-process
        // controller and the host side of the AsyncPF plugin (state machine in AsyncPFCore,
        // KVM plumbing in VMMKit/AsyncPF).
        .target(name: "VMMAsyncPF", dependencies: ["VMMKit", "VMMPaging"]),
        // Snapshot and restore: VM and vCPU state, the on-disk format, eager and lazy
        // (demand-paged) restore. Docs/SnapshotFormat.md.
        .target(name: "VMMSnapshot", dependencies: ["VMMKit", "VMMPaging", "CKVM"]),
        // A running VM's control surface for library users and the launcher's API server:
        // info, pause/resume/stop, metrics, a snapshot hook, and the small JSON it speaks.
        .target(name: "VMMControl", dependencies: ["VMMKit"]),
        // The 16550A UART model: pure Swift, no VMMKit and no plugin SDK, so the same
        // code is unit-tested, wired in-process and wrapped as a dlopen'd plugin.
        .target(name: "UART16550", path: "Plugins/UART/Model"),
        // The UART placed on a VMMKit VM: exit routing, IRQ line, coalesced THR.
        .target(name: "UARTVMM", dependencies: ["UART16550", "VMMKit"], path: "Plugins/UART/InProcess"),
        .target(name: "UARTPlugin", dependencies: ["UART16550", "VMMPluginKit", "CVMMPlugin"], path: "Plugins/UART/Plugin/Sources"),
        .target(name: "UARTPluginEntry", dependencies: ["CVMMPlugin"], path: "Plugins/UART/Plugin/Entry", publicHeadersPath: "."),
        // A guest console on the 16550A with the host terminal as keyboard (raw stdin).
        .executableTarget(
            name: "UARTConsole",
            dependencies: ["VMMKit", "UART16550", "UARTVMM", "GuestPayloads"],
            path: "Examples/UARTConsole"
        ),
        .executableTarget(
            name: "EmbeddedVMM",
            dependencies: ["VMMKit", "VMMLoader"],
            path: "Examples/EmbeddedVMM"
        ),
        // The `vmm` CLI launcher (no Foundation: JSON configs go through its own reader,
        // JSON.swift; no ArgumentParser: libVMMCommandLine.so, loaded when needed).
        .executableTarget(
            name: "Launcher",
            dependencies: [
                "VMMKit",
                "VMMLoader",
                "VMMPaging",
                "VMMAsyncPF",
                "VMMSnapshot",
                "VMMControl",
                "CVMMCommandLine",
                "CVMMAPIServer",
                "CProcess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Examples/Launcher"
        ),
        // The launcher's subcommands as ArgumentParser declares them, parse only; `vmm`
        // loads it when it cannot read its arguments alone, so a run maps neither
        // ArgumentParser nor FoundationEssentials (vmm_command_line.h).
        .target(name: "CVMMCommandLine", path: "Examples/CommandLine/Header"),
        .target(
            name: "VMMCommandLine",
            dependencies: ["CVMMCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/CommandLine/Sources"
        ),
        // The control API's HTTP transport (SwiftNIO, Hummingbird), dlopened by `vmm run
        // --api-sock` only: a run without the flag maps none of it (vmm_api_server.h).
        .target(name: "CVMMAPIServer", path: "Examples/APIServer/Header"),
        .target(
            name: "VMMAPIServer",
            dependencies: [
                "CVMMAPIServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/APIServer/Sources"
        ),
        // The code samples of README.md, Plugins/README.md and the DocC articles, compiled
        // (see Examples/DocSamples/README.md; C samples: scripts/build-plugins).
        .target(name: "DocSamples", dependencies: ["VMMKit", "VMMLoader", "VMMPaging", "VMMSnapshot"], path: "Examples/DocSamples/Swift"),
        .target(name: "DocSamplePlugins", dependencies: ["VMMPluginKit", "CVMMPlugin"], path: "Examples/DocSamples/Plugins"),
        // Restores a snapshot of the snapshot tests' guest in a process of its own.
        .executableTarget(
            name: "SnapshotRunner",
            dependencies: ["VMMKit", "VMMSnapshot"],
            path: "Tests/SnapshotRunner"
        ),
        .testTarget(
            name: "VMMKitTests",
            dependencies: ["VMMKit", "VMMLoader", "VMMPaging", "VMMAsyncPF", "GuestPayloads", "CKVM", "CUFFD", "CKVMTestSupport", "CAsyncPFPlugin",
                           "VMMSnapshot", "VMMControl"]
        ),
        // `vmm run`'s fast argument parser checked against ArgumentParser (imports the launcher).
        .testTarget(name: "LauncherParseTests", dependencies: ["Launcher", "VMMCommandLine"]),
        // The Swift plugin SDK's exit views and trampolines, without a VM.
        .testTarget(name: "PluginKitTests", dependencies: ["VMMPluginKit", "CVMMPlugin"]),
        .testTarget(
            name: "UARTTests",
            dependencies: ["UART16550", "UARTVMM", "VMMKit", "GuestPayloads"]
        ),
    ]
)

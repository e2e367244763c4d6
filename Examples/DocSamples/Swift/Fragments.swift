// The code samples of the documentation, compiled (Examples/DocSamples/README.md).
// Samples that show no imports: their context (the names they use) is here.
import VMMKit
import VMMLoader
import VMMPaging

func readmeLoader(vm: VirtualMachine, vcpu: VCPU) throws {
    // doc-sample: README.md #2
    let entry = try ImageLoader(memory: vm.memory, ramSize: 2 << 20)
        .boot(ImageRequest(path: "kernel.elf", append: "console=ttyS0"), on: vcpu)
    // doc-sample: end
    _ = entry
}

func readmePlugins(vm: VirtualMachine, dispatcher: ExitDispatcher) throws {
    // doc-sample: README.md #3
    let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
    try plugins.load("DebugExit", config: "port=0xf4")   // .build/plugins/libDebugExit.so
    let reasons = try vm.run(dispatcher)
    plugins.close()
    // doc-sample: end
    _ = reasons
}

func readmeDemandPaging(vm: VirtualMachine, dispatcher: ExitDispatcher) throws {
    // doc-sample: README.md #4
    let pager = try DemandPager(memory: vm.memory, region: "ram",
                                source: SnapshotFilePageSource(path: "guest.mem"))   // mode: .blocking
    try pager.attach(to: dispatcher, vcpus: vm.vcpus)
    // or, pages from the dlopen'd plugin:
    let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
    try plugins.load("MemoryFault", config: "snapshot=guest.mem")
    let pager2 = try DemandPager(memory: vm.memory, region: "ram", source: PluginPageSource(plugins))
    // doc-sample: end
    _ = (pager2, plugins)
}

func loadingPlugins(vm: VirtualMachine) throws {
    // doc-sample: Sources/VMMKit/VMMKit.docc/LoadingPlugins.md #1
    let dispatcher = ExitDispatcher()
    let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
    try plugins.load("DebugExit", config: "port=0xf4")
    try plugins.load("/opt/devices/libmydevice.so", config: "irq=5")
    let reasons = try vm.run(dispatcher)
    plugins.close()
    // doc-sample: end
    _ = reasons
}

func pluginsGuideLoadBuilt(plugins: PluginHost) throws {
    // doc-sample: Plugins/README.md #8
    try plugins.load("/path/to/MyDevice/.build/release/libMyDevice.so", config: "port=0x71")
    // doc-sample: end
}

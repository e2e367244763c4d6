// The code samples of the documentation, compiled (Examples/DocSamples/README.md).
import VMMKit

func pluginsGuideLoad(vm: VirtualMachine) throws {
    // doc-sample: Plugins/README.md #2
    let dispatcher = ExitDispatcher()
    let plugins = PluginHost(vm: vm, dispatcher: dispatcher)
    try plugins.load("/path/to/libanswer.so")          // a path, or a name:
    // try plugins.load("answer", config: "")          // lib<name>.so on the search path
    let reasons = try vm.run(dispatcher)
    plugins.close()                                     // destroy(), after the VM stopped
    // doc-sample: end
    _ = reasons
}

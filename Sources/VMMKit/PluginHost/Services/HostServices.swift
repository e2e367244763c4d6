import CKVM
import CVMMPlugin
import Glibc

/// The `vmm_host_t` table handed to each plugin's init: C entry points backed by the
/// VMMKit objects of the instance's VM. `host_data` is the instance's `PluginHandle`:
/// every entry point first resolves it, and refuses a call after `destroy()` with
/// -ESHUTDOWN (log and request_stop, which return nothing, report it on stderr;
/// get_extension returns NULL).
enum HostServices {
    static func afterDestroy(_ what: String) {
        let line = "vmm: a plugin called \(what) after its destroy(): refused\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    static func fill(_ table: UnsafeMutablePointer<vmm_host_t>, hostData: UnsafeMutableRawPointer) {
        table.pointee.struct_size = UInt32(MemoryLayout<vmm_host_t>.size)
        table.pointee.abi_major = UInt16(VMM_PLUGIN_ABI_MAJOR)
        table.pointee.abi_minor = UInt16(VMM_PLUGIN_ABI_MINOR)
        table.pointee.host_data = hostData
        table.pointee.log = { data, level, message in
            guard let plugin = PluginHandle.instance(data) else { return HostServices.afterDestroy("log") }
            let text = message.map(PluginText.read) ?? ""
            // Why a state save or restore on this thread refuses: kept for its error.
            if level == PluginLogLevel.error.rawValue, let state = PluginThreadState.existing, state.capturesStateRefusal {
                state.stateRefusal = text
                return
            }
            plugin.log(PluginLogLevel(rawValue: min(level, 4)) ?? .trace, plugin.library.id, text)
        }
        // size_t arrives as Int: a length above Int.max is negative here, refused.
        table.pointee.read_guest = { data, gpa, buffer, length in
            guard length >= 0 else { return -EINVAL }
            guard let buffer else { return length == 0 ? 0 : -EFAULT }
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            let state = PluginThreadState.existing
            if plugin.host.wouldWaitForever(gpa, length, on: state) { return -EAGAIN }
            // The page a pager is fetching through this handler is missing until the fetch
            // ends: on any thread (an async-PF fetcher, a vCPU), reading it would wait on
            // the fetch for ever (and the process with it, at exit).
            if let staging = state?.staging, staging.overlaps(gpa, length) { return -EAGAIN }
            do { try plugin.host.vm.memory.read(gpa, into: UnsafeMutableRawBufferPointer(start: buffer, count: length)) }
            catch { return -EFAULT }
            return 0
        }
        table.pointee.write_guest = { data, gpa, buffer, length in
            guard length >= 0 else { return -EINVAL }
            guard let buffer else { return length == 0 ? 0 : -EFAULT }
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            // A demand pager is asking for this page: the bytes go to its staging buffer.
            let state = PluginThreadState.existing
            if let staging = state?.staging {
                if staging.take(gpa, buffer, length) { return 0 }
                if staging.crosses(gpa, length) { return -EFAULT }
            }
            if plugin.host.wouldWaitForever(gpa, length, on: state) { return -EAGAIN }
            do { try plugin.host.vm.memory.write(gpa, from: UnsafeRawBufferPointer(start: buffer, count: length)) }
            catch { return -EFAULT }
            return 0
        }
        table.pointee.get_reg = { data, vcpuID, reg, value in
            guard PluginHandle.instance(data) != nil else { return -ESHUTDOWN }
            guard let state = PluginThreadState.active(vcpuID: vcpuID) else { return -EBUSY }
            guard let value else { return -EINVAL }
            return PluginRegisters.get(state, reg, value)
        }
        table.pointee.set_reg = { data, vcpuID, reg, value in
            guard PluginHandle.instance(data) != nil else { return -ESHUTDOWN }
            guard let state = PluginThreadState.active(vcpuID: vcpuID) else { return -EBUSY }
            return PluginRegisters.set(state, reg, value)
        }
        table.pointee.inject_exception = { data, vcpuID, vector, hasCode, code, hasPayload, payload in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            guard let state = PluginThreadState.active(vcpuID: vcpuID), let vcpu = state.vcpu else { return -EBUSY }
            return PluginInjection.exception(vm: plugin.host.vm, vcpu: vcpu, vector: vector,
                                             errorCode: hasCode != 0 ? code : nil,
                                             payload: hasPayload != 0 ? payload : nil)
        }
        table.pointee.inject_interrupt = { data, vcpuID, vector in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            guard let state = PluginThreadState.active(vcpuID: vcpuID), let vcpu = state.vcpu else { return -EBUSY }
            return PluginInjection.interrupt(vm: plugin.host.vm, vcpu: vcpu, vector: vector)
        }
        table.pointee.set_irq_line = { data, irq, level in
            guard let vm = PluginHandle.instance(data)?.host.vm else { return -ESHUTDOWN }
            guard vm.hasIRQChip else { return -ENOTSUP }
            // A level is 0 or 1: anything else is a plugin bug, not "high".
            guard level <= 1 else { return -EINVAL }
            do { try vm.setIRQLine(irq, level: level != 0) } catch { return -EINVAL }
            return 0
        }
        table.pointee.register_handler = { data, desc, errorOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            return PluginRegistration.register(plugin, desc, errorOut)
        }
        table.pointee.request_stop = { data, vcpuID, code, reason in
            guard let plugin = PluginHandle.instance(data) else { return HostServices.afterDestroy("request_stop") }
            plugin.requestStop(vcpuID: vcpuID, code: code, reason: reason.map(PluginText.read) ?? "")
        }
        table.pointee.get_extension = { data, id in
            guard let id, let plugin = PluginHandle.instance(data) else { return nil }
            if let table = HostExtensions.lookup(id) { return table }
            if let table = HostFastPaths.lookup(id, plugin) { return table }
            if let table = PluginThreadExtension.lookup(id, plugin) { return table }
            // Another loaded plugin may offer it (load thread only: plugins' get_extension is).
            return plugin.onLoadThread ? plugin.host.pluginExtension(id, excluding: plugin) : nil
        }
    }
}

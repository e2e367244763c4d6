import CKVM
import CVMMPlugin
import Glibc

/// The vcpu/1 extension (ABI 1.1): kick from any thread, NMI and event state on the
/// vCPU thread, and at load time the MSR filter and CPUID bits a plugin needs (the
/// async page fault plugin takes the protocol over from the kernel with them).
enum PluginVCPUExtension {
    nonisolated(unsafe) static let table: UnsafeRawPointer = {
        let t = UnsafeMutablePointer<vmm_host_vcpu_t>.allocate(capacity: 1)
        t.initialize(to: vmm_host_vcpu_t())
        t.pointee.struct_size = UInt32(MemoryLayout<vmm_host_vcpu_t>.size)
        t.pointee.kick = { data, vcpuID in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            return plugin.host.postKick(vcpuID: vcpuID) ? 0 : -EINVAL
        }
        t.pointee.inject_nmi = { data, vcpuID in
            guard PluginHandle.instance(data) != nil else { return -ESHUTDOWN }
            guard let vcpu = PluginThreadState.active(vcpuID: vcpuID)?.vcpu else { return -EBUSY }
            do { try vcpu.injectNMI() } catch { return -EIO }
            return 0
        }
        t.pointee.pending_events = { data, vcpuID, out in
            guard PluginHandle.instance(data) != nil else { return -ESHUTDOWN }
            guard let vcpu = PluginThreadState.active(vcpuID: vcpuID)?.vcpu else { return -EBUSY }
            guard let out else { return -EINVAL }
            do {
                let e = try vcpu.events()
                var bits: UInt32 = 0
                if e.exception.injected != 0 || e.exception.pending != 0 { bits |= UInt32(VMM_EVENT_EXCEPTION) }
                if e.interrupt.injected != 0 { bits |= UInt32(VMM_EVENT_INTERRUPT) }
                if e.nmi.injected != 0 || e.nmi.pending != 0 { bits |= UInt32(VMM_EVENT_NMI) }
                PluginPointer.store(bits, at: out)
            } catch { return -EIO }
            return 0
        }
        t.pointee.route_msrs = { data, msrs, count, errorOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            guard plugin.onLoadThread else { plugin.setError("\(plugin.name): route_msrs is only allowed during init", errorOut); return -EPERM }
            guard let msrs, count > 0 else { plugin.setError("\(plugin.name): route_msrs got no MSRs", errorOut); return -EINVAL }
            let host = plugin.host
            let before = host.routedMSRs
            // O(n log n) whatever the count.
            let wanted = (host.routedMSRs + (0..<Int(count)).map { PluginPointer.load(msrs, at: $0) }).sortedWithoutRepeats()
            do throws(VMMError) {
                try host.vm.enableUserSpaceMSRExits(reasons: UInt64(KVM_MSR_EXIT_REASON_FILTER))
                try host.vm.denyMSRs(wanted)
            } catch {
                plugin.setError("\(plugin.name): cannot route MSRs to user space: \(error)", errorOut)
                if case .capabilityMissing = error { return -ENOTSUP }
                return -EINVAL
            }
            host.routedMSRs = wanted
            plugin.undoIfInitFails.append {
                _ = try? host.vm.denyMSRs(before) // an empty list lifts the filter
                host.routedMSRs = before
            }
            return 0
        }
        t.pointee.set_cpuid_bits = { data, function, index, reg, set, clear, errorOut in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            guard plugin.onLoadThread else { plugin.setError("\(plugin.name): set_cpuid_bits is only allowed during init", errorOut); return -EPERM }
            guard reg <= 3 else { plugin.setError("\(plugin.name): set_cpuid_bits: register \(reg) is not VMM_CPUID_EAX..EDX", errorOut); return -EINVAL }
            let vcpus = plugin.host.vm.vcpus
            guard !vcpus.isEmpty else {
                plugin.setError("\(plugin.name): set_cpuid_bits: the VM has no vCPU yet (load plugins after creating the vCPUs and setting their CPUID)", errorOut)
                return -ENODEV
            }
            for vcpu in vcpus {
                do throws(VMMError) {
                    let before = try vcpu.cpuid()
                    plugin.undoIfInitFails.append { _ = try? vcpu.setCPUID(before) }
                    guard try vcpu.editCPUID(function: function, index: index, register: Int(reg), set: set, clear: clear) else {
                        plugin.setError("\(plugin.name): set_cpuid_bits: vCPU \(vcpu.id) has no CPUID leaf \(hex(function)) subleaf \(index)", errorOut)
                        return -ENOENT
                    }
                } catch {
                    plugin.setError("\(plugin.name): set_cpuid_bits on vCPU \(vcpu.id): \(error)", errorOut)
                    return -EINVAL
                }
            }
            return 0
        }
        return UnsafeRawPointer(t)
    }()
}

/// The pager/1 extension (ABI 1.1): the VMM's demand pager (`PluginHost.pageService`)
/// installs pages for plugins, now or in the background.
enum PluginPagerExtension {
    nonisolated(unsafe) static let table: UnsafeRawPointer = {
        let t = UnsafeMutablePointer<vmm_host_pager_t>.allocate(capacity: 1)
        t.initialize(to: vmm_host_pager_t())
        t.pointee.struct_size = UInt32(MemoryLayout<vmm_host_pager_t>.size)
        t.pointee.install_page = { data, gpa in
            guard let plugin = PluginHandle.instance(data) else { return -ESHUTDOWN }
            guard let service = plugin.host.pageService else { return -ENODEV }
            guard service.pages(gpa) else { return -EINVAL }
            // From inside a fetch (this thread is filling a page for the pager), an install
            // fetches through a handler again on this thread: of the same page, it waited
            // for itself; of another, it nested a level a page until the stack overflowed.
            guard PluginThreadState.existing?.staging == nil else { return -EDEADLK }
            do { try service.installPage(containing: gpa) } catch { return -EIO }
            return 0
        }
        t.pointee.install_page_async = { data, vcpuID, gpa in
            guard let host = PluginHandle.instance(data)?.host else { return -ESHUTDOWN }
            guard let service = host.pageService else { return -ENODEV }
            guard service.pages(gpa), host.vm.vcpus.contains(where: { $0.id == vcpuID }) else { return -EINVAL }
            return service.installPageInBackground(containing: gpa, vcpuID: vcpuID, host: host) ? 0 : -EAGAIN
        }
        return UnsafeRawPointer(t)
    }()
}

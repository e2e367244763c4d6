import Glibc
import VMMKit
import VMMPaging

/// First touch of fresh guest RAM (issue 11, item 6): a ring-3 guest writes one qword
/// to each page of `megabytes` MiB, under the launcher's default plugins (MemoryFault
/// fill=zero; the pager attached only over `PluginHost.pageSourceRanges`, exactly as
/// `vmm run` does), with no paging plugins, and the way `vmm run` did before zero-fill
/// handlers were left to the kernel (the whole RAM demand-paged through the plugin).
/// Same run, rotated order, medians; the ratios are what counts on a shared machine.
enum FirstTouchBench {
    static func run(megabytes: Int, rounds: Int) throws {
        let pages = megabytes << 8
        let ramSize = (UInt64(pages) * 4096 + PagingBench.dataStart + (2 << 20) - 1) & ~((2 << 20) - 1)
        let kvm = try KVM.open()
        var none: [Double] = [], defaults: [Double] = [], before: [Double] = []
        for round in 0..<rounds {
            for variant in (0..<3).map({ ($0 + round) % 3 }) {
                switch variant {
                case 0: none.append(try time(kvm, ramSize: ramSize, pages: pages, plugins: false, pageEverything: false))
                case 1: defaults.append(try time(kvm, ramSize: ramSize, pages: pages, plugins: true, pageEverything: false))
                default: before.append(try time(kvm, ramSize: ramSize, pages: pages, plugins: true, pageEverything: true))
                }
            }
        }
        let ms = { (ns: Double) in fmt(ns / 1e6, 1) }
        print("first touch: \(megabytes) MiB (\(pages) pages written once), ring-3 guest, median of \(rounds) (all rounds, ms: no plugins \(none.map(ms)), defaults \(defaults.map(ms)), before \(before.map(ms)))")
        print("  no paging plugins:                    \(ms(median(none))) ms (\(fmt(median(none) / Double(pages) / 1000)) us/page)")
        print("  vmm run defaults (MemoryFault fill=zero, kernel zero-fills): \(ms(median(defaults))) ms, \(fmt(median(defaults) / median(none)))x (target <= 1.10x)")
        print("  before: all RAM paged through the plugin: \(ms(median(before))) ms, \(fmt(median(before) / median(none)))x")
    }

    static func time(_ kvm: KVM, ramSize: UInt64, pages: Int, plugins: Bool, pageEverything: Bool) throws -> Double {
        let (vm, dispatcher) = try PagingBench.guest(kvm, ramSize: ramSize, pages: 0)
        defer { vm.close() }
        var regs = try vm.vcpus[0].registers()
        regs.r10 = PagingBench.dataStart
        regs.r11 = UInt64(pages)
        try vm.vcpus[0].setRegisters(regs)
        var host: PluginHost?
        var pager: DemandPager?
        defer { pager?.close(); host?.close() }
        if plugins {
            let h = PluginHost(vm: vm, dispatcher: dispatcher)
            host = h
            try h.load("MemoryFault", config: "fill=zero,priority=-1000")
            let ranges = h.pageSourceRanges
            if pageEverything || !ranges.isEmpty {
                let p = try DemandPager(memory: vm.memory, region: "ram", source: PluginPageSource(h), only: pageEverything ? nil : ranges)
                try p.attach(to: dispatcher, vcpus: vm.vcpus)
                pager = p
            }
        }
        let t = now()
        try PagingBench.check(try vm.run(dispatcher))
        let elapsed = Double(now() - t)
        if pageEverything, let fetched = pager?.statistics.pagesFetched, fetched < pages {
            throw VMMError.invalidArgument("the pager fetched \(fetched) pages, expected at least \(pages)")
        }
        return elapsed
    }
}

import CUFFD
import Glibc
import Synchronization
import SystemPackage
import VMMKit

/// The blocking-mode fault router: one thread reading userfaultfd messages.
///
/// For a message from a vCPU thread it first posts the fault to that vCPU and kicks it:
/// at ring 3 the kick makes `KVM_RUN` return EINTR with the faulting instruction not
/// executed, and the vCPU resolves its own fault (faults handled by the vCPUs, not
/// funnelled through one thread). At ring 0 a kick is not honoured while the page is
/// missing and the kernel re-faults: a second message for a posted page — or the post
/// ageing past `postTimeout` — makes the router resolve it itself. Messages about pages
/// already present are folded. Posts are tracked per page: a vCPU thread handling one
/// posted fault may fault on another page in user space (a plugin reading guest memory),
/// and the first post's expiry must not withdraw the second (that hung a vCPU for ever:
/// the second page's next message passed for taken). A source that may be called from
/// any thread skips the kick: the router installs the page itself and the vCPU never
/// leaves the kernel (unless `vcpuWantsFaults` says its guest uses async page faults).
final class FaultRouter: @unchecked Sendable {
    unowned let pager: DemandPager
    let vcpus: [VCPU]
    private let wakeFD: Int32
    private var thread: pthread_t?
    /// The page the router resolved last (router thread only): read-ahead follows runs.
    private var lastResolved = -2
    /// Page index → when and to whom it was posted, and the access the kernel reported
    /// (router thread only): a post that ages out is resolved here, and the source is
    /// still told what the fault was.
    private var posted: [Int: (at: timespec, vcpu: UInt32, access: PageRequest.Access)] = [:]
    /// Fallback for a kick that was lost: ring 0 answers a kick with a second message at
    /// once (measured), ring 3 with EINTR in about 0.3 ms.
    static let postTimeoutNanoseconds = 10_000_000
    /// Fault injection for tests: a non-zero errno makes the router's next `poll`, or
    /// its next `read` of the userfaultfd, fail with it (failures the kernel cannot be
    /// made to produce on demand).
    let injectedPollError = Atomic<Int32>(0)
    let injectedReadError = Atomic<Int32>(0)
    /// Fault injection for tests: the router posts faults but sends no kick, as when a
    /// kick is lost, so every post reaches `expirePosts`.
    let injectedLostKicks = Atomic<Bool>(false)

    init(pager: DemandPager, vcpus: [VCPU]) throws(VMMError) {
        self.pager = pager
        self.vcpus = vcpus
        wakeFD = cuffd_eventfd()
        guard wakeFD >= 0 else { throw .systemCallFailed(name: "eventfd for the fault router", errno: .init(rawValue: errno)) }
    }

    deinit { close(wakeFD) }

    func start() throws(VMMError) {
        thread = try HostThread.start("uffd-router") { self.loop() }
    }

    func stop() {
        guard let tid = thread else { return }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
        pthread_join(tid, nil)
        thread = nil
    }

    private func loop() {
        // A memory-fault plugin called here that touches a missing page would fault on
        // this thread, the only one that reads the faults: it gets -EAGAIN instead.
        PluginHost.deliversPages { [unowned pager] gpa, length in pager.isPresent(gpa, length: length) }
        let messages = UnsafeMutableBufferPointer<uffd_msg>.allocate(capacity: 64)
        defer { messages.deallocate() }
        var fds = [pollfd(fd: pager.uffd.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        while true {
            let timeout: Int32 = posted.isEmpty ? -1 : 1
            let injected = injectedPollError.load(ordering: .relaxed)
            let n = injected != 0 ? -1 : poll(&fds, 2, timeout)
            if n < 0 {
                let err = injected != 0 ? injected : errno
                if err == EINTR { continue }
                return fail("poll on the userfaultfd failed: \(Errno(rawValue: err))")
            }
            if fds[1].revents != 0 { return }
            if fds[0].revents & Int16(POLLERR | POLLNVAL) != 0 {
                return fail("the userfaultfd (fd \(fds[0].fd)) reported \(fds[0].revents & Int16(POLLNVAL) != 0 ? "POLLNVAL" : "POLLERR")")
            }
            // One batch a poll, not a drain until empty: vCPUs that keep faulting kept
            // the router reading, never back at `poll` (whose failure went unnoticed)
            // nor at `expirePosts` (a lost kick waited for the stream to pause).
            if fds[0].revents & Int16(POLLIN) != 0 {
                let count: Int
                do throws(Errno) {
                    let injected = injectedReadError.load(ordering: .relaxed)
                    if injected != 0 { throw Errno(rawValue: injected) }
                    count = try pager.uffd.read(into: messages)
                } catch {
                    return fail("read from the userfaultfd failed: \(error)")
                }
                for i in 0..<count where messages[i].event == UInt8(CUFFD_EVENT_PAGEFAULT) {
                    withUnsafePointer(to: &messages[i]) { handle($0) }
                }
            }
            expirePosts()
        }
    }

    private func handle(_ message: UnsafePointer<uffd_msg>) {
        let host = UInt(cuffd_msg_address(message))
        let base = UInt(bitPattern: pager.region.hostAddress)
        guard host >= base, host - base < UInt(pager.region.size) else { return }
        let page = Int((host - base) / UInt(GuestMemory.pageSize))
        pager.count { $0.messages += 1 }
        if pager.tracker.isPresent(page) {
            pager.count { $0.foldedMessages += 1 }
            return
        }
        if let post = posted[page] {
            if pager.wasTaken(pager.gpa(ofPage: page), by: post.vcpu) {
                // The vCPU is resolving it (or has stopped trying): not ours any more.
                posted[page] = nil
                pager.count { $0.foldedMessages += 1 }
                return
            }
            // The kernel faulted again after the kick: the vCPU cannot take it (ring 0).
            posted[page] = nil
            pager.withdraw(pager.gpa(ofPage: page), from: post.vcpu)
            resolve(page, tid: Int32(bitPattern: cuffd_msg_tid(message)), access: access(message))
            return
        }
        let tid = Int32(bitPattern: cuffd_msg_tid(message))
        let faulting = vcpus.first(where: { $0.hooks.threadID == tid })
        if pager.vcpusResolveOwnFaults, let vcpu = faulting ?? kernelAsyncPFVCPU(),
           faulting == nil || !pager.source.mayBeCalledFromAnyThread || pager.vcpuWantsFaults?(vcpu.id) == true {
            if faulting == nil { pager.count { $0.kernelWorkerFaults += 1 } }
            pager.post(pager.gpa(ofPage: page), to: vcpu)
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            posted[page] = (now, vcpu.id, access(message))
            pager.count { $0.kicks += 1 }
            if !injectedLostKicks.load(ordering: .relaxed) { vcpu.signalThread() }
            return
        }
        resolve(page, tid: tid, access: access(message))
    }

    /// The router cannot read faults any more: nothing would deliver a page again, and
    /// a vCPU that faults would wait in the kernel for ever. Every vCPU is stopped with
    /// the diagnosis, then the region leaves the userfaultfd, which wakes the threads
    /// waiting on it (a ring-0 fault ignores kicks); each leaves the kernel with its
    /// stop already requested, so none runs on over a page that was never delivered.
    private func fail(_ what: String) {
        let reason = StopReason.stuck("demand paging from \(pager.source.name) ended: its fault router stopped because \(what); no page can be delivered any more")
        for vcpu in vcpus { vcpu.requestStop(reason) }
        pager.uffd.unregister(pager.region.hostAddress, length: Int(pager.region.size))
    }

    private func access(_ message: UnsafePointer<uffd_msg>) -> PageRequest.Access {
        cuffd_msg_flags(message) & CUFFD_PAGEFAULT_FLAG_WRITE != 0 ? .write : .read
    }

    private func expirePosts() {
        guard !posted.isEmpty else { return }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        for (page, post) in posted {
            let age = (now.tv_sec - post.at.tv_sec) * 1_000_000_000 + (now.tv_nsec - post.at.tv_nsec)
            let gpa = pager.gpa(ofPage: page)
            if pager.tracker.isPresent(page) || pager.wasTaken(gpa, by: post.vcpu) {
                posted[page] = nil
            } else if age > Self.postTimeoutNanoseconds {
                // The kick was lost or cannot be honoured: resolve it here.
                posted[page] = nil
                pager.withdraw(gpa, from: post.vcpu)
                resolve(page, tid: vcpus.first { $0.id == post.vcpu }?.hooks.threadID ?? 0, access: post.access)
            }
        }
    }

    /// Installs a page on the router thread. If the source cannot deliver it, the
    /// faulting vCPU is stopped as stuck and a zero page is installed so it leaves the
    /// kernel (it stops before running on; the guest's state is then not to be trusted).
    private func resolve(_ page: Int, tid: Int32, access: PageRequest.Access) {
        let vcpu = tid == 0 ? nil : vcpus.first { $0.hooks.threadID == tid }
        do {
            try pager.ensurePresent(page, by: .router, for: PageRequest(vcpu: vcpu?.id, access: access))
            readAhead(after: page)
        } catch {
            let gpa = pager.gpa(ofPage: page)
            if let vcpu {
                vcpu.requestStop(pager.stuckWithoutRegisters(vcpu, gpa: gpa, error))
            } else {
                for vcpu in vcpus { vcpu.requestStop(pager.stuckWithoutRegisters(vcpu, gpa: gpa, error)) }
            }
            pager.installZeroPage(page)
        }
    }
}

extension FaultRouter {
    /// A sequential fault: install the next `readAheadPages` missing pages now, while the
    /// vCPU runs on. A page the source cannot deliver is left for its own fault.
    /// The run continues where the read-ahead stopped: the next fault after it counts
    /// as sequential too.
    private func readAhead(after page: Int) {
        let limit = pager.readAheadPages
        guard limit > 0, page == lastResolved + 1 else { lastResolved = page; return }
        let pages = Int(pager.region.size / GuestMemory.pageSize)
        var next = page + 1
        while next <= page + limit && next < pages {
            if !pager.tracker.isPresent(next), (try? pager.ensurePresent(next, by: .router, for: PageRequest(vcpu: nil, access: []))) != nil {
                pager.count { $0.readAhead += 1 }
            }
            next += 1
        }
        lastResolved = next - 1
    }
}

extension DemandPager {
    /// The stuck diagnosis from the router, which cannot read a running vCPU's registers.
    func stuckWithoutRegisters(_ vcpu: VCPU, gpa: UInt64, _ error: VMMError) -> StopReason {
        .stuck("vCPU \(vcpu.id) (blocked in the kernel on the page): \(source.name) could not deliver guest-physical page 0x\(String(gpa & ~0xfff, radix: 16)) after \(max(1, retryLimit)) tries: \(error)")
    }

    func installZeroPage(_ page: Int) {
        let zeros = UnsafeMutableRawPointer.allocate(byteCount: Int(GuestMemory.pageSize), alignment: 4096)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0, count: Int(GuestMemory.pageSize))
        _ = try? uffd.copy(to: region.hostAddress + page * Int(GuestMemory.pageSize), from: zeros, length: Int(GuestMemory.pageSize))
        tracker.markPresent(page)
    }
}

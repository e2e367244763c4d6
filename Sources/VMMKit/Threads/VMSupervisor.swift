import Glibc

/// Runs a VM's vCPUs as one machine, as a PC behaves:
///
/// - **Stop as a whole.** When one vCPU's loop ends on an error (anything but
///   `.halted`, `.requested`, `.guestExit`, `.reset`, `.powerOff` or `.guestPanic`: an unhandled exit, an internal error, a
///   failed handler, a stuck fault, a triple fault), every other vCPU is kicked at once
///   and stops with `.requested`. `Outcome.firstError` names the vCPU that stopped first.
/// - **Halt detection** (`detectHalt`, for VMs with an in-kernel irqchip, where HLT
///   never exits to user space): a monitor thread looks every `pollInterval` at the
///   vCPU threads; only when every one of them sleeps in the kernel does it pause them
///   all and read their state. The machine is dead — and every vCPU stops with
///   `.halted` — when each vCPU is either halted (`KVM_MP_STATE_HALTED`) with
///   interrupts off (RFLAGS.IF = 0) and no NMI pending or being injected, or still waits
///   for INIT/SIPI (`UNINITIALIZED`, `INIT_RECEIVED`): nothing but an NMI, INIT or SIPI
///   wakes such a vCPU, and no vCPU is left to send one. Otherwise they are resumed
///   (a vCPU waiting in HLT with interrupts on, for a timer, is merely paused for a
///   moment). Devices outside the VM that raise NMIs are not expected.
public final class VMSupervisor: @unchecked Sendable {
    public struct Outcome: Sendable {
        /// Each vCPU's stop reason, indexed like `vm.vcpus`.
        public let reasons: [StopReason]
        /// The vCPU whose error stopped the machine, if one did.
        public let firstError: Int?
        /// Whether halt detection found every vCPU halted with nothing to wake it.
        public let allHalted: Bool
    }

    private let vm: VirtualMachine
    private let detectHalt: Bool
    private let pollSeconds: Double
    private let lock = ConditionLock()
    // Guarded by lock:
    private var firstError: Int?
    private var running = 0
    private var allHalted = false
    /// A vCPU could not start: the monitor ends (those that did are stopped).
    private var abandoned = false
    private var inspected = 0
    /// How many times the monitor looked at the vCPUs' state (any thread may read it).
    public var inspections: Int {
        lock.lock()
        defer { lock.unlock() }
        return inspected
    }

    public init(vm: VirtualMachine, detectHalt: Bool, pollInterval seconds: Double = 0.01) {
        self.vm = vm
        self.detectHalt = detectHalt
        pollSeconds = max(0.001, seconds)
    }

    static func isError(_ reason: StopReason) -> Bool {
        switch reason {
        case .halted, .requested, .guestExit, .reset, .powerOff, .guestPanic: false
        default: true
        }
    }

    /// Starts every vCPU on `dispatcher` and waits until all have stopped. `started` runs
    /// on this thread once every vCPU thread exists (a control API opens for requests
    /// then: before it, a vCPU that has not started reads as stopped).
    public func run(_ dispatcher: ExitDispatcher, started: () -> Void = {}) throws(VMMError) -> Outcome {
        let all = vm.vcpus
        lock.lock()
        running = all.count
        lock.unlock()
        dispatcher.freeze()
        var monitor: pthread_t?
        if detectHalt {
            // Without it a machine whose vCPUs all halt would wait forever: not a run to
            // start. Started first, so that no guest code has run when it cannot be, and
            // every thread a guest's own act starts (the launcher's RTC interrupts) comes after it.
            monitor = try HostThread.start("halt-watch") { self.watch() }
        }
        for (i, vcpu) in all.enumerated() {
            do {
                _ = try vcpu.liveFD()
                try vcpu.control.start(name: "vcpu\(vcpu.id)") { [self] in
                    let reason = vcpu.loop(dispatcher) // the loop of the thread `start` made
                    stopped(i, reason)
                    return reason
                }
            } catch {
                VCPU.stopAll(all)
                if let monitor {
                    lock.lock()
                    abandoned = true
                    lock.broadcast()
                    lock.unlock()
                    pthread_join(monitor, nil)
                }
                throw error
            }
        }
        started()
        let reasons = all.map { $0.join() }
        if let monitor { pthread_join(monitor, nil) }
        lock.lock()
        defer { lock.unlock() }
        return Outcome(reasons: reasons, firstError: firstError, allHalted: allHalted)
    }

    /// On a vCPU thread whose loop just ended.
    private func stopped(_ index: Int, _ reason: StopReason) {
        lock.lock()
        running -= 1
        let first = Self.isError(reason) && firstError == nil
        if first { firstError = index }
        lock.broadcast()
        lock.unlock()
        guard first else { return }
        for (i, v) in vm.vcpus.enumerated() where i != index { v.requestStop(.requested) }
    }

    private func watch() {
        lock.lock()
        while running > 0 && !abandoned {
            let deadline = Deadline.after(seconds: pollSeconds)
            _ = lock.wait(until: deadline)
            guard running > 0, firstError == nil, !abandoned else { break }
            lock.unlock()
            let dead = allSleeping() && inspect()
            lock.lock()
            if dead {
                allHalted = true
                break
            }
        }
        lock.unlock()
    }

    /// Every live vCPU thread is asleep in the kernel (state S in /proc): cheap, no kick.
    private func allSleeping() -> Bool {
        for v in vm.vcpus where v.isRunning {
            let tid = v.hooks.threadID
            guard tid > 0, Self.threadState(tid) == UInt8(ascii: "S") else { return false }
        }
        return true
    }

    static func threadState(_ tid: Int32) -> UInt8? {
        let fd = open("/proc/self/task/\(tid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 256) }
        guard n > 0 else { return nil }
        // "tid (comm) S ...": the state follows the last ')'.
        guard let close = buf[0..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return nil }
        return buf[close + 2]
    }

    /// Pauses every vCPU, decides whether the machine is dead, stops or resumes it.
    private func inspect() -> Bool {
        let all = vm.vcpus
        // A vCPU someone else paused (a control API, a plugin) is left alone, and the
        // machine then counts as alive: only vCPUs paused here are inspected and resumed.
        let mine = all.map { $0.pauseIfRunning() }
        lock.lock()
        inspected += 1
        lock.unlock()
        var dead = true
        var anyHalted = false
        for (v, paused) in zip(all, mine) where v.isRunning {
            guard paused else { dead = false; break }
            guard let state = try? v.mpState() else { dead = false; break }
            switch state {
            case 1, 2: continue // waiting for INIT/SIPI
            case 3:
                guard let regs = try? v.registers(), let events = try? v.events(),
                      regs.rflags & 0x200 == 0, events.nmi.pending == 0, events.nmi.injected == 0 else { dead = false; break }
                anyHalted = true
            default:
                dead = false
            }
            if !dead { break }
        }
        dead = dead && anyHalted
        for (v, paused) in zip(all, mine) where paused {
            if dead { v.requestStop(.halted) } else { v.resume() }
        }
        return dead
    }
}

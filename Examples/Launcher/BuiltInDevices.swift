import VMMKit

/// The devices the launcher itself put into this machine (each nil when it did not:
/// a plugin took its ports, or `--strict-io`...), kept for snapshots and restores.
/// Filled while the machine is built, before any vCPU runs; read with the vCPUs paused.
final class BuiltInDevices: @unchecked Sendable {
    var fwCfg: FwCfg?
    var resetControl: ResetControl?
    var systemControlA: SystemControlPortA?
    var i8042: I8042?
    var console: BasicConsole?
    var powerManagement: ACPIPowerManagement?
    var pmTimer: ACPIPMTimer?
    var vga: VGARegisters?
    var dac: VGADAC?
    var rtc: RTC?
    var ata: ATADisk?
    var cdrom: ATAPIDrive?
    var floppy: FloppyController?
    var parallel: ParallelPort?
    var dma: ISADMA?
    var bochs: BochsDisplay?
    var hpet: HPET?

    var state: BuiltInDeviceState {
        let pm1 = powerManagement?.registers
        return BuiltInDeviceState(fwCfg: fwCfg?.state, resetControl: resetControl?.state, systemControlA: systemControlA?.state,
                                  i8042: i8042?.state, consoleLCR: console?.lcrState, pm1Control: pm1?.control,
                                  pm1Events: pm1.map { .init(status: $0.status, enable: $0.enable) }, pmTimer: pmTimer?.count, vga: vga?.registers, rtc: rtc?.state,
                                  ata: ata?.saved, bochs: bochs?.registers, dac: dac.flatMap { d in let r = d.registers; return r == .init() ? nil : r },
                                  hpet: hpet.flatMap { h in let r = h.saved; return r.isReset ? nil : r }, atapi: cdrom.flatMap { c in let s = c.saved; return s == ATAPIState() ? nil : s },
                                  floppy: floppy.flatMap { f in let s = f.saved; return s == FloppyState() ? nil : s },
                                  parallel: parallel.flatMap { p in let r = p.registers; return r == .init() ? nil : r },
                                  dma: dma.flatMap { d in let r = d.registers; return r == ISADMA.resetRegisters ? nil : r })
    }

    /// Keeps the RTC's and the HPET's interrupt threads from raising anything until
    /// `releaseInterrupts`: a snapshot reads these devices and the in-kernel irqchip as
    /// of one moment. (An interrupt raised between the two was in the irqchip's state and,
    /// for the HPET, fired again by the restored comparator: twice; for the RTC, with its
    /// flag missing from the saved register C: a spurious interrupt and a lost event.)
    func holdInterrupts() { interruptThreads.forEach { $0.hold() } }

    func releaseInterrupts() { interruptThreads.forEach { $0.release() } }

    private var interruptThreads: [DeviceThread] { [rtc?.thread, hpet?.thread].compactMap { $0 } }

    /// Ends what runs beside the vCPUs (the RTC's and the HPET's interrupt threads): the run is over.
    func close() {
        rtc?.stopInterrupts()
        hpet?.stopInterrupts()
    }

    /// Starts what a restored state needs beside the vCPUs (the RTC's and the HPET's
    /// interrupt threads, where the guest had enabled an interrupt or armed a timer),
    /// before they run.
    func startThreads() throws(LauncherError) {
        do { try rtc?.startInterruptsIfEnabled() } catch {
            throw LauncherError(.host, "cannot start the RTC's interrupts (IRQ 8): \(error)")
        }
        do { try hpet?.startInterruptsIfArmed() } catch {
            throw LauncherError(.host, "cannot start the HPET's interrupts: \(error)")
        }
    }

    /// Puts a snapshot's state back. The machine rebuilt from the snapshot must have the
    /// same built-in devices; one fewer or more means it is not the machine the state
    /// belongs to (the UART plugin built since, or no longer: the built-in COM1 differs).
    func restore(_ s: BuiltInDeviceState) throws(LauncherError) {
        func differ(_ name: String, saved: Bool) -> LauncherError {
            LauncherError(.snapshot, "launcher devices: the snapshot \(saved ? "has" : "has no") state of the built-in \(name), and this machine \(saved ? "has none" : "has one") (a plugin built or removed since?)")
        }
        guard (s.fwCfg != nil) == (fwCfg != nil) else { throw differ("fw_cfg", saved: s.fwCfg != nil) }
        guard (s.resetControl != nil) == (resetControl != nil) else { throw differ("reset control (port 0xcf9)", saved: s.resetControl != nil) }
        // A blob written before port 0x92 was built in has no line for it: the port is then
        // as after a reset (0). A line for it on a machine without it is refused as usual.
        if s.systemControlA != nil, systemControlA == nil { throw differ("system control port A (port 0x92)", saved: true) }
        guard (s.i8042 != nil) == (i8042 != nil) else { throw differ("i8042", saved: s.i8042 != nil) }
        guard (s.consoleLCR != nil) == (console != nil) else { throw differ("console (COM1)", saved: s.consoleLCR != nil) }
        guard (s.pm1Control != nil) == (powerManagement != nil) else { throw differ("ACPI PM1a control (port 0x604)", saved: s.pm1Control != nil) }
        // A blob written before the PM timer was built in has no line for it: it then counts
        // on from 0, as in a new machine.
        if s.pmTimer != nil, pmTimer == nil { throw differ("ACPI PM timer (port 0x608)", saved: true) }
        // Likewise the VGA registers: an older blob leaves them as mode 3 set them.
        if s.vga != nil, vga == nil { throw differ("VGA registers (ports 0x3d4, 0x3d5, 0x3da...)", saved: true) }
        // The DAC's line is written only when it is not as after a reset.
        if s.dac != nil, dac == nil { throw differ("VGA DAC (ports 0x3c6-0x3c9)", saved: true) }
        // Every presence is checked before any device changes: a refused restore leaves none half-restored.
        guard (s.rtc != nil) == (rtc != nil) else { throw differ("RTC (ports 0x70-0x71)", saved: s.rtc != nil) }
        guard (s.ata != nil) == (ata != nil) else { throw differ("ATA disk (--hda)", saved: s.ata != nil) }
        if let a = s.ata, let why = ata?.refusal(a) { throw LauncherError(.snapshot, "launcher devices: \(why)") }
        // A blob written before the CD-ROM drive was built in has no line for it: it then
        // restores as after a reset, the drive such a guest saw as an empty channel.
        if s.atapi != nil, cdrom == nil { throw differ("CD-ROM drive (ports 0x170-0x177, 0x376)", saved: true) }
        // Likewise the floppy controller: as after power-on without its line.
        if s.floppy != nil, floppy == nil { throw differ("floppy controller (ports 0x3f1-0x3f5, 0x3f7)", saved: true) }
        if s.parallel != nil, parallel == nil { throw differ("parallel port (ports 0x378-0x37f)", saved: true) }
        if s.dma != nil, dma == nil { throw differ("ISA DMA controllers (ports 0x00-0x0f, 0xc0-0xdf)", saved: true) }
        guard (s.bochs != nil) == (bochs != nil) else { throw differ("Bochs VBE display (--vga std)", saved: s.bochs != nil) }
        // The HPET's line is written only when it is not as after a reset (and blobs from
        // before it was built in have none).
        if s.hpet != nil, hpet == nil { throw differ("HPET (0xfed00000)", saved: true) }
        if let f = s.fwCfg { try fwCfg?.restore(f) }
        if let r = s.resetControl { resetControl?.restore(r) }
        systemControlA?.restore(s.systemControlA ?? 0)
        if let k = s.i8042 { i8042?.restore(k) }
        if let lcr = s.consoleLCR { console?.lcrState = lcr }
        if let pm = s.pm1Control {
            powerManagement?.restore(.init(status: s.pm1Events?.status ?? 0, enable: s.pm1Events?.enable ?? 0, control: pm))
        }
        if let t = s.pmTimer { pmTimer?.restore(t) }
        if let v = s.vga { vga?.restore(v) }
        dac?.restore(s.dac ?? .init())
        if let r = s.rtc { rtc?.restore(r) }
        if let a = s.ata { ata?.restore(a) }
        if let b = s.bochs { bochs?.restore(b) }
        cdrom?.restore(s.atapi ?? ATAPIState())
        floppy?.restore(s.floppy ?? FloppyState())
        parallel?.restore(s.parallel ?? .init())
        dma?.restore(s.dma ?? ISADMA.resetRegisters)
        hpet?.restore(s.hpet ?? HPETState())
        // The RTC's output reaches IRQ 8 through the HPET, which holds it while in
        // LegacyReplacement mode: it must know the level to give it when the mode ends.
        if let rtc, let hpet { hpet.restoreRTCLevel(rtc.outputRaised) }
    }
}

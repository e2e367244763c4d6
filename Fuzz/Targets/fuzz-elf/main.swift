import FuzzDriver
import VMMKit
import VMMLoader

// ELF64/ELF32 parsing and loading: the input is the image file. Guest RAM is 16 MiB of
// detached memory (no KVM), so the whole loader runs, writes included.
let memory: GuestMemory = {
    let m = GuestMemory.detached()
    _ = try! m.addRegion(name: "ram", guestAddress: 0, size: 16 << 20)
    return m
}()
// With the firmware tables, as `vmm` loads: images over the BIOS area reach their placement.
let loader = ImageLoader(memory: memory, ramSize: 16 << 20, firmware: try! PCFirmware(processors: 4, devices: .all))

runFuzzer { data, size in
    let bytes = Array(fuzzInput(data, size))
    if let elf = try? ELFImage(bytes, path: "fuzz.elf") {
        // What the parser promises: every segment's file bytes lie inside the file.
        for s in elf.segments { precondition(s.fileOffset + s.fileSize <= UInt64(bytes.count)) }
    }
    _ = try? loader.load(bytes, ImageRequest(path: "fuzz.elf"))
    return 0
}

import FuzzDriver
import VMMKit
import VMMLoader

// Multiboot v1: the input's first 24 bytes are the header's flags and a.out-kludge
// fields (header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr), written
// with a valid magic and checksum at offset 0 so every input reaches the loader; the
// rest is the kernel body (an ELF32 body when the kludge flag is clear).
let memory: GuestMemory = {
    let m = GuestMemory.detached()
    _ = try! m.addRegion(name: "ram", guestAddress: 0, size: 16 << 20)
    return m
}()
// With the firmware tables, as `vmm` loads: images over the BIOS area reach their placement.
let loader = ImageLoader(memory: memory, ramSize: 16 << 20, firmware: try! PCFirmware(processors: 4, devices: .all))

runFuzzer { data, size in
    let input = Array(fuzzInput(data, size))
    guard input.count >= 24 else { return 0 }
    func word(_ i: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(input[i * 4 + $1]) << (8 * $1) } }
    let magic: UInt32 = 0x1BAD_B002
    let flags = word(0) & 0x0001_0003 // only the supported bits: the rest is refused before any parsing
    var header = [magic, flags, 0 &- (magic &+ flags)] + (1..<6).map(word)
    let body = Array(input[24...])
    if flags & (1 << 16) == 0 {
        // An ELF32 body: the Multiboot header must come within its first 8 KiB, after the ELF header.
        guard body.count >= 52 else { return 0 }
        header.removeLast(5)
        let headerBytes = header.flatMap { w in withUnsafeBytes(of: w.littleEndian) { Array($0) } }
        var image = body
        let at = min(52 + Int(input[4] & 0x3f) * 4, image.count)
        image.insert(contentsOf: headerBytes, at: at)
        _ = try? loader.load(image, ImageRequest(path: "fuzz.mb", append: "console=ttyS0"))
    } else {
        let image = header.flatMap { w in withUnsafeBytes(of: w.littleEndian) { Array($0) } } + body
        _ = try? loader.load(image, ImageRequest(path: "fuzz.mb", append: "console=ttyS0"))
    }
    return 0
}

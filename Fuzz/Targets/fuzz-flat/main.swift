import FuzzDriver
import VMMKit
import VMMLoader

// Flat binaries: the input's first 17 bytes are the load address, the entry and the
// mode (16 or 64 by the low bit), as flags or a config give them; the rest is the image.
let memory: GuestMemory = {
    let m = GuestMemory.detached()
    _ = try! m.addRegion(name: "ram", guestAddress: 0, size: 16 << 20)
    return m
}()
// With the firmware tables, as `vmm` loads: images over the BIOS area reach their placement.
let loader = ImageLoader(memory: memory, ramSize: 16 << 20, firmware: try! PCFirmware(processors: 4, devices: .all))

runFuzzer { data, size in
    let input = Array(fuzzInput(data, size))
    guard input.count >= 17 else { return 0 }
    func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(input[at + $1]) << (8 * UInt64($1)) } }
    // Half the inputs near RAM (so loads succeed), half anywhere in 64 bits.
    let near = input[16] & 2 != 0
    let load = near ? u64(0) % (32 << 20) : u64(0)
    let entry = input[16] & 4 != 0 ? nil : (near ? load &+ u64(8) % 0x20000 : u64(8))
    let request = ImageRequest(path: "fuzz.bin", loadAddress: load, entry: entry, flatMode: input[16] & 1 == 0 ? 64 : 16)
    _ = try? loader.load(Array(input[17...]), request)
    return 0
}

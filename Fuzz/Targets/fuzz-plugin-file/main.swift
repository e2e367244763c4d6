import FuzzDriver
import Glibc
@testable import VMMKit

// The plugin file reader behind `vmm plugins` and `PluginDescriptor.read`: a shared
// library read as data (program headers, the dynamic section, GNU and SysV symbol hash
// tables, RELA and RELR relocations, the descriptor and its strings), never loaded.
// The input is the file. Any bytes give a descriptor or one line of error; a
// descriptor's id is a reverse-DNS name.

/// The file the reader opens, rewritten for each input: unlinked at once and reopened
/// through /proc, so nothing is left behind. Before `runFuzzer`, which never returns: a
/// global of main.swift declared after it would never be initialised.
let file = { () -> Int32 in
    let name = "/dev/shm/vmmkit-fuzz-plugin-file-\(getpid()).so"
    let fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "cannot create \(name)")
    unlink(name)
    return fd
}()
let path = "/proc/self/fd/\(file)"

runFuzzer { data, size in
    let input = fuzzInput(data, size)
    precondition(ftruncate(file, 0) == 0)
    if let base = input.baseAddress { precondition(pwrite(file, base, input.count, 0) == input.count) }
    do throws(PluginError) {
        let descriptor = try PluginDescriptor.read(path)
        precondition(PluginEntryFields.isReverseDNS(descriptor.id), "id \(descriptor.id.debugDescription)")
    } catch {
        requireOneLine(error.description)
    }
    return 0
}

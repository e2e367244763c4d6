import Glibc

// What the leak tests compare before and after a run. A leak is something the run left
// open; counts of the whole process are not that: on a loaded machine an earlier test's
// object may be released meanwhile (fds went 34 -> 31 during a 20-iteration check), and
// glibc may add a malloc arena (2 mappings) when a thread finds the others busy.

/// This process's open fds, each as "NUMBER -> TARGET" (/proc/self/fd).
func openFDs() -> Set<String> {
    guard let dir = opendir("/proc/self/fd") else { return ["opendir /proc/self/fd failed"] }
    defer { closedir(dir) }
    let own = dirfd(dir)
    var found = Set<String>()
    var target = [CChar](repeating: 0, count: 512)
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let fd = Int32(name), fd != own else { continue }
        let n = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
        let what = n > 0 ? target.prefix(n).withUnsafeBytes { String(decoding: $0, as: UTF8.self) } : "?"
        found.insert("\(fd) -> \(what)")
    }
    return found
}

/// The fds open now that were not open at `before`: what a run left behind.
func fdsOpened(since before: Set<String>) -> Set<String> { openFDs().subtracting(before) }

/// Open file descriptors of this process.
func openFDCount() -> Int { openFDs().count }

/// Whether this test process runs under ASan or TSan (scripts/test-sanitizers): their
/// allocators map memory on their own and keep freed blocks in a quarantine, so counts of
/// /proc/self/maps lines say nothing about our leaks there; the plain suite checks them.
let mappingsUnreliable: Bool = dlsym(nil, "__asan_init") != nil || dlsym(nil, "__tsan_init") != nil

/// From the first count on, glibc creates no more malloc arenas in this process
/// (`mallopt(M_ARENA_MAX, 1)`: threads share the arenas that exist), so a new arena's
/// two mappings cannot appear in the middle of a leak check. Glibc's module does not
/// export mallopt, hence dlsym.
private let mallocArenasCapped: Bool = {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(nil, "mallopt") else { return false }
    let M_ARENA_MAX: Int32 = -8 // <malloc.h>
    return unsafeBitCast(symbol, to: Mallopt.self)(M_ARENA_MAX, 1) == 1
}()

/// Lines in /proc/self/maps: one per mapping.
func mappingCount() -> Int {
    _ = mallocArenasCapped
    guard let f = fopen("/proc/self/maps", "r") else { return -1 }
    defer { fclose(f) }
    var n = 0
    while true {
        let c = fgetc(f)
        if c == EOF { break }
        if c == 10 { n += 1 }
    }
    return n
}

import Testing
@testable import VMMKit

/// The flat segment table dispatch searches, against the rule it implements: at each
/// address, the entries covering it, by priority and then the oldest first.
@Suite("Address range tables")
struct AddressRangeTableTests {
    @Test("every address finds the handlers covering it in priority order (the one-pass rebuild against a filter of every entry), for overlapping, nested, touching and disjoint ranges")
    func segmentsMatchTheRule() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            var table = AddressRangeTable<Int>()
            for id in 0..<60 {
                let start = UInt64.random(in: 0..<200, using: &rng), length = UInt64.random(in: 1...40, using: &rng)
                try table.insert(start: start, length: length, priority: Int32.random(in: -2...2, using: &rng), exclusive: false,
                                 owner: "r\(id)", unit: "port", handler: id)
            }
            for address in UInt64(0)..<260 {
                let expected = table.covering(address).map(\.handler)
                #expect((table.lookup(address) ?? []) == expected, "address \(address)")
            }
            #expect(zip(table.segments, table.segments.dropFirst()).allSatisfy { $0.end <= $1.start && !$0.handlers.isEmpty })
        }
    }

    @Test("a range ending just below 2^64 and one of every single port, each looked up; one ending at 2^64 refused")
    func edges() throws {
        var table = AddressRangeTable<Int>()
        try table.insert(start: .max - 10, length: 10, priority: 0, exclusive: true, owner: "top", unit: "address", handler: -1)
        #expect(throws: VMMError.invalidArgument("end: address range at 0xfffffffffffffff6 has length 10")) {
            try table.insert(start: .max - 9, length: 10, priority: 0, exclusive: false, owner: "end", unit: "address", handler: -2)
        }
        for port in 0..<500 {
            try table.insert(start: UInt64(port), length: 1, priority: 0, exclusive: true, owner: "p\(port)", unit: "port", handler: port)
        }
        #expect((0..<500).allSatisfy { table.lookup(UInt64($0)) == [$0] })
        #expect(table.lookup(500) == nil && table.lookup(.max - 1) == [-1] && table.lookup(.max - 10) == [-1])
        #expect(table.lookup(.max) == nil && table.lookup(.max - 11) == nil)
    }
}

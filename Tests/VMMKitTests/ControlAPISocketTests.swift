import Foundation
import Testing

/// Two `vmm` processes, one after the other, on the same `--api-sock` path.
@Suite("the API socket of a vmm started while another one stops", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct ControlAPISocketTests {
    @Test("a vmm ending after a second one bound its path leaves the second's socket: it still answers (it was unlinked, the second VM lost its controls)")
    func secondKeepsItsSocket() throws {
        // The case needs the second vmm to answer while the first still lingers (1 s) for
        // a client: on a loaded machine the second may start later, so up to five tries.
        var exercised = 0
        for attempt in 0..<5 where exercised == 0 {
            let socket = ControlAPITests.socketPath("handover\(attempt)")
            let first = try ControlAPITests.launch(socket)
            defer { first.kill() }
            try #require(eventually { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 }, "the first API never answered")
            // Half a request keeps the first process's stop waiting (its linger) after its
            // server stopped listening and removed its socket file.
            let fd = try #require(RawHTTP.connect(socket))
            defer { close(fd) }
            RawHTTP.sendNow(fd, Array("PUT /actions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{".utf8))
            #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
            #expect(eventually { access(socket, F_OK) != 0 })
            let second = try ControlAPITests.launch(socket)
            defer { second.kill() }
            try #require(eventually { (try? ControlAPITests.ctl([socket, "info"]).status) == 0 }, "the second API never answered")
            let early = first.wait(tries: 1)
            if early == nil { exercised += 1 }
            #expect((early ?? first.wait()).status == 0)
            let info = try ControlAPITests.ctl([socket, "info"])
            #expect(info.status == 0 && info.stdout.hasPrefix(#"{"state": "Running""#), "after the first vmm ended: \(info.status) \(info.stderr)")
            // Without its socket the second runs on (the deferred kill ends it).
            if info.status == 0 {
                #expect(try ControlAPITests.ctl([socket, "stop"]).status == 0)
                #expect(second.wait().status == 0)
            }
        }
        #expect(exercised == 1, "in five tries the second vmm never answered before the first one ended")
    }
}

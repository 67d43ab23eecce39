import SMTPCapTestSupport
import SMTPCapCore
import PacketDecoding
import Testing
@testable import TCPReassembly

/// The flow table's open-addressing index against the standard library's Dictionary, through
/// random inserts and removals (removal shifts probe runs back: the part easy to get wrong).
@Suite("Flow index")
struct FlowIndexTests {
    static func key(_ n: UInt64, v6: Bool) -> FlowKey {
        let client = v6
            ? IPAddress(ipv6High: 0x2001_0db8_0000_0000, low: n % 97)
            : IPAddress(ipv4: 0xc633_6400 | UInt32(n % 251))
        let server = v6 ? IPAddress(ipv6High: 0x2001_0db8_0000_0001, low: 25) : IPAddress(ipv4: 0xcb00_7119)
        return FlowKey.canonical(source: Endpoint(address: client, port: UInt16(1024 + n % 3000)),
                                 destination: Endpoint(address: server, port: 25)).key
    }

    @Test(arguments: [(1 as UInt64, false), (2, true), (3, false)])
    func agreesWithDictionary(seed: UInt64, v6: Bool) {
        var rng = SeededRandom(seed: seed)
        // A small table and seed 0 as well as a random one, so probe runs are long and wrap.
        var index = FlowIndex(minimumCapacity: 8, seed: seed == 3 ? 0 : rng.next())
        var oracle: [FlowKey: Int] = [:]
        for step in 0..<20_000 {
            let k = Self.key(rng.next() % 600, v6: v6)
            if oracle[k] != nil && rng.next() % 2 == 0 {
                index.remove(k)
                oracle[k] = nil
            } else if oracle[k] == nil {
                index.insert(k, slot: step)
                oracle[k] = step
            }
            #expect(index[k] == oracle[k])
            #expect(index.count == oracle.count)
            if step % 1000 == 0 {
                for n in 0..<600 as Range<UInt64> {
                    let probe = Self.key(n, v6: v6)
                    #expect(index[probe] == oracle[probe])
                }
            }
        }
    }
}

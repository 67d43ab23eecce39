import PacketDecoding
import SMTPCapCore

/// The map from a connection's key to its slot in the flow table: open addressing with linear
/// probing and backward-shift deletion (no tombstones), kept at most half full.
///
/// The hash is a seeded multiply-xorshift over the key's five words: a few cycles, where the
/// standard library's SipHash costs tens of nanoseconds per packet. The seed is random per
/// process, so addresses crafted offline cannot aim many connections at one bucket, and the
/// flow table caps how many keys there are.
struct FlowIndex {
    private var keys: [FlowKey]
    private var values: [Int32]
    private var mask: Int
    private(set) var count = 0
    private let seed: UInt64

    private static let empty: Int32 = -1
    private static let blank = FlowKey(a: Endpoint(address: IPAddress(ipv4: 0), port: 0),
                                       b: Endpoint(address: IPAddress(ipv4: 0), port: 0))

    init(minimumCapacity: Int = 512, seed: UInt64 = UInt64.random(in: .min ... .max)) {
        var size = 64
        while size < minimumCapacity * 2 { size <<= 1 }
        keys = Array(repeating: Self.blank, count: size)
        values = Array(repeating: Self.empty, count: size)
        mask = size - 1
        self.seed = seed
    }

    @inline(__always)
    private static func mix(_ h: UInt64, _ word: UInt64) -> UInt64 {
        let x = (h ^ word) &* 0x9e37_79b9_7f4a_7c15
        return x ^ (x >> 32)
    }

    @inline(__always)
    private func bucket(_ key: FlowKey) -> Int {
        var h = seed
        h = Self.mix(h, key.a.address.high)
        h = Self.mix(h, key.a.address.low)
        h = Self.mix(h, key.b.address.high)
        h = Self.mix(h, key.b.address.low)
        // The context's 32 bits over the 34 the ports and families leave free (its high bits
        // fold onto theirs: a collision costs a probe, never a wrong match).
        let context = UInt64(key.context)
        h = Self.mix(h, (context << 48) ^ ((context >> 16) << 2)
            ^ (UInt64(key.a.port) << 32 | UInt64(key.b.port) << 16
            | (key.a.address.isIPv6 ? 2 : 0) | (key.b.address.isIPv6 ? 1 : 0)))
        h = (h ^ (h >> 29)) &* 0xbf58_476d_1ce4_e5b9
        return Int(truncatingIfNeeded: h ^ (h >> 32)) & mask
    }

    @inline(__always)
    subscript(key: FlowKey) -> Int? {
        var i = bucket(key)
        // The probe is this file's one pointer kernel: `i` is masked into the table, whose size
        // is a power of two (`mask` is its count less one), so no index can leave it and the
        // bounds checks the arrays would make are dropped (one packet, one lookup).
        precondition(keys.count == mask &+ 1 && values.count == mask &+ 1)
        return keys.withUnsafeBufferPointer { keys in
            values.withUnsafeBufferPointer { values in
                while true {
                    let v = values[i]
                    if v == Self.empty { return nil }
                    if keys[i] == key { return Int(v) }
                    i = (i &+ 1) & mask
                }
            }
        }
    }

    /// Adds a key that is not present.
    mutating func insert(_ key: FlowKey, slot: Int) {
        if (count + 1) * 2 > values.count { grow() }
        var i = bucket(key)
        while values[i] != Self.empty { i = (i + 1) & mask }
        keys[i] = key
        values[i] = Int32(slot)
        count += 1
    }

    mutating func remove(_ key: FlowKey) {
        var i = bucket(key)
        while true {
            if values[i] == Self.empty { return }
            if keys[i] == key { break }
            i = (i + 1) & mask
        }
        // Backward shift: pull later entries of the probe run into the hole.
        var hole = i
        var j = i
        while true {
            j = (j + 1) & mask
            if values[j] == Self.empty { break }
            let home = bucket(keys[j])
            // Move j into the hole unless its home lies cyclically in (hole, j].
            let inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
            if !inRange {
                keys[hole] = keys[j]
                values[hole] = values[j]
                hole = j
            }
        }
        values[hole] = Self.empty
        keys[hole] = Self.blank
        count -= 1
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        let size = values.count * 2
        keys = Array(repeating: Self.blank, count: size)
        values = Array(repeating: Self.empty, count: size)
        mask = size - 1
        count = 0
        for i in oldValues.indices where oldValues[i] != Self.empty {
            insert(oldKeys[i], slot: Int(oldValues[i]))
        }
    }
}

import SMTPCapCore

/// A TCP connection's two endpoints in canonical order (lower endpoint first), so both
/// directions of a connection map to the same key, and the context it was seen in (interface
/// and tunnels, numbered by the caller; 0 for none).
public struct FlowKey: Hashable, Sendable {
    public var a: Endpoint
    public var b: Endpoint
    public var context: UInt32

    /// Builds the key and says whether `source` is the key's `a` side.
    @inlinable @inline(__always)
    public static func canonical(source: Endpoint, destination: Endpoint, context: UInt32 = 0) -> (key: FlowKey, sourceIsA: Bool) {
        if source < destination {
            return (FlowKey(a: source, b: destination, context: context), true)
        }
        return (FlowKey(a: destination, b: source, context: context), false)
    }

    @inlinable
    public init(a: Endpoint, b: Endpoint, context: UInt32 = 0) {
        self.a = a
        self.b = b
        self.context = context
    }

    /// Five words instead of the synthesized eight fields: the same bits, fewer hasher rounds.
    /// Hasher stays seeded per process, so crafted keys cannot aim at one bucket.
    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(a.address.high)
        hasher.combine(a.address.low)
        hasher.combine(b.address.high)
        hasher.combine(b.address.low)
        hasher.combine(UInt64(context) << 48 | UInt64(a.port) << 32 | UInt64(b.port) << 16
            | (a.address.isIPv6 ? 2 : 0) | (b.address.isIPv6 ? 1 : 0))
        if context > 0xffff { hasher.combine(context) }
    }
}

/// Encapsulations a packet was found inside, outermost first.
public enum TunnelKind: UInt8, Sendable, Hashable, CaseIterable {
    case vxlan
    case geneve
    case gre
    case erspan1
    case erspan2
    case erspan3
    /// IPv4 in IPv4 (protocol 4).
    case ipInIP
    /// IPv6 in IPv4 (protocol 41), as tunnel brokers deliver it.
    case sixInFour
    /// IPv4 in IPv6 (next header 4).
    case fourInSix
    /// IPv6 in IPv6 (next header 41).
    case sixInSix
    case mpls
    case pppoe
    /// Not an encapsulation: the session came through one of more distinct tunnels than
    /// smtpcap tracks at once (hostile traffic); sessions past the limit share this context.
    case tooMany

    /// The stable name used in JSON and text.
    public var name: String {
        switch self {
        case .vxlan: "vxlan"
        case .geneve: "geneve"
        case .gre: "gre"
        case .erspan1: "erspan-i"
        case .erspan2: "erspan-ii"
        case .erspan3: "erspan-iii"
        case .ipInIP: "ip-in-ip"
        case .sixInFour: "6in4"
        case .fourInSix: "4in6"
        case .sixInSix: "6in6"
        case .mpls: "mpls"
        case .pppoe: "pppoe"
        case .tooMany: "too-many-tunnels"
        }
    }

    /// What `TunnelLayer.id` holds for this kind (nil: none).
    public var idName: String? {
        switch self {
        case .vxlan, .geneve: "vni"
        case .gre: "key"
        case .erspan1, .erspan2, .erspan3: "session"
        case .pppoe: "session"
        case .mpls: "label"
        case .ipInIP, .sixInFour, .fourInSix, .sixInSix, .tooMany: nil
        }
    }
}

/// One encapsulation: its kind, its identifier (VNI, GRE key, ERSPAN or PPPoE session) and
/// the outer IP endpoints that carried it (none for MPLS and PPPoE, which sit below IP).
///
/// Two layers are the same tunnel whichever way the outer addresses face, so both directions
/// of a connection meet in one session. An MPLS label is kept for display only: labels are
/// swapped hop by hop and differ between the directions.
public struct TunnelLayer: Sendable, Hashable, CustomStringConvertible {
    public var kind: TunnelKind
    /// Present when `hasID`.
    public var id: UInt32
    public var hasID: Bool
    public var outerSource: IPAddress?
    public var outerDestination: IPAddress?

    @inlinable
    public init(kind: TunnelKind, id: UInt32? = nil, outerSource: IPAddress? = nil, outerDestination: IPAddress? = nil) {
        self.kind = kind
        self.id = id ?? 0
        self.hasID = id != nil
        self.outerSource = outerSource
        self.outerDestination = outerDestination
    }

    /// The identifier that takes part in a session's identity.
    @inlinable
    var identity: UInt32? { kind == .mpls || !hasID ? nil : id }

    public static func == (a: TunnelLayer, b: TunnelLayer) -> Bool {
        guard a.kind == b.kind, a.identity == b.identity else { return false }
        return (a.outerSource == b.outerSource && a.outerDestination == b.outerDestination)
            || (a.outerSource == b.outerDestination && a.outerDestination == b.outerSource)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(identity)
        // Order-free: the lower address first.
        let (s, d) = (outerSource, outerDestination)
        if let s, let d, d < s {
            hasher.combine(Optional(d))
            hasher.combine(Optional(s))
        } else {
            hasher.combine(s)
            hasher.combine(d)
        }
    }

    /// `vxlan vni 42 198.51.100.201 -> 203.0.113.201`.
    public var description: String {
        var s = kind.name
        if hasID, let name = kind.idName { s += " \(name) \(id)" }
        if let o = outerSource, let d = outerDestination { s += " \(o.description) -> \(d.description)" }
        return s
    }

    /// `198.51.100.201 -> 203.0.113.201`, or nil below IP.
    public var outerText: String? {
        guard let o = outerSource, let d = outerDestination else { return nil }
        return "\(o.description) -> \(d.description)"
    }
}

/// The tunnels around one packet, outermost first, held inline (the decoder fills it per
/// packet without allocating). At most `capacity` layers: deeper nesting is refused.
public struct TunnelStack: Sendable, Hashable {
    public static let capacity = 6
    @usableFromInline var _count = 0
    @usableFromInline var storage = InlineArray<6, TunnelLayer>(repeating: TunnelLayer(kind: .mpls))

    @inlinable
    public init() {}

    public init(_ layers: [TunnelLayer]) {
        for l in layers.prefix(Self.capacity) { _ = push(l) }
    }

    @inlinable
    public var count: Int { _count }

    @inlinable
    public var isEmpty: Bool { _count == 0 }

    @inlinable
    public mutating func removeAll() { _count = 0 }

    /// Adds a layer; false when the stack is full.
    @inlinable
    public mutating func push(_ layer: TunnelLayer) -> Bool {
        guard _count < Self.capacity else { return false }
        storage[_count] = layer
        _count += 1
        return true
    }

    public subscript(i: Int) -> TunnelLayer {
        precondition(i < count)
        return storage[i]
    }

    public var layers: [TunnelLayer] { (0..<count).map { storage[$0] } }

    public static func == (a: TunnelStack, b: TunnelStack) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where a.storage[i] != b.storage[i] { return false }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for i in 0..<count { hasher.combine(storage[i]) }
    }
}

/// Where a connection was seen, beyond its 4-tuple: the capture interface (pcapng files with
/// several) and the tunnels around it. Two connections with the same 4-tuple in different
/// contexts are different sessions.
public struct FlowContext: Sendable, Hashable {
    /// The file's interface number (pcapng), or nil when the capture has one interface.
    public var interface: Int32?
    public var interfaceName: String?
    public var tunnel: [TunnelLayer]

    public init(interface: Int32? = nil, interfaceName: String? = nil, tunnel: [TunnelLayer] = []) {
        self.interface = interface
        self.interfaceName = interfaceName
        self.tunnel = tunnel
    }
}

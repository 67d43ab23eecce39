/// Traffic that is not an SMTP candidate, by what it was, so an empty report can say what the
/// capture held instead.
public struct OtherTraffic: Sendable, Hashable {
    public enum Kind: UInt8, Sendable, Hashable {
        /// UDP; `value` is the lower of its two ports (the service's, as a rule).
        case udp
        /// TCP; `value` is the lower port.
        case tcp
        /// An IP protocol other than TCP and UDP (and not a tunnel decoded here).
        case ipProtocol
        /// A link-layer protocol other than IP (ARP, LLDP, ...).
        case etherType
        /// A loopback address family other than IPv4 and IPv6.
        case linkFamily
        /// A frame of a link type smtpcap does not decode (pcapng interfaces may differ).
        case linkType
    }
    public var kind: Kind
    public var value: UInt32

    @inlinable
    public init(_ kind: Kind, _ value: UInt32) {
        self.kind = kind
        self.value = value
    }
}

/// What reassembly did, for the summary.
public struct DefragmentStats: Sendable, Hashable {
    public var fragments: UInt64 = 0
    public var reassembled: UInt64 = 0
    /// Fragments that went into the datagrams rebuilt.
    public var usedFragments: UInt64 = 0
    /// Datagrams dropped unfinished at their timeout or at the end of the capture.
    public var incomplete: UInt64 = 0
    /// Fragments whose bytes differ from bytes already received for the same place (the first
    /// copy is kept): an evasion attempt or a broken path.
    public var conflictingOverlaps: UInt64 = 0
    /// Datagrams dropped by a cap (count, bytes, fragments per datagram) or because a fragment
    /// was cut by the snap length or is out of range.
    public var dropped: UInt64 = 0

    public init() {}

    /// Fragments that never made a whole datagram.
    public var leftOver: UInt64 { fragments &- usedFragments }

    public mutating func add(_ o: DefragmentStats) {
        fragments += o.fragments
        reassembled += o.reassembled
        usedFragments += o.usedFragments
        incomplete += o.incomplete
        conflictingOverlaps += o.conflictingOverlaps
        dropped += o.dropped
    }
}


/// Packets that reached no SMTP session, counted by what they were (at most `maxEntries`
/// kinds; the rest in `unlisted`), so a report with nothing to say about SMTP says what the
/// capture held.
public struct TrafficTally: Sendable {
    public static let maxEntries = 4096
    public private(set) var counts: [OtherTraffic: UInt64] = [:]
    public private(set) var unlisted: UInt64 = 0

    public init() {}

    @inline(__always)
    public mutating func add(_ what: OtherTraffic, _ n: UInt64 = 1) {
        if counts.count < Self.maxEntries || counts[what] != nil {
            counts[what, default: 0] += n
        } else {
            unlisted += n
        }
    }

    public mutating func merge(_ other: TrafficTally) {
        for (what, n) in other.counts { add(what, n) }
        unlisted += other.unlisted
    }

    public var total: UInt64 { counts.values.reduce(unlisted, +) }

    /// The most frequent kinds, most first (ties in a fixed order).
    public func top(_ n: Int) -> [(what: OtherTraffic, packets: UInt64)] {
        counts.sorted { a, b in
            if a.value != b.value { return a.value > b.value }
            if a.key.kind != b.key.kind { return a.key.kind.rawValue < b.key.kind.rawValue }
            return a.key.value < b.key.value
        }.prefix(n).map { ($0.key, $0.value) }
    }
}

extension OtherTraffic: CustomStringConvertible {
    /// The kind's stable name in JSON.
    public var kindName: String {
        switch kind {
        case .udp: "udp"
        case .tcp: "tcp"
        case .ipProtocol: "ip-protocol"
        case .etherType: "ethertype"
        case .linkFamily: "loopback-family"
        case .linkType: "link-type"
        }
    }

    /// `UDP to port 4789`, `IP protocol 50`, `EtherType 0x0806`.
    public var description: String {
        switch kind {
        case .udp: "UDP to port \(value)"
        case .tcp: "TCP to port \(value)"
        case .ipProtocol: "IP protocol \(value)"
        case .etherType:
            "EtherType 0x" + String(repeating: "0", count: max(0, 4 - String(value, radix: 16).count)) + String(value, radix: 16)
        case .linkFamily: "loopback address family \(value)"
        case .linkType: "link type \(value) (not decoded)"
        }
    }

    /// What it probably is, when the number is a well-known one.
    public var hint: String? {
        switch (kind, value) {
        case (.udp, 4789), (.udp, 8472): "VXLAN?"
        case (.udp, 6081): "Geneve?"
        case (.udp, 4790): "VXLAN-GPE, not decoded"
        case (.udp, 2152): "GTP-U, not decoded"
        case (.udp, 1701): "L2TP, not decoded"
        case (.udp, 3544): "Teredo, not decoded"
        case (.udp, 53), (.tcp, 53): "DNS"
        case (.udp, 67), (.udp, 68): "DHCP"
        case (.udp, 123): "NTP"
        case (.udp, 443): "QUIC"
        case (.udp, 500), (.udp, 4500): "IKE/IPsec"
        case (.udp, 514): "syslog"
        case (.udp, 5353): "mDNS"
        case (.udp, 2055), (.udp, 4739), (.udp, 6343): "flow export"
        case (.tcp, 443): "HTTPS"
        case (.tcp, 80): "HTTP"
        case (.tcp, 22): "SSH"
        case (.tcp, 110), (.tcp, 995): "POP3: mail, but not SMTP"
        case (.tcp, 143), (.tcp, 993): "IMAP: mail, but not SMTP"
        case (.ipProtocol, 1): "ICMP"
        case (.ipProtocol, 58): "ICMPv6"
        case (.ipProtocol, 2): "IGMP"
        case (.ipProtocol, 50): "ESP: encrypted, cannot be read"
        case (.ipProtocol, 89): "OSPF"
        case (.ipProtocol, 112): "VRRP"
        case (.ipProtocol, 132): "SCTP"
        case (.etherType, 0x0806): "ARP"
        case (.etherType, 0x88cc): "LLDP"
        case (.etherType, 0x8863): "PPPoE discovery"
        case (.etherType, 0x88e5): "MACsec: encrypted, cannot be read"
        default: nil
        }
    }
}

import SMTPCapCore

/// Link-layer types as libpcap's `pcap_datalink` reports them (DLT_* values), plus the
/// LINKTYPE_* values some files carry for the same encapsulations.
public enum LinkType: Sendable, Equatable {
    case null          // DLT_NULL: 4-byte address family in the capturing host's byte order
    case ethernet      // DLT_EN10MB
    case rawIP         // DLT_RAW (12 or 14), LINKTYPE_RAW (101)
    case loop          // DLT_LOOP: 4-byte address family, network byte order
    case linuxSLL      // DLT_LINUX_SLL (113), `tcpdump -i any` before libpcap 1.10
    case linuxSLL2     // DLT_LINUX_SLL2 (276)
    case ipv4          // DLT_IPV4 (228)
    case ipv6          // DLT_IPV6 (229)

    public init?(dlt: Int32) {
        switch dlt {
        case 0: self = .null
        case 1: self = .ethernet
        case 12, 14, 101: self = .rawIP
        case 108: self = .loop
        case 113: self = .linuxSLL
        case 276: self = .linuxSLL2
        case 228: self = .ipv4
        case 229: self = .ipv6
        default: return nil
        }
    }
}

/// TCP header flags.
public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
}

/// One decoded TCP segment. Payload is given as offsets into the frame it came from, so
/// nothing is copied: the caller slices the frame's bytes while they are still valid.
public struct TCPSegment: Sendable {
    public var source: Endpoint
    public var destination: Endpoint
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    /// Offset of the first payload byte in the frame.
    public var payloadOffset: Int
    /// Payload bytes present in the frame.
    public var capturedPayload: Int
    /// Payload bytes the packet carried on the wire (from the IP length); more than
    /// `capturedPayload` when the snap length cut the packet.
    public var wirePayload: Int

    public init(source: Endpoint, destination: Endpoint, sequence: UInt32, acknowledgment: UInt32,
                flags: TCPFlags, payloadOffset: Int, capturedPayload: Int, wirePayload: Int) {
        self.source = source
        self.destination = destination
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.payloadOffset = payloadOffset
        self.capturedPayload = capturedPayload
        self.wirePayload = wirePayload
    }
}

/// What a frame turned out to be.
public enum DecodeOutcome: Sendable {
    case tcp(TCPSegment)
    /// Not TCP over IP (ARP, UDP, ICMP, other link protocols): ignored silently.
    case notTCP
    /// An IP fragment: counted; its flow sees the missing bytes as a gap.
    case fragment
    /// Too short or inconsistent to read; the reason is a stable short code.
    case malformed(DecodeError)
}

public enum DecodeError: String, Sendable {
    case truncatedLinkHeader = "truncated-link-header"
    case truncatedIPHeader = "truncated-ip-header"
    case badIPHeader = "bad-ip-header"
    case truncatedTCPHeader = "truncated-tcp-header"
    case badTCPHeader = "bad-tcp-header"
}

/// Decodes link, IP and TCP headers of one frame. Checks every length before it reads;
/// never traps on hostile input, never allocates.
public struct PacketDecoder: Sendable {
    public let linkType: LinkType

    public init(linkType: LinkType) {
        self.linkType = linkType
    }

    // Big-endian reads; every caller has checked the frame's length first.
    @inlinable @inline(__always)
    static func u16(_ p: Span<UInt8>, _ at: Int) -> UInt16 {
        p.bigEndian(UInt16.self, at: at)
    }

    @inlinable @inline(__always)
    static func u32(_ p: Span<UInt8>, _ at: Int) -> UInt32 {
        p.bigEndian(UInt32.self, at: at)
    }

    @inlinable @inline(__always)
    static func u64(_ p: Span<UInt8>, _ at: Int) -> UInt64 {
        p.bigEndian(UInt64.self, at: at)
    }

    public func decode(_ frame: Span<UInt8>) -> DecodeOutcome {
        let n = frame.count
        switch linkType {
        case .ethernet:
            guard n >= 14 else { return .malformed(.truncatedLinkHeader) }
            var offset = 12
            var etherType = Self.u16(frame, offset)
            offset += 2
            // 802.1Q, 802.1ad (QinQ) and the old 0x9100 tag: skip any number of them.
            while etherType == 0x8100 || etherType == 0x88a8 || etherType == 0x9100 {
                guard n >= offset + 4 else { return .malformed(.truncatedLinkHeader) }
                etherType = Self.u16(frame, offset + 2)
                offset += 4
            }
            return decodeNetwork(frame, at: offset, etherType: etherType)
        case .linuxSLL:
            guard n >= 16 else { return .malformed(.truncatedLinkHeader) }
            return decodeNetwork(frame, at: 16, etherType: Self.u16(frame, 14))
        case .linuxSLL2:
            guard n >= 20 else { return .malformed(.truncatedLinkHeader) }
            return decodeNetwork(frame, at: 20, etherType: Self.u16(frame, 0))
        case .null, .loop:
            guard n >= 4 else { return .malformed(.truncatedLinkHeader) }
            // The family is in the writer's byte order for NULL; accept either.
            let be = Self.u32(frame, 0)
            let family = be > 0xffff ? be.byteSwapped : be
            switch family {
            case 2: return decodeNetwork(frame, at: 4, etherType: 0x0800)
            case 10, 24, 28, 30: return decodeNetwork(frame, at: 4, etherType: 0x86dd)
            default: return .notTCP
            }
        case .rawIP:
            guard n >= 1 else { return .malformed(.truncatedIPHeader) }
            switch frame[0] >> 4 {
            case 4: return decodeIPv4(frame, at: 0)
            case 6: return decodeIPv6(frame, at: 0)
            default: return .notTCP
            }
        case .ipv4:
            return decodeIPv4(frame, at: 0)
        case .ipv6:
            return decodeIPv6(frame, at: 0)
        }
    }

    @inline(__always)
    func decodeNetwork(_ frame: Span<UInt8>, at offset: Int, etherType: UInt16) -> DecodeOutcome {
        switch etherType {
        case 0x0800: return decodeIPv4(frame, at: offset)
        case 0x86dd: return decodeIPv6(frame, at: offset)
        default: return .notTCP
        }
    }

    @inline(__always)
    func decodeIPv4(_ frame: Span<UInt8>, at offset: Int) -> DecodeOutcome {
        let n = frame.count
        guard n >= offset + 20 else { return .malformed(.truncatedIPHeader) }
        let versionIHL = frame[offset]
        guard versionIHL >> 4 == 4 else { return .malformed(.badIPHeader) }
        let headerLength = Int(versionIHL & 0x0f) * 4
        guard headerLength >= 20 else { return .malformed(.badIPHeader) }
        guard n >= offset + headerLength else { return .malformed(.truncatedIPHeader) }
        var totalLength = Int(Self.u16(frame, offset + 2))
        // Segmentation offload on the capturing host can leave the length 0: trust the frame.
        if totalLength == 0 { totalLength = n - offset }
        guard totalLength >= headerLength else { return .malformed(.badIPHeader) }
        let fragmentField = Self.u16(frame, offset + 6)
        guard frame[offset + 9] == 6 else { return .notTCP }
        if fragmentField & 0x3fff != 0 { return .fragment }  // MF set or non-zero offset
        let source = IPAddress(ipv4: Self.u32(frame, offset + 12))
        let destination = IPAddress(ipv4: Self.u32(frame, offset + 16))
        return decodeTCP(frame, at: offset + headerLength, ipPayloadLength: totalLength - headerLength,
                         source: source, destination: destination)
    }

    func decodeIPv6(_ frame: Span<UInt8>, at offset: Int) -> DecodeOutcome {
        let n = frame.count
        guard n >= offset + 40 else { return .malformed(.truncatedIPHeader) }
        guard frame[offset] >> 4 == 6 else { return .malformed(.badIPHeader) }
        var payloadLength = Int(Self.u16(frame, offset + 4))
        if payloadLength == 0 { payloadLength = n - offset - 40 }  // jumbogram or offload
        var next = frame[offset + 6]
        let source = IPAddress(ipv6High: Self.u64(frame, offset + 8), low: Self.u64(frame, offset + 16))
        let destination = IPAddress(ipv6High: Self.u64(frame, offset + 24), low: Self.u64(frame, offset + 32))
        var at = offset + 40
        // Extension headers; at most 16 of them, each checked before it is read.
        var hops = 0
        while next != 6 {
            hops += 1
            guard hops <= 16 else { return .malformed(.badIPHeader) }
            switch next {
            case 0, 43, 60, 135, 139, 140:  // hop-by-hop, routing, destination, mobility, HIP, shim6
                guard n >= at + 2 else { return .malformed(.truncatedIPHeader) }
                let length = (Int(frame[at + 1]) + 1) * 8
                next = frame[at]
                at += length
                payloadLength -= length
            case 44:  // fragment
                guard n >= at + 8 else { return .malformed(.truncatedIPHeader) }
                let field = Self.u16(frame, at + 2)
                if field & 0xfff9 != 0 { return .fragment }  // offset or M flag
                next = frame[at]
                at += 8
                payloadLength -= 8
            case 51:  // authentication header: length in 4-byte units, plus 2
                guard n >= at + 2 else { return .malformed(.truncatedIPHeader) }
                let length = (Int(frame[at + 1]) + 2) * 4
                next = frame[at]
                at += length
                payloadLength -= length
            default:
                return .notTCP  // ESP, no next header, or another protocol
            }
            guard payloadLength >= 0 else { return .malformed(.badIPHeader) }
        }
        return decodeTCP(frame, at: at, ipPayloadLength: payloadLength, source: source, destination: destination)
    }

    @inline(__always)
    func decodeTCP(_ frame: Span<UInt8>, at offset: Int, ipPayloadLength: Int,
                   source: IPAddress, destination: IPAddress) -> DecodeOutcome {
        let n = frame.count
        guard n >= offset + 20 else { return .malformed(.truncatedTCPHeader) }
        let headerLength = Int(frame[offset + 12] >> 4) * 4
        guard headerLength >= 20, ipPayloadLength >= headerLength else { return .malformed(.badTCPHeader) }
        let wirePayload = ipPayloadLength - headerLength
        let payloadOffset = offset + headerLength
        // Options cut by the snap length: the header is still usable, the payload is all missing.
        let captured = max(0, min(wirePayload, n - payloadOffset))
        return .tcp(TCPSegment(
            source: Endpoint(address: source, port: Self.u16(frame, offset)),
            destination: Endpoint(address: destination, port: Self.u16(frame, offset + 2)),
            sequence: Self.u32(frame, offset + 4),
            acknowledgment: Self.u32(frame, offset + 8),
            flags: TCPFlags(rawValue: frame[offset + 13] & 0x1f),
            payloadOffset: min(payloadOffset, n),
            capturedPayload: captured,
            wirePayload: wirePayload))
    }
}

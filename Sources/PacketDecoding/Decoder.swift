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
    /// The innermost IP header's TTL (IPv4) or hop limit (IPv6). Beside `flags`, in padding.
    public var ttl: UInt8 = 0
    /// For a SYN, the TCP option bytes the frame holds, just before `payloadOffset` (low 7
    /// bits), and whether the snap length cut the options the header claims (0x80); 0 for
    /// other packets. Read by `synOptions(in:)`.
    public var options: UInt8 = 0
    /// Offset of the first payload byte in the frame.
    public var payloadOffset: Int
    /// Payload bytes present in the frame.
    public var capturedPayload: Int
    /// Payload bytes the packet carried on the wire (from the IP length); more than
    /// `capturedPayload` when the snap length cut the packet.
    public var wirePayload: Int
    /// Where the connection was seen beyond its 4-tuple (interface, tunnels), as a number the
    /// caller gives out per distinct context; 0 for a plain capture.
    public var context: UInt32 = 0

    public init(source: Endpoint, destination: Endpoint, sequence: UInt32, acknowledgment: UInt32,
                flags: TCPFlags, payloadOffset: Int, capturedPayload: Int, wirePayload: Int,
                ttl: UInt8 = 0, options: UInt8 = 0) {
        self.ttl = ttl
        self.options = options
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

extension TCPSegment {
    /// The TCP options of the frame this segment was decoded from, as a print (a snap length
    /// may cut them: the print says so).
    public func synOptions(in frame: Span<UInt8>) -> TCPOptionsPrint {
        let present = Int(options & 0x7f)
        let start = payloadOffset - present
        guard start >= 0, payloadOffset <= frame.count else { return TCPOptionsPrint() }
        var print = TCPOptionsPrint(frame.extracting(start..<payloadOffset))
        if options & 0x80 != 0 { print.truncated = true }
        return print
    }
}

/// What a frame turned out to be.
public enum DecodeOutcome: Sendable {
    case tcp(TCPSegment)
    /// Not TCP over IP, or TCP in nothing smtpcap decodes: counted by what it was.
    case other(OtherTraffic)
    /// A fragment of an IP datagram that may carry TCP or a tunnel: for the reassembler.
    case fragment(IPFragment)
    /// Too short or inconsistent to read; the reason is a stable short code.
    case malformed(DecodeError)
}

public enum DecodeError: String, Sendable, CaseIterable {
    case truncatedLinkHeader = "truncated-link-header"
    case truncatedIPHeader = "truncated-ip-header"
    case badIPHeader = "bad-ip-header"
    case truncatedTCPHeader = "truncated-tcp-header"
    case badTCPHeader = "bad-tcp-header"
    case truncatedTunnelHeader = "truncated-tunnel-header"
    /// More encapsulations than `TunnelStack.capacity`, or a label stack past its cap.
    case tunnelTooDeep = "tunnel-too-deep"
}

/// One IP fragment as the decoder found it: enough to reassemble its datagram.
public struct IPFragment: Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    /// IPv4's 16-bit identification or IPv6's 32-bit one.
    public var identification: UInt32
    /// The datagram's protocol (IPv4's field, or the fragment header's next header).
    public var proto: UInt8
    /// Byte offset of this fragment's data in the datagram.
    public var offset: Int
    /// More fragments follow.
    public var more: Bool
    /// Where this fragment's data starts in the frame, and how much of it the IP length
    /// gives and the frame holds.
    public var payloadOffset: Int
    public var payloadLength: Int
    public var capturedLength: Int

    public var isIPv6: Bool { source.isIPv6 }
}

/// Decodes link, IP and TCP headers of one frame, through any tunnels around them. Checks
/// every length before it reads; never traps on hostile input, never allocates.
///
/// The walk is a loop over layers (`Step`), not recursion: each step reads one header and
/// names the next, so nesting costs no stack and is capped by the tunnel stack's capacity.
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

    /// The next header to read, or the answer.
    enum Step {
        case ethernet(Int)
        case etherType(UInt16, Int)
        case ipv4(Int)
        case ipv6(Int)
        case done(DecodeOutcome)
    }

    /// Decodes a frame that is not expected to be tunnelled (tests, tools): tunnels are still
    /// decoded, their layers dropped.
    public func decode(_ frame: Span<UInt8>) -> DecodeOutcome {
        var tunnel = TunnelStack()
        return decode(frame, tunnel: &tunnel)
    }

    /// Decodes a frame; `tunnel` (empty on entry) receives the encapsulations around the
    /// packet, outermost first.
    public func decode(_ frame: Span<UInt8>, tunnel: inout TunnelStack) -> DecodeOutcome {
        let n = frame.count
        var at: Int
        var etherType: UInt16
        switch linkType {
        case .ethernet:
            guard n >= 14 else { return .malformed(.truncatedLinkHeader) }
            at = 14
            etherType = Self.u16(frame, 12)
            // 802.1Q, 802.1ad (QinQ) and the old 0x9100 tag: skip any number of them.
            while etherType == 0x8100 || etherType == 0x88a8 || etherType == 0x9100 {
                guard n >= at + 4 else { return .malformed(.truncatedLinkHeader) }
                etherType = Self.u16(frame, at + 2)
                at += 4
            }
        case .linuxSLL:
            guard n >= 16 else { return .malformed(.truncatedLinkHeader) }
            at = 16
            etherType = Self.u16(frame, 14)
        case .linuxSLL2:
            guard n >= 20 else { return .malformed(.truncatedLinkHeader) }
            at = 20
            etherType = Self.u16(frame, 0)
        case .null, .loop:
            guard n >= 4 else { return .malformed(.truncatedLinkHeader) }
            // The family is in the writer's byte order for NULL; accept either.
            let be = Self.u32(frame, 0)
            let family = be > 0xffff ? be.byteSwapped : be
            switch family {
            case 2: etherType = 0x0800
            case 10, 24, 28, 30: etherType = 0x86dd
            default: return .other(OtherTraffic(.linkFamily, family))
            }
            at = 4
        case .rawIP:
            guard n >= 1 else { return .malformed(.truncatedIPHeader) }
            switch frame[0] >> 4 {
            case 4: etherType = 0x0800
            case 6: etherType = 0x86dd
            default: return .other(OtherTraffic(.etherType, UInt32(frame[0] >> 4)))
            }
            at = 0
        case .ipv4:
            etherType = 0x0800
            at = 0
        case .ipv6:
            etherType = 0x86dd
            at = 0
        }
        // The common case, TCP right inside IPv4, in one straight pass; the rest (IPv6,
        // tunnels, fragments, other protocols) walks the layers.
        if etherType == 0x0800, let outcome = plainTCP4(frame, at: at) { return outcome }
        return walk(frame, from: .etherType(etherType, at), tunnel: &tunnel)
    }

    /// TCP in an unfragmented IPv4 packet, or a refusal of the IPv4 header; nil for anything
    /// else (the walk takes it from the IPv4 header).
    @inline(__always)
    func plainTCP4(_ frame: Span<UInt8>, at offset: Int) -> DecodeOutcome? {
        let n = frame.count
        guard n >= offset + 20 else { return .malformed(.truncatedIPHeader) }
        let versionIHL = frame[offset]
        guard versionIHL >> 4 == 4 else { return .malformed(.badIPHeader) }
        let headerLength = Int(versionIHL & 0x0f) * 4
        guard headerLength >= 20 else { return .malformed(.badIPHeader) }
        guard n >= offset + headerLength else { return .malformed(.truncatedIPHeader) }
        guard frame[offset + 9] == 6, Self.u16(frame, offset + 6) & 0x3fff == 0 else { return nil }
        var totalLength = Int(Self.u16(frame, offset + 2))
        // Segmentation offload on the capturing host can leave the length 0: trust the frame.
        if totalLength == 0 { totalLength = n - offset }
        guard totalLength >= headerLength else { return .malformed(.badIPHeader) }
        return decodeTCP(frame, at: offset + headerLength, ipPayloadLength: totalLength - headerLength,
                         source: IPAddress(ipv4: Self.u32(frame, offset + 12)),
                         destination: IPAddress(ipv4: Self.u32(frame, offset + 16)), ttl: frame[offset + 8])
    }

    /// Decodes a reassembled IP datagram (version 4 or 6 header first) inside the tunnels its
    /// fragments were found in.
    public func decodeDatagram(_ datagram: Span<UInt8>, tunnel: inout TunnelStack) -> DecodeOutcome {
        guard datagram.count >= 1 else { return .malformed(.truncatedIPHeader) }
        return walk(datagram, from: datagram[0] >> 4 == 6 ? .ipv6(0) : .ipv4(0), tunnel: &tunnel)
    }

    @inline(__always)
    func walk(_ frame: Span<UInt8>, from first: Step, tunnel: inout TunnelStack) -> DecodeOutcome {
        var step = first
        // Every step but etherType moves forward in the frame, and tunnels are capped by the
        // stack: this bound is a second guard, never the first.
        var budget = 64
        while budget > 0 {
            budget &-= 1
            switch step {
            case .ipv4(let at): step = ipv4(frame, at: at, tunnel: &tunnel)
            case .ethernet(let at): step = ethernet(frame, at: at)
            case .etherType(let type, let at): step = network(frame, etherType: type, at: at, tunnel: &tunnel)
            case .ipv6(let at): step = ipv6(frame, at: at, tunnel: &tunnel)
            case .done(let outcome): return outcome
            }
        }
        return .malformed(.tunnelTooDeep)
    }

    @inline(__always)
    func ethernet(_ frame: Span<UInt8>, at start: Int) -> Step {
        let n = frame.count
        guard n >= start + 14 else { return .done(.malformed(.truncatedLinkHeader)) }
        var offset = start + 12
        var etherType = Self.u16(frame, offset)
        offset += 2
        // 802.1Q, 802.1ad (QinQ) and the old 0x9100 tag: skip any number of them.
        while etherType == 0x8100 || etherType == 0x88a8 || etherType == 0x9100 {
            guard n >= offset + 4 else { return .done(.malformed(.truncatedLinkHeader)) }
            etherType = Self.u16(frame, offset + 2)
            offset += 4
        }
        return .etherType(etherType, offset)
    }

    @inline(__always)
    func network(_ frame: Span<UInt8>, etherType: UInt16, at offset: Int, tunnel: inout TunnelStack) -> Step {
        switch etherType {
        case 0x0800: return .ipv4(offset)
        case 0x86dd: return .ipv6(offset)
        case 0x8847, 0x8848: return mpls(frame, at: offset, tunnel: &tunnel)
        case 0x8864: return pppoe(frame, at: offset, tunnel: &tunnel)
        default: return .done(.other(OtherTraffic(.etherType, UInt32(etherType))))
        }
    }

    @inline(__always)
    func ipv4(_ frame: Span<UInt8>, at offset: Int, tunnel: inout TunnelStack) -> Step {
        let n = frame.count
        guard n >= offset + 20 else { return .done(.malformed(.truncatedIPHeader)) }
        let versionIHL = frame[offset]
        guard versionIHL >> 4 == 4 else { return .done(.malformed(.badIPHeader)) }
        let headerLength = Int(versionIHL & 0x0f) * 4
        guard headerLength >= 20 else { return .done(.malformed(.badIPHeader)) }
        guard n >= offset + headerLength else { return .done(.malformed(.truncatedIPHeader)) }
        var totalLength = Int(Self.u16(frame, offset + 2))
        // Segmentation offload on the capturing host can leave the length 0: trust the frame.
        if totalLength == 0 { totalLength = n - offset }
        guard totalLength >= headerLength else { return .done(.malformed(.badIPHeader)) }
        let proto = frame[offset + 9]
        let source = IPAddress(ipv4: Self.u32(frame, offset + 12))
        let destination = IPAddress(ipv4: Self.u32(frame, offset + 16))
        let payload = offset + headerLength
        let payloadLength = totalLength - headerLength
        if proto == 6 {
            if Self.u16(frame, offset + 6) & 0x3fff != 0 {  // MF set or a non-zero offset
                return .done(fragment(frame, header: offset, proto: 6, payload: payload, payloadLength: payloadLength,
                                      source: source, destination: destination))
            }
            return .done(decodeTCP(frame, at: payload, ipPayloadLength: payloadLength,
                                   source: source, destination: destination, ttl: frame[offset + 8]))
        }
        let fragmented = Self.u16(frame, offset + 6) & 0x3fff != 0
        return carried(frame, proto: proto, at: payload, length: payloadLength, source: source,
                       destination: destination, ttl: frame[offset + 8], fragmentHeader: fragmented ? offset : -1,
                       tunnel: &tunnel)
    }

    /// The fragment whose IPv4 header is at `offset`, or whose IPv6 fragment header is.
    func fragment(_ frame: Span<UInt8>, header offset: Int, proto: UInt8, payload: Int, payloadLength: Int,
                  source: IPAddress, destination: IPAddress) -> DecodeOutcome {
        guard payload <= frame.count else { return .malformed(.truncatedIPHeader) }
        let captured = max(0, min(payloadLength, frame.count - payload))
        if source.isIPv6 {
            let field = Self.u16(frame, offset + 2)
            return .fragment(IPFragment(
                source: source, destination: destination, identification: Self.u32(frame, offset + 4),
                proto: proto, offset: Int(field & 0xfff8), more: field & 1 != 0,
                payloadOffset: payload, payloadLength: payloadLength, capturedLength: captured))
        }
        let field = Self.u16(frame, offset + 6)
        return .fragment(IPFragment(
            source: source, destination: destination, identification: UInt32(Self.u16(frame, offset + 4)),
            proto: proto, offset: Int(field & 0x1fff) * 8, more: field & 0x2000 != 0,
            payloadOffset: payload, payloadLength: payloadLength, capturedLength: captured))
    }

    /// What an IP header carries, other than unfragmented TCP over IPv4: UDP (and the tunnels
    /// in it), GRE, IP in IP; a fragment of any of these goes to the reassembler.
    @inline(__always)
    func carried(_ frame: Span<UInt8>, proto: UInt8, at payload: Int, length: Int, source: IPAddress,
                 destination: IPAddress, ttl: UInt8, fragmentHeader: Int, tunnel: inout TunnelStack) -> Step {
        switch proto {
        case 6, 17, 47, 4, 41:
            if fragmentHeader >= 0 {
                return .done(fragment(frame, header: fragmentHeader, proto: proto, payload: payload, payloadLength: length,
                                      source: source, destination: destination))
            }
        default:
            return .done(.other(OtherTraffic(.ipProtocol, UInt32(proto))))
        }
        switch proto {
        case 6:
            return .done(decodeTCP(frame, at: payload, ipPayloadLength: length, source: source, destination: destination,
                                   ttl: ttl))
        case 17:
            return udp(frame, at: payload, source: source, destination: destination, tunnel: &tunnel)
        case 47:
            return gre(frame, at: payload, source: source, destination: destination, tunnel: &tunnel)
        default:
            let kind: TunnelKind = source.isIPv6 ? (proto == 4 ? .fourInSix : .sixInSix) : (proto == 4 ? .ipInIP : .sixInFour)
            guard tunnel.push(TunnelLayer(kind: kind, outerSource: source, outerDestination: destination)) else {
                return .done(.malformed(.tunnelTooDeep))
            }
            return proto == 4 ? .ipv4(payload) : .ipv6(payload)
        }
    }

    func ipv6(_ frame: Span<UInt8>, at offset: Int, tunnel: inout TunnelStack) -> Step {
        let n = frame.count
        guard n >= offset + 40 else { return .done(.malformed(.truncatedIPHeader)) }
        guard frame[offset] >> 4 == 6 else { return .done(.malformed(.badIPHeader)) }
        var payloadLength = Int(Self.u16(frame, offset + 4))
        if payloadLength == 0 { payloadLength = n - offset - 40 }  // jumbogram or offload
        var next = frame[offset + 6]
        let source = IPAddress(ipv6High: Self.u64(frame, offset + 8), low: Self.u64(frame, offset + 16))
        let destination = IPAddress(ipv6High: Self.u64(frame, offset + 24), low: Self.u64(frame, offset + 32))
        var at = offset + 40
        // Extension headers; at most 16 of them, each checked before it is read.
        var hops = 0
        while true {
            switch next {
            case 0, 43, 60, 135, 139, 140:  // hop-by-hop, routing, destination, mobility, HIP, shim6
                guard n >= at + 2 else { return .done(.malformed(.truncatedIPHeader)) }
                let length = (Int(frame[at + 1]) + 1) * 8
                next = frame[at]
                at += length
                payloadLength -= length
            case 44:  // fragment
                guard n >= at + 8 else { return .done(.malformed(.truncatedIPHeader)) }
                next = frame[at]
                // An atomic fragment (offset 0, no M flag) is a whole datagram; a real one ends
                // the walk: what follows (extension headers included) is the datagram's to
                // decode once it is whole.
                if Self.u16(frame, at + 2) & 0xfff9 != 0 {
                    guard payloadLength >= 8 else { return .done(.malformed(.badIPHeader)) }
                    return .done(fragment(frame, header: at, proto: next, payload: at + 8, payloadLength: payloadLength - 8,
                                          source: source, destination: destination))
                }
                at += 8
                payloadLength -= 8
            case 51:  // authentication header: length in 4-byte units, plus 2
                guard n >= at + 2 else { return .done(.malformed(.truncatedIPHeader)) }
                let length = (Int(frame[at + 1]) + 2) * 4
                next = frame[at]
                at += length
                payloadLength -= length
            default:
                guard payloadLength >= 0 else { return .done(.malformed(.badIPHeader)) }
                return carried(frame, proto: next, at: at, length: payloadLength, source: source,
                               destination: destination, ttl: frame[offset + 7], fragmentHeader: -1, tunnel: &tunnel)
            }
            guard payloadLength >= 0 else { return .done(.malformed(.badIPHeader)) }
            // A header that claims more than the frame holds: nothing after it can be read.
            guard at <= n else { return .done(.malformed(.truncatedIPHeader)) }
            hops += 1
            guard hops <= 16 else { return .done(.malformed(.badIPHeader)) }
        }
    }

    @inline(__always)
    func decodeTCP(_ frame: Span<UInt8>, at offset: Int, ipPayloadLength: Int,
                   source: IPAddress, destination: IPAddress, ttl: UInt8) -> DecodeOutcome {
        let n = frame.count
        guard n >= offset + 20 else { return .malformed(.truncatedTCPHeader) }
        let headerLength = Int(frame[offset + 12] >> 4) * 4
        guard headerLength >= 20, ipPayloadLength >= headerLength else { return .malformed(.badTCPHeader) }
        let wirePayload = ipPayloadLength - headerLength
        let payloadOffset = offset + headerLength
        // Options cut by the snap length: the header is still usable, the payload is all missing.
        let captured = max(0, min(wirePayload, n - payloadOffset))
        // For a SYN: the options present in the frame (0...40), and whether the snap length
        // cut them.
        let flagBits = frame[offset + 13]
        var options: UInt8 = 0
        if _slowPath(flagBits & 0x02 != 0) {
            let present = min(headerLength - 20, max(0, n - offset - 20))
            options = UInt8(truncatingIfNeeded: present) | (present < headerLength - 20 ? 0x80 : 0)
        }
        return .tcp(TCPSegment(
            source: Endpoint(address: source, port: Self.u16(frame, offset)),
            destination: Endpoint(address: destination, port: Self.u16(frame, offset + 2)),
            sequence: Self.u32(frame, offset + 4),
            acknowledgment: Self.u32(frame, offset + 8),
            flags: TCPFlags(rawValue: flagBits & 0x1f),
            payloadOffset: min(payloadOffset, n),
            capturedPayload: captured,
            wirePayload: wirePayload,
            ttl: ttl,
            options: options))
    }
}

import SMTPCapCore

/// Tunnels: UDP-borne overlays (VXLAN, Geneve), GRE with ERSPAN, MPLS and PPPoE. Each reads
/// its header, records a `TunnelLayer` and names the header inside. Layouts are from RFC 7348
/// (VXLAN), RFC 8926 (Geneve), RFC 2784 and 2890 (GRE), the ERSPAN draft
/// (draft-foschiano-erspan), RFC 3032 (MPLS) and RFC 2516 (PPPoE).
extension PacketDecoder {
    /// VXLAN's IANA port and the one the Linux kernel used first (still its default).
    static let vxlanPorts: (UInt16, UInt16) = (4789, 8472)
    static let genevePort: UInt16 = 6081
    /// Labels read before giving up on a stack without its bottom bit.
    static let maxMPLSLabels = 8

    func udp(_ frame: Span<UInt8>, at offset: Int, source: IPAddress, destination: IPAddress,
             tunnel: inout TunnelStack) -> Step {
        let n = frame.count
        guard n >= offset + 8 else { return .done(.malformed(.truncatedTunnelHeader)) }
        let sourcePort = Self.u16(frame, offset)
        let destinationPort = Self.u16(frame, offset + 2)
        let header = offset + 8
        if destinationPort == Self.vxlanPorts.0 || destinationPort == Self.vxlanPorts.1 {
            // Flags (I bit: a VNI is present), 24 reserved bits, the VNI, 8 reserved bits.
            guard n >= header + 8 else { return .done(.malformed(.truncatedTunnelHeader)) }
            guard frame[header] & 0x08 != 0 else { return .done(.other(OtherTraffic(.udp, UInt32(destinationPort)))) }
            let vni = Self.u32(frame, header + 4) >> 8
            guard tunnel.push(TunnelLayer(kind: .vxlan, id: vni, outerSource: source, outerDestination: destination)) else {
                return .done(.malformed(.tunnelTooDeep))
            }
            return .ethernet(header + 8)
        }
        if destinationPort == Self.genevePort {
            // Version (2 bits) and options length (6 bits, 4-byte words), flags, protocol
            // type, VNI and a reserved byte, then the options.
            guard n >= header + 8 else { return .done(.malformed(.truncatedTunnelHeader)) }
            guard frame[header] >> 6 == 0 else { return .done(.other(OtherTraffic(.udp, UInt32(destinationPort)))) }
            let inner = header + 8 + Int(frame[header] & 0x3f) * 4
            guard n >= inner else { return .done(.malformed(.truncatedTunnelHeader)) }
            let proto = Self.u16(frame, header + 2)
            let vni = Self.u32(frame, header + 4) >> 8
            guard tunnel.push(TunnelLayer(kind: .geneve, id: vni, outerSource: source, outerDestination: destination)) else {
                return .done(.malformed(.tunnelTooDeep))
            }
            return proto == 0x6558 ? .ethernet(inner) : .etherType(proto, inner)
        }
        return .done(.other(OtherTraffic(.udp, UInt32(min(sourcePort, destinationPort)))))
    }

    func gre(_ frame: Span<UInt8>, at offset: Int, source: IPAddress, destination: IPAddress,
             tunnel: inout TunnelStack) -> Step {
        let n = frame.count
        guard n >= offset + 4 else { return .done(.malformed(.truncatedTunnelHeader)) }
        let flags = Self.u16(frame, offset)
        let proto = Self.u16(frame, offset + 2)
        // Version 0 only (1 is PPTP's enhanced GRE); no RFC 1701 source routing.
        guard flags & 0x0007 == 0, flags & 0x4000 == 0 else { return .done(.other(OtherTraffic(.ipProtocol, 47))) }
        var at = offset + 4
        if flags & 0x8000 != 0 { at += 4 }  // checksum and reserved
        var key: UInt32?
        if flags & 0x2000 != 0 {
            guard n >= at + 4 else { return .done(.malformed(.truncatedTunnelHeader)) }
            key = Self.u32(frame, at)
            at += 4
        }
        let sequenced = flags & 0x1000 != 0
        if sequenced { at += 4 }
        guard n >= at else { return .done(.malformed(.truncatedTunnelHeader)) }
        let layer: TunnelLayer
        let inner: Step
        switch proto {
        case 0x88be where !sequenced:
            // ERSPAN type I: no ERSPAN header, the mirrored frame right after GRE.
            layer = TunnelLayer(kind: .erspan1, outerSource: source, outerDestination: destination)
            inner = .ethernet(at)
        case 0x88be:
            // Type II: version (4 bits, 1), VLAN, COS, encapsulation, truncated bit, session
            // id (10 bits), then reserved bits and the index: 8 bytes.
            guard n >= at + 8 else { return .done(.malformed(.truncatedTunnelHeader)) }
            layer = TunnelLayer(kind: .erspan2, id: UInt32(Self.u16(frame, at + 2) & 0x3ff),
                                outerSource: source, outerDestination: destination)
            inner = .ethernet(at + 8)
        case 0x22eb:
            // Type III: version (2), VLAN, COS, BSO, truncated bit, session id, a 32-bit
            // timestamp, SGT, and flags whose last bit says an 8-byte platform subheader follows.
            guard n >= at + 12 else { return .done(.malformed(.truncatedTunnelHeader)) }
            let subheader = frame[at + 11] & 0x01 != 0 ? 8 : 0
            layer = TunnelLayer(kind: .erspan3, id: UInt32(Self.u16(frame, at + 2) & 0x3ff),
                                outerSource: source, outerDestination: destination)
            inner = .ethernet(at + 12 + subheader)
        case 0x6558:
            layer = TunnelLayer(kind: .gre, id: key, outerSource: source, outerDestination: destination)
            inner = .ethernet(at)
        default:
            layer = TunnelLayer(kind: .gre, id: key, outerSource: source, outerDestination: destination)
            inner = .etherType(proto, at)
        }
        guard tunnel.push(layer) else { return .done(.malformed(.tunnelTooDeep)) }
        return inner
    }

    /// A label stack, then IPv4, IPv6 or (after a pseudowire control word) Ethernet, as the
    /// first nibble says: MPLS itself does not name its payload.
    func mpls(_ frame: Span<UInt8>, at offset: Int, tunnel: inout TunnelStack) -> Step {
        let n = frame.count
        var at = offset
        var top: UInt32?
        var labels = 0
        while true {
            guard n >= at + 4 else { return .done(.malformed(.truncatedTunnelHeader)) }
            let entry = Self.u32(frame, at)
            if top == nil { top = entry >> 12 }
            at += 4
            labels += 1
            if entry & 0x100 != 0 { break }  // bottom of stack
            guard labels < Self.maxMPLSLabels else { return .done(.malformed(.tunnelTooDeep)) }
        }
        guard n >= at + 1 else { return .done(.malformed(.truncatedTunnelHeader)) }
        guard tunnel.push(TunnelLayer(kind: .mpls, id: top)) else { return .done(.malformed(.tunnelTooDeep)) }
        switch frame[at] >> 4 {
        case 4: return .ipv4(at)
        case 6: return .ipv6(at)
        case 0: return .ethernet(at + 4)  // Ethernet pseudowire with its control word
        default: return .done(.other(OtherTraffic(.etherType, 0x8847)))
        }
    }

    /// The session stage: version and type 0x11, code 0, session id, length, then a PPP
    /// protocol number.
    func pppoe(_ frame: Span<UInt8>, at offset: Int, tunnel: inout TunnelStack) -> Step {
        let n = frame.count
        guard n >= offset + 8 else { return .done(.malformed(.truncatedTunnelHeader)) }
        guard frame[offset] == 0x11, frame[offset + 1] == 0 else { return .done(.other(OtherTraffic(.etherType, 0x8864))) }
        let session = UInt32(Self.u16(frame, offset + 2))
        let ppp = Self.u16(frame, offset + 6)
        let inner: Step
        switch ppp {
        case 0x0021: inner = .ipv4(offset + 8)
        case 0x0057: inner = .ipv6(offset + 8)
        default: return .done(.other(OtherTraffic(.etherType, 0x8864)))
        }
        guard tunnel.push(TunnelLayer(kind: .pppoe, id: session)) else { return .done(.malformed(.tunnelTooDeep)) }
        return inner
    }
}

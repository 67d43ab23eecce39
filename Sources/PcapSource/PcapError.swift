import CPcap

/// Why libpcap could not give us packets. `message` is one line for the user.
public struct PcapError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case permission
        case noSuchDevice
        case badFilter
        case notACaptureFile
        case unreadable
        case other
    }
    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

extension PcapSource {
    /// How an offline file's packets are read.
    public enum FileReader: Sendable {
        /// A classic pcap file in this machine's byte order is mapped into memory and its
        /// records handed out in place; so is a pcapng file (any byte order, any link types),
        /// read by `PcapngRecords`; anything else goes through libpcap.
        case automatic
        /// libpcap's `pcap_next_ex`, except where libpcap stops at a pcapng interface of
        /// another link type or snapshot length: `PcapngRecords` reads on from there.
        case libpcap
    }
}

public enum NextPacket {
    case packet(CapturedPacket)
    /// Live capture: the read timeout passed with no packet.
    case timeout
    case end
    /// A read error; for files usually a truncated record.
    case error(String)
}

extension PcapSource {
    static func errorBuffer() -> [CChar] { [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1) }

    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

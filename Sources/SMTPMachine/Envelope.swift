import SMTPCapCore

/// A transaction's envelope addresses packed in one buffer (one allocation per message, not
/// one per address): each address is a two-byte big-endian length and its bytes, MAIL FROM's
/// first when `hasFrom`. Read back as strings when a report is written.
public struct EnvelopeAddresses: Sendable, Hashable {
    var packed: [UInt8] = []
    var hasFrom = false
    var count = 0

    public init() {}

    var isEmpty: Bool { count == 0 }

    mutating func append(_ address: ArraySlice<UInt8>) {
        let n = min(address.count, Envelope.maxAddressLength)
        packed.append(UInt8(n >> 8))
        packed.append(UInt8(n & 0xff))
        packed.append(contentsOf: address.prefix(n))
        count += 1
    }

    /// The addresses in order, as text (invalid UTF-8 repaired; reporters escape the rest).
    var all: [String] {
        var out: [String] = []
        out.reserveCapacity(count)
        var i = 0
        while i + 2 <= packed.count {
            let n = Int(packed[i]) << 8 | Int(packed[i + 1])
            out.append(wireText(packed[(i + 2)..<min(packed.count, i + 2 + n)], limit: Envelope.maxAddressLength))
            i += 2 + n
        }
        return out
    }

    /// Each address's bytes in order, and whether it is MAIL FROM's (for writing them without
    /// making strings).
    public func forEach(_ body: (_ isFrom: Bool, _ address: Span<UInt8>) -> Void) {
        var i = 0, index = 0
        let bytes = packed.span
        while i + 2 <= bytes.count {
            let n = Int(bytes[i]) << 8 | Int(bytes[i + 1])
            let end = min(bytes.count, i + 2 + n)
            body(hasFrom && index == 0, bytes.extracting((i + 2)..<end))
            i = end
            index += 1
        }
    }

    public var mailFrom: String? { hasFrom ? all.first : nil }
    public var rcptTo: [String] { hasFrom ? Array(all.dropFirst()) : all }
}

/// The envelope of the mail transaction in progress, as the client sent it (as Zeek's
/// smtp.log records it: MAIL FROM and RCPT TO at the command, accepted or not). Handed to the
/// message when its content starts. Bounded: at most `maxRecipients` addresses per message
/// and `maxBytes` of address text per session; past those, addresses are counted.
struct Envelope {
    static let maxRecipients = 100
    static let maxBytes = 16 * 1024
    static let maxDomains = 32
    static let maxAddressLength = 256

    var current = EnvelopeAddresses()
    var toNotListed = 0
    /// Address bytes kept by this session (all transactions).
    var keptBytes = 0

    /// MAIL starts a new transaction.
    mutating func mail(_ argument: ArraySlice<UInt8>, keepAddress: Bool) {
        current = EnvelopeAddresses()
        toNotListed = 0
        guard keepAddress, let address = Self.address(in: argument), keep(address.count) else { return }
        current.append(address)
        current.hasFrom = true
    }

    mutating func rcpt(_ address: ArraySlice<UInt8>?, keepAddress: Bool) {
        guard keepAddress, let address else { return }
        let listed = current.count - (current.hasFrom ? 1 : 0)
        guard listed < Self.maxRecipients, keep(address.count) else {
            toNotListed += 1
            return
        }
        current.append(address)
    }

    mutating func reset() {
        current = EnvelopeAddresses()
        toNotListed = 0
    }

    private mutating func keep(_ length: Int) -> Bool {
        let n = min(length, Self.maxAddressLength) + 2
        guard keptBytes + n <= Self.maxBytes else { return false }
        keptBytes += n
        return true
    }

    /// The path of a MAIL or RCPT argument (`FROM:<a@b> SIZE=10` gives `a@b`; `<>` gives an
    /// empty address): between the brackets, or the word after the colon when there are none.
    static func address(in argument: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        guard var i = argument.firstIndex(of: 0x3a) else { return nil }  // ':'
        i += 1
        while i < argument.endIndex && argument[i] == 0x20 { i += 1 }
        guard i < argument.endIndex else { return nil }
        if argument[i] == 0x3c {  // '<'
            let start = i + 1
            guard let end = argument[start...].firstIndex(of: 0x3e) else { return argument[start...] }
            return argument[start..<end]
        }
        let end = argument[i...].firstIndex(of: 0x20) ?? argument.endIndex
        return argument[i..<end]
    }

    /// The domain of an address (after its last `@`), lower-cased; nil for none.
    static func domain(of address: ArraySlice<UInt8>) -> String? {
        guard let at = address.lastIndex(of: 0x40), at + 1 < address.endIndex else { return nil }
        var domain = address[(at + 1)...]
        if domain.last == 0x2e { domain = domain.dropLast() }  // a trailing dot
        guard !domain.isEmpty, domain.count <= 253 else { return nil }
        return wireText(domain.map { $0 >= 0x41 && $0 <= 0x5a ? $0 | 0x20 : $0 }, limit: 253)
    }
}

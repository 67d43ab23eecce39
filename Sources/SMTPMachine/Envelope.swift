import SMTPCapCore

/// The envelope of the mail transaction in progress, as the client sent it (as Zeek's
/// smtp.log records it: MAIL FROM and RCPT TO at the command, accepted or not). Handed to the
/// message when its content starts. Bounded: at most `maxRecipients` addresses per message
/// and `maxBytes` of address text per session; past those, addresses are counted.
struct Envelope {
    static let maxRecipients = 100
    static let maxBytes = 16 * 1024
    static let maxDomains = 32

    var from: String?
    var to: [String] = []
    var toNotListed = 0
    /// Address text kept by this session (all transactions).
    var keptBytes = 0

    /// MAIL starts a new transaction.
    mutating func mail(_ argument: ArraySlice<UInt8>, keepAddress: Bool) {
        to.removeAll(keepingCapacity: true)
        toNotListed = 0
        from = nil
        guard keepAddress, let address = Self.address(in: argument) else { return }
        from = keep(address)
    }

    mutating func rcpt(_ address: ArraySlice<UInt8>?, keepAddress: Bool) {
        guard keepAddress, let address else { return }
        if to.count >= Self.maxRecipients { toNotListed += 1; return }
        if let kept = keep(address) { to.append(kept) } else { toNotListed += 1 }
    }

    mutating func reset() {
        from = nil
        to.removeAll(keepingCapacity: true)
        toNotListed = 0
    }

    private mutating func keep(_ address: ArraySlice<UInt8>) -> String? {
        let length = min(address.count, 256)
        guard keptBytes + length <= Self.maxBytes else { return nil }
        keptBytes += length
        return wireText(address, limit: 256)
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

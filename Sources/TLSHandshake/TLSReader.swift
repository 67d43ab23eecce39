import SMTPCapCore

/// What a ClientHello said.
public struct ClientHelloFacts: Sendable, Hashable {
    public var legacyVersion: UInt16
    public var supportedVersions: [UInt16]
    public var serverName: String?
    public var alpn: [String]
    public var cipherSuiteCount: Int
}

/// What a ServerHello said.
public struct ServerHelloFacts: Sendable, Hashable {
    /// The agreed version: supported_versions when present, else the legacy field.
    public var version: UInt16
    public var cipherSuite: UInt16
    public var helloRetryRequest: Bool
}

public struct TLSAlert: Sendable, Hashable {
    public var level: UInt8
    public var description: UInt8
    public var fromServer: Bool
    public var frame: UInt64

    public init(level: UInt8, description: UInt8, fromServer: Bool, frame: UInt64) {
        self.level = level
        self.description = description
        self.fromServer = fromServer
        self.frame = frame
    }
}

/// Reads the TLS record layer of one direction until the handshake is no longer in the
/// clear. Bounded: at most `maxHandshakeBytes` are buffered; application data is counted
/// and dropped.
public struct TLSDirectionReader: Sendable {
    public enum State: Equatable, Sendable {
        case reading
        /// Encrypted from here on (ChangeCipherSpec, application data, or TLS 1.3 after
        /// ServerHello): count only.
        case opaque
        /// Not TLS, or malformed: count only.
        case notTLS(String)
    }

    static let maxHandshakeBytes = 64 * 1024

    public private(set) var state = State.reading
    /// Bytes of an incomplete record header or alert/handshake record body.
    var recordBuffer: [UInt8] = []
    /// Reassembled handshake message bytes across records.
    var handshakeBuffer: [UInt8] = []
    /// Payload bytes still to skip in the current (unbuffered) record.
    var skipRemaining = 0
    public private(set) var recordsSeen = 0
    public private(set) var bytes: UInt64 = 0

    /// Heap bytes held for incomplete records and handshake messages.
    public var bufferedBytes: Int { recordBuffer.capacity + handshakeBuffer.capacity }

    public enum Event {
        /// The first bytes of a handshake record holding a ClientHello: TLS has begun, even
        /// if the rest of the message is cut by the capture.
        case clientHelloStarted
        case clientHello(ClientHelloFacts)
        case serverHello(ServerHelloFacts)
        case alert(level: UInt8, description: UInt8)
        case certificate(CertificateFacts?, error: String?)
        case encrypted
    }

    /// Feeds bytes; reports handshake events through `handle`.
    public init() {}

    public mutating func feed(_ data: Span<UInt8>, handle: (Event) -> Void) {
        bytes &+= UInt64(data.count)
        var p = 0
        while p < data.count {
            guard state == .reading else { return }
            if skipRemaining > 0 {
                let n = min(skipRemaining, data.count - p)
                skipRemaining -= n
                p += n
                continue
            }
            // Collect a 5-byte header, then the record body.
            if recordBuffer.count < 5 {
                let n = min(5 - recordBuffer.count, data.count - p)
                recordBuffer.append(span: data.extracting(p..<(p + n)))
                p += n
                if recordBuffer.count < 5 { return }
                let type = recordBuffer[0]
                let major = recordBuffer[1]
                let length = Int(recordBuffer[3]) << 8 | Int(recordBuffer[4])
                guard (20...24).contains(type), major == 3 else {
                    state = .notTLS(recordsSeen == 0 ? "not a TLS record" : "malformed TLS record header")
                    return
                }
                guard length <= 16384 + 2048 else {
                    state = .notTLS("TLS record too long")
                    return
                }
                recordsSeen += 1
                if type == 23 {
                    state = .opaque
                    handle(.encrypted)
                    return
                }
                if type == 20 {
                    // ChangeCipherSpec: in TLS 1.2 what follows from this side is encrypted;
                    // in TLS 1.3 it is a compatibility no-op, but everything after is encrypted too.
                    state = .opaque
                    handle(.encrypted)
                    return
                }
                if length == 0 { recordBuffer.removeAll(keepingCapacity: true); continue }
            }
            let length = Int(recordBuffer[3]) << 8 | Int(recordBuffer[4])
            let want = 5 + length - recordBuffer.count
            let n = min(want, data.count - p)
            let wasHeaderOnly = recordBuffer.count == 5
            recordBuffer.append(span: data.extracting(p..<(p + n)))
            p += n
            if wasHeaderOnly, n > 0, recordBuffer[0] == 22, recordBuffer[5] == 1, handshakeBuffer.isEmpty {
                handle(.clientHelloStarted)
            }
            if recordBuffer.count < 5 + length { return }
            let type = recordBuffer[0]
            let body = recordBuffer[5...]
            switch type {
            case 21:
                if body.count >= 2 { handle(.alert(level: body[body.startIndex], description: body[body.startIndex + 1])) }
            case 22:
                if handshakeBuffer.count + body.count > Self.maxHandshakeBytes {
                    state = .notTLS("handshake larger than the reader's bound")
                    return
                }
                handshakeBuffer.append(contentsOf: body)
                parseHandshakeMessages(handle: handle)
            default:
                break  // heartbeat and others: skip
            }
            recordBuffer.removeAll(keepingCapacity: true)
        }
    }

    private mutating func parseHandshakeMessages(handle: (Event) -> Void) {
        var consumed = 0
        while handshakeBuffer.count - consumed >= 4 {
            let type = handshakeBuffer[consumed]
            let length = Int(handshakeBuffer[consumed + 1]) << 16 | Int(handshakeBuffer[consumed + 2]) << 8
                | Int(handshakeBuffer[consumed + 3])
            guard handshakeBuffer.count - consumed - 4 >= length else { break }
            let body = handshakeBuffer[(consumed + 4)..<(consumed + 4 + length)]
            consumed += 4 + length
            switch type {
            case 1:
                if let hello = TLSParse.clientHello(body) { handle(.clientHello(hello)) }
                else { state = .notTLS("malformed ClientHello"); return }
            case 2:
                if let hello = TLSParse.serverHello(body) { handle(.serverHello(hello)) }
                else { state = .notTLS("malformed ServerHello"); return }
            case 11:
                let (facts, error) = CertificateParse.chain(body)
                handle(.certificate(facts, error: error))
            default:
                break
            }
            if state != .reading { break }
        }
        handshakeBuffer.removeFirst(consumed)
    }
}

/// Bounds-checked readers over handshake message bodies. Every read returns nil on short input.
enum TLSParse {
    struct Reader {
        var bytes: ArraySlice<UInt8>
        mutating func u8() -> UInt8? { bytes.popFirst() }
        mutating func u16() -> UInt16? {
            guard bytes.count >= 2 else { return nil }
            let v = UInt16(bytes[bytes.startIndex]) << 8 | UInt16(bytes[bytes.startIndex + 1])
            bytes = bytes.dropFirst(2)
            return v
        }
        mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, bytes.count >= n else { return nil }
            let s = bytes.prefix(n)
            bytes = bytes.dropFirst(n)
            return s
        }
        mutating func u24() -> Int? {
            guard bytes.count >= 3 else { return nil }
            let i = bytes.startIndex
            let v = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            bytes = bytes.dropFirst(3)
            return v
        }
        mutating func vector8() -> ArraySlice<UInt8>? { u8().flatMap { take(Int($0)) } }
        mutating func vector16() -> ArraySlice<UInt8>? { u16().flatMap { take(Int($0)) } }
    }

    static let helloRetryRandom: [UInt8] = [
        0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
        0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
    ]

    static func clientHello(_ body: ArraySlice<UInt8>) -> ClientHelloFacts? {
        var r = Reader(bytes: body)
        guard let legacy = r.u16(), r.take(32) != nil, r.vector8() != nil,
              let suites = r.vector16(), r.vector8() != nil else { return nil }
        var facts = ClientHelloFacts(legacyVersion: legacy, supportedVersions: [], serverName: nil, alpn: [],
                                     cipherSuiteCount: suites.count / 2)
        guard var extensions = r.vector16().map({ Reader(bytes: $0) }) else { return facts }  // no extensions
        while let type = extensions.u16() {
            guard let data = extensions.vector16() else { return nil }
            var e = Reader(bytes: data)
            switch type {
            case 0:  // server_name
                if var list = e.vector16().map({ Reader(bytes: $0) }), list.u8() == 0, let name = list.vector16() {
                    facts.serverName = String(decoding: name.prefix(255), as: UTF8.self)
                }
            case 16:  // ALPN
                if var list = e.vector16().map({ Reader(bytes: $0) }) {
                    while facts.alpn.count < 16, let proto = list.vector8() {
                        facts.alpn.append(String(decoding: proto.prefix(64), as: UTF8.self))
                    }
                }
            case 43:  // supported_versions
                if var list = e.vector8().map({ Reader(bytes: $0) }) {
                    while facts.supportedVersions.count < 32, let v = list.u16() { facts.supportedVersions.append(v) }
                }
            default:
                break
            }
        }
        return facts
    }

    static func serverHello(_ body: ArraySlice<UInt8>) -> ServerHelloFacts? {
        var r = Reader(bytes: body)
        guard let legacy = r.u16(), let random = r.take(32), r.vector8() != nil,
              let suite = r.u16(), r.u8() != nil else { return nil }
        var facts = ServerHelloFacts(version: legacy, cipherSuite: suite,
                                     helloRetryRequest: random.elementsEqual(helloRetryRandom))
        if var extensions = r.vector16().map({ Reader(bytes: $0) }) {
            while let type = extensions.u16() {
                guard let data = extensions.vector16() else { return nil }
                if type == 43, data.count == 2 {
                    facts.version = UInt16(data[data.startIndex]) << 8 | UInt16(data[data.startIndex + 1])
                }
            }
        }
        return facts
    }
}

/// Names of TLS versions, cipher suites and alerts, for reports.
public enum TLSNames {
    public static func version(_ v: UInt16) -> String {
        switch v {
        case 0x0300: return "SSL3.0"
        case 0x0301: return "TLS1.0"
        case 0x0302: return "TLS1.1"
        case 0x0303: return "TLS1.2"
        case 0x0304: return "TLS1.3"
        default: return hex(v)
        }
    }

    /// `0x` and four lower-case hex digits (a small string: no allocation).
    public static func hex(_ v: UInt16) -> String {
        var text: InlineArray<6, UInt8> = [0x30, 0x78, 0, 0, 0, 0]
        for i in 0..<4 {
            let nibble = UInt8(truncatingIfNeeded: v >> UInt16(12 - 4 * i)) & 0xf
            text[2 + i] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
        }
        return String(wireBytes: text.span, limit: 6)
    }

    /// IANA names of the suites seen in practice; others are shown by code.
    public static func cipherSuite(_ code: UInt16) -> String {
        cipherSuiteNames[code] ?? "unknown (\(hex(code)))"
    }

    static let cipherSuiteNames: [UInt16: String] = [
        0x0000: "TLS_NULL_WITH_NULL_NULL",
        0x0001: "TLS_RSA_WITH_NULL_MD5", 0x0002: "TLS_RSA_WITH_NULL_SHA",
        0x0003: "TLS_RSA_EXPORT_WITH_RC4_40_MD5", 0x0004: "TLS_RSA_WITH_RC4_128_MD5",
        0x0005: "TLS_RSA_WITH_RC4_128_SHA", 0x0008: "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA",
        0x0009: "TLS_RSA_WITH_DES_CBC_SHA", 0x000a: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0x002f: "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA", 0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        0x003c: "TLS_RSA_WITH_AES_128_CBC_SHA256", 0x003d: "TLS_RSA_WITH_AES_256_CBC_SHA256",
        0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", 0x006b: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        0x009c: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009d: "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x009e: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 0x009f: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
        0x1303: "TLS_CHACHA20_POLY1305_SHA256", 0x1304: "TLS_AES_128_CCM_SHA256",
        0x1305: "TLS_AES_128_CCM_8_SHA256",
        0xc007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", 0xc008: "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        0xc009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xc00a: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA", 0xc012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xc024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xc027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xc028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0xc02b: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xc02c: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xccaa: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ]

    /// A suite without forward secrecy (RSA key transport) or with a broken cipher.
    public static func isWeak(cipherSuite code: UInt16) -> Bool {
        weakSuites.contains(code)
    }

    /// Computed once from the names: RSA key transport, NULL, RC4, DES, 3DES, EXPORT.
    static let weakSuites: Set<UInt16> = Set(cipherSuiteNames.compactMap { code, name in
        let weak = name.hasPrefix("TLS_RSA_") || name.hasPrefix("TLS_NULL") || name.contains("_RC4_")
            || name.contains("3DES") || name.contains("_NULL_") || name.contains("EXPORT") || name.contains("_DES_")
        return weak ? code : nil
    })

    public static func alert(_ description: UInt8) -> String {
        switch description {
        case 0: return "close_notify"
        case 10: return "unexpected_message"
        case 20: return "bad_record_mac"
        case 40: return "handshake_failure"
        case 42: return "bad_certificate"
        case 43: return "unsupported_certificate"
        case 44: return "certificate_revoked"
        case 45: return "certificate_expired"
        case 46: return "certificate_unknown"
        case 47: return "illegal_parameter"
        case 48: return "unknown_ca"
        case 50: return "decode_error"
        case 51: return "decrypt_error"
        case 70: return "protocol_version"
        case 71: return "insufficient_security"
        case 80: return "internal_error"
        case 86: return "inappropriate_fallback"
        case 90: return "user_canceled"
        case 109: return "missing_extension"
        case 110: return "unsupported_extension"
        case 112: return "unrecognized_name"
        case 116: return "certificate_required"
        case 120: return "no_application_protocol"
        default: return "alert \(description)"
        }
    }
}

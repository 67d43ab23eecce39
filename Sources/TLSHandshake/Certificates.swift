import Crypto
import Foundation
import SwiftASN1
import X509

/// What the server's certificate said (visible only before TLS 1.3, where the Certificate
/// message travels in the clear).
public struct CertificateFacts: Sendable, Hashable {
    public var subject: String
    public var issuer: String
    public var subjectAlternativeNames: [String]
    /// Seconds since 1970 (UTC).
    public var notBefore: Int64
    public var notAfter: Int64
    public var selfSigned: Bool
    /// Certificates in the chain the server sent.
    public var chainLength: Int
    /// SHA-256 of the leaf certificate's DER, lowercase hex: the certificate's identity.
    public var sha256: String
    /// The leaf's public key: `rsa`, `ecdsa`, `ed25519`, `ed448`, `dsa` or `unknown`, and its
    /// size in bits (the modulus for RSA, the curve for ECDSA; 0 when unknown).
    public var keyType: String
    public var keyBits: Int

    public init(subject: String, issuer: String, subjectAlternativeNames: [String], notBefore: Int64, notAfter: Int64,
                selfSigned: Bool, chainLength: Int, sha256: String = "", keyType: String = "unknown", keyBits: Int = 0) {
        self.subject = subject
        self.issuer = issuer
        self.subjectAlternativeNames = subjectAlternativeNames
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.selfSigned = selfSigned
        self.chainLength = chainLength
        self.sha256 = sha256
        self.keyType = keyType
        self.keyBits = keyBits
    }
}

enum CertificateParse {
    static let maxChain = 10

    /// A TLS 1.2 Certificate message body: a 24-bit list length, then 24-bit-length DER
    /// certificates. Parsed with swift-certificates; nil when it is not one.
    static func chain(_ body: ArraySlice<UInt8>) -> (facts: CertificateFacts?, error: String?) {
        var r = TLSParse.Reader(bytes: body)
        guard let listLength = r.u24(), let list = r.take(listLength) else { return (nil, "malformed Certificate message") }
        var entries = TLSParse.Reader(bytes: list)
        var ders: [ArraySlice<UInt8>] = []
        while ders.count < maxChain, let length = entries.u24() {
            guard let der = entries.take(length) else { return (nil, "malformed Certificate entry") }
            ders.append(der)
        }
        guard let leafDER = ders.first else { return (nil, "empty certificate chain") }
        do {
            let der = Array(leafDER)
            let leaf = try Certificate(derEncoded: der)
            let key = publicKey(spki(of: der) ?? [])
            var names: [String] = []
            if let san = try? leaf.extensions.subjectAlternativeNames {
                for name in san {
                    switch name {
                    case .dnsName(let dns): names.append(dns)
                    case .ipAddress(let ip): names.append("IP:" + ip.bytes.map { String($0) }.joined(separator: "."))
                    default: continue
                    }
                    if names.count >= 32 { break }
                }
            }
            let facts = CertificateFacts(
                subject: String(String(describing: leaf.subject).prefix(512)),
                issuer: String(String(describing: leaf.issuer).prefix(512)),
                subjectAlternativeNames: names,
                notBefore: Int64(leaf.notValidBefore.timeIntervalSince1970),
                notAfter: Int64(leaf.notValidAfter.timeIntervalSince1970),
                selfSigned: leaf.subject == leaf.issuer,
                chainLength: ders.count,
                sha256: sha256Hex(der),
                keyType: key.type,
                keyBits: key.bits)
            return (facts, nil)
        } catch {
            return (nil, "certificate not parseable as X.509")
        }
    }
}

extension CertificateParse {
    /// Lowercase hex SHA-256 of `bytes`.
    static func sha256Hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in SHA256.hash(data: bytes) {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The SubjectPublicKeyInfo of a certificate's DER: the seventh field of tbsCertificate
    /// (the sixth when the optional version is absent).
    static func spki(of der: [UInt8]) -> ArraySlice<UInt8>? {
        guard let root = try? DER.parse(der), case .constructed(let parts) = root.content,
              let tbs = parts.first(where: { _ in true }), case .constructed(let fields) = tbs.content else { return nil }
        var list = Array(fields)
        if let first = list.first, first.identifier.tagClass == .contextSpecific { list.removeFirst() }
        guard list.count > 5 else { return nil }
        return list[5].encodedBytes
    }

    /// The key type and size a SubjectPublicKeyInfo names: its algorithm identifier, and the
    /// RSA modulus or the named curve.
    static func publicKey(_ spki: ArraySlice<UInt8>) -> (type: String, bits: Int) {
        guard let root = try? DER.parse(Array(spki)), case .constructed(let items) = root.content else { return ("unknown", 0) }
        var it = items.makeIterator()
        guard let algorithm = it.next(), let keyNode = it.next(),
              case .constructed(let algorithmItems) = algorithm.content else { return ("unknown", 0) }
        var a = algorithmItems.makeIterator()
        guard let oidNode = a.next(), let oid = try? ASN1ObjectIdentifier(derEncoded: oidNode) else { return ("unknown", 0) }
        let parameters = a.next()
        switch oid.description {
        case "1.2.840.113549.1.1.1", "1.2.840.113549.1.1.10":
            guard let bits = try? ASN1BitString(derEncoded: keyNode),
                  let key = try? DER.parse(Array(bits.bytes)), case .constructed(let parts) = key.content,
                  let modulus = parts.first(where: { _ in true }), case .primitive(let m) = modulus.content,
                  let lead = m.firstIndex(where: { $0 != 0 }) else { return ("rsa", 0) }
            let significant = m[lead...]
            return ("rsa", (significant.count - 1) * 8 + (8 - significant.first!.leadingZeroBitCount))
        case "1.2.840.10045.2.1":
            guard let parameters, let curve = try? ASN1ObjectIdentifier(derEncoded: parameters) else { return ("ecdsa", 0) }
            switch curve.description {
            case "1.2.840.10045.3.1.7": return ("ecdsa", 256)
            case "1.3.132.0.34": return ("ecdsa", 384)
            case "1.3.132.0.35": return ("ecdsa", 521)
            case "1.3.132.0.10": return ("ecdsa", 256)  // secp256k1
            default: return ("ecdsa", 0)
            }
        case "1.3.101.112": return ("ed25519", 256)
        case "1.3.101.113": return ("ed448", 456)
        case "1.2.840.10040.4.1": return ("dsa", 0)
        default: return ("unknown", 0)
        }
    }
}

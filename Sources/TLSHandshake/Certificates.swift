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
            let leaf = try Certificate(derEncoded: Array(leafDER))
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
                chainLength: ders.count)
            return (facts, nil)
        } catch {
            return (nil, "certificate not parseable as X.509")
        }
    }
}

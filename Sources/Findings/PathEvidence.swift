import SMTPCapCore
import SMTPMachine

/// Where the capture was taken, as the TTLs tell: whose packets arrived with their initial
/// TTL (0 hops away).
public enum Vantage: String, Sendable {
    /// The client's packets arrived unrouted, the server's routed: captured at the client.
    case client
    /// The server's packets arrived unrouted, the client's routed: captured at the server.
    case server
    /// Both sides' packets arrived unrouted: on the same host or link as both, or whatever
    /// answered for the server sits on the client's link.
    case sameLink = "same-link"
    /// Both were routed: captured on the path between them.
    case between
}

/// What the IP and TCP headers say about the path of one session: the TTL (hop limit) of each
/// side's first packets, the initial TTL they most likely started from, the hops between, the
/// server's SYN-ACK options, and server packets whose TTL differed from the rest.
public struct PathEvidence: Sendable, Hashable {
    public var serverTTL: UInt8?
    public var serverInitialTTL: UInt8?
    public var serverHops: Int?
    public var clientTTL: UInt8?
    public var clientInitialTTL: UInt8?
    public var clientHops: Int?
    /// The server's SYN-ACK options (`mss=1460,sack,ts,nop,wscale=7`), when it was seen.
    public var synAck: TCPOptionsPrint?
    public var serverTTLChanges: Int
    /// The first different TTL and its frame.
    public var changedTTL: UInt8?
    public var changedFrame: UInt64?
    public var vantage: Vantage?

    public init(_ r: borrowing SessionRecord) {
        let server = r.serverStats.path, client = r.clientStats.path
        serverTTL = server.ttl
        serverInitialTTL = serverTTL.map(PathObservation.initialTTL)
        serverHops = serverTTL.map { Int(PathObservation.initialTTL(for: $0)) - Int($0) }
        clientTTL = client.ttl
        clientInitialTTL = clientTTL.map(PathObservation.initialTTL)
        clientHops = clientTTL.map { Int(PathObservation.initialTTL(for: $0)) - Int($0) }
        synAck = server.synOptions
        serverTTLChanges = Int(server.ttlChanges)
        changedTTL = server.changedTTL
        changedFrame = server.changedFrame
        if let s = serverHops, let c = clientHops {
            switch (c == 0, s == 0) {
            case (true, true): vantage = .sameLink
            case (true, false): vantage = .client
            case (false, true): vantage = .server
            case (false, false): vantage = .between
            }
        }
    }

    /// `0 hops away (TTL 64)`, `1 hop away (TTL 63)`.
    static func hopsText(_ hops: Int, ttl: UInt8) -> String {
        "\(hops) hop\(hops == 1 ? "" : "s") away (TTL \(ttl))"
    }
}

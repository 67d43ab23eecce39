import Findings
import SMTPCapCore
import SMTPMachine
import TCPReassembly

/// Makes an SMTP machine per connection and, when the connection ends, its finished record
/// with findings and verdict.
struct SessionFactory: StreamFactory {
    let options: SessionOptions
    /// What the flow keys' context numbers stand for (interface, tunnels).
    let contexts: FlowContexts
    var finishedSessions: [SessionRecord] = []
    var emptyConnections = 0

    mutating func makeConsumer(_ info: ConnectionInfo) -> SMTPSession {
        SMTPSession(info: info, options: options)
    }

    mutating func finished(_ consumer: inout SMTPSession, info: ConnectionInfo,
                           client: DirectionStats, server: DirectionStats, end: Timestamp) {
        if client.bytes == 0 && server.bytes == 0 && client.gaps == 0 && server.gaps == 0 {
            emptyConnections += 1  // a SYN with no data: nothing SMTP to say
            return
        }
        var record = consumer.finish(client: client, server: server, end: end)
        if info.context != FlowContexts.plain || contexts.interfaceName != nil {
            let context = contexts.context(info.context)
            record.interface = context.interfaceName
            record.tunnel = context.tunnel
        }
        SessionFindings.evaluate(&record)
        finishedSessions.append(record)
    }

    /// Hands the finished sessions over, oldest first, each moved out (not copied), and keeps
    /// the list's capacity for the next ones.
    mutating func drainFinished(_ deliver: (consuming SessionRecord) -> Void) {
        var done: [SessionRecord] = []
        swap(&done, &finishedSessions)
        done.reverse()
        while let record = done.popLast() { deliver(record) }
        swap(&done, &finishedSessions)
    }
}

/// A port membership test without hashing: one bit per port.
struct PortSet {
    var bits = [UInt64](repeating: 0, count: 1024)
    init(_ ports: [UInt16]) {
        for p in ports { bits[Int(p >> 6)] |= 1 << UInt64(p & 63) }
    }
    @inline(__always)
    func contains(_ port: UInt16) -> Bool { bits[Int(port >> 6)] & (1 << UInt64(port & 63)) != 0 }
}

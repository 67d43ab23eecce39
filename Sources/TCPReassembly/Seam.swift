import SMTPCapCore

/// The consumer side of the reassembly seam: ordered bytes, explicit gaps and closes per
/// direction. The bytes passed to `data` are valid only during the call.
public protocol StreamConsumer {
    mutating func data(_ bytes: Span<UInt8>, _ direction: Direction, _ meta: ChunkMeta)
    /// Bytes are missing in `direction`; `lost` is their count when known.
    mutating func gap(_ direction: Direction, lost: UInt64?, _ meta: ChunkMeta)
    mutating func closed(_ direction: Direction, _ reason: CloseReason, _ meta: ChunkMeta)
    /// Heap bytes the consumer holds for this connection beyond its fixed size (buffers,
    /// lists), by capacity. The flow table keeps the sum under a budget. `mutating` only so it
    /// is read in place: a large consumer read by value is copied first, on every packet.
    var bufferedBytes: Int { mutating get }
    /// The connection was idle past the timeout and now goes on (`meta` is the packet that
    /// resumed it).
    mutating func resumed(afterIdleSeconds: Int64, _ meta: ChunkMeta)
}

extension StreamConsumer {
    public mutating func resumed(afterIdleSeconds: Int64, _ meta: ChunkMeta) {}
}

/// Makes a consumer for each new connection and takes it back when the connection ends.
public protocol StreamFactory {
    associatedtype Consumer: StreamConsumer
    mutating func makeConsumer(_ info: ConnectionInfo) -> Consumer
    /// The consumer is handed over in place, spent: moving a large consumer out of the table
    /// would copy it (and retain each of its fields).
    mutating func finished(_ consumer: inout Consumer, info: ConnectionInfo,
                           client: DirectionStats, server: DirectionStats, end: Timestamp)
}

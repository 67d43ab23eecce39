/// Commands sent and not yet answered, oldest first (pipelining, RFC 2920). Capped: past
/// `limit` the oldest is dropped and the caller notes it.
struct PendingCommands {
    static let limit = 1000

    private var items: [PendingCommand] = []
    private var head = 0

    var isEmpty: Bool { head >= items.count }
    var count: Int { items.count - head }
    var first: PendingCommand? { isEmpty ? nil : items[head] }
    /// Heap bytes held.
    var heapBytes: Int { items.capacity * MemoryLayout<PendingCommand>.stride }

    /// Adds a command; returns false when the oldest had to be dropped to make room.
    mutating func append(_ command: PendingCommand) -> Bool {
        var kept = true
        if count >= Self.limit {
            head += 1
            kept = false
        }
        items.append(command)
        return kept
    }

    mutating func removeFirst() -> PendingCommand? {
        guard head < items.count else { return nil }
        let command = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return command
    }

    mutating func removeAll() {
        items.removeAll(keepingCapacity: true)
        head = 0
    }

    /// The newest command waiting that satisfies `match`.
    func last(where match: (CommandKind) -> Bool) -> PendingCommand? {
        items[head...].last { match($0.kind) }
    }

    /// Drops the commands before the first that satisfies `match`; says whether any was
    /// dropped.
    mutating func dropUntil(_ match: (CommandKind) -> Bool) -> Bool {
        guard head < items.count, !match(items[head].kind) else { return false }
        guard let found = items[head...].firstIndex(where: { match($0.kind) }) else { return false }
        head = found
        return true
    }
}

import PcapSource
import SMTPCapCore

/// How several `-r` files are read. Files that continue each other, as `tcpdump -C` and `-G`
/// rotation leave them, are one capture: read in time order whatever the command-line order
/// (a shell glob gives `rot, rot1, rot10, rot2`), their sessions going on from file to file
/// and their frames numbered as in the `mergecap -a` merge of them. A file continues the one
/// before when their names differ only in digits (`rot`, `rot1`; `trace-1400.pcap`,
/// `trace-1500.pcap`: how tcpdump names the files it rotates) and it begins no earlier than
/// that one ended. Other files (two vantage points, the same file twice, unrelated captures)
/// are separate captures.
enum FilePlan {
    struct Survey {
        var path: String
        /// The file's name without its digits: rotated files share it.
        var stem: String
        var order: Int
        var first: Timestamp?
        var last: Timestamp?
        /// Read to its end: `last` is the file's last packet (else only the first was read).
        var complete = false
    }

    /// The captures to analyze, each a list of files in reading order; in time order, with
    /// the files that cannot be surveyed (unreadable, empty, standard input) first, in
    /// command-line order, each on its own.
    static func units(_ paths: [String], reader: PcapSource.FileReader, maxGap: Int64) -> [[String]] {
        // Only files that may be part of a rotation (another file of the same stem) are read
        // to their end; the others need only their first time stamp, for the order.
        var namesByStem: [String: Set<String>] = [:]
        for path in paths { namesByStem[stem(path), default: []].insert(path) }
        let surveys = paths.enumerated().map { order, path in
            survey(path, order: order, reader: reader, toTheEnd: namesByStem[stem(path)]!.count > 1)
        }.sorted { a, b in
            switch (a.first, b.first) {
            case (nil, nil): return a.order < b.order
            case (nil, _): return true
            case (_, nil): return false
            case let (x?, y?): return x != y ? x < y : a.order < b.order
            }
        }
        return chains(surveys, maxGap: maxGap)
    }

    /// Groups surveyed files, in time order: a file continues the open capture of its stem
    /// when its first packet is not earlier than that capture's last, and not later than
    /// `maxGap` seconds after it (no connection outlives a longer silence: the idle timeout),
    /// so rotation sets of two taps (`in`, `out`, `in1`, `out1`) each stay whole, and a file of
    /// Monday's and one of Tuesday's with similar names stay apart.
    static func chains(_ surveys: [Survey], maxGap: Int64) -> [[String]] {
        var units: [[String]] = []
        var open: [String: (unit: Int, last: Timestamp)] = [:]
        for s in surveys {
            if s.complete, let first = s.first, let end = s.last, let chain = open[s.stem], first >= chain.last,
               first.seconds - chain.last.seconds <= maxGap, !units[chain.unit].contains(s.path) {
                units[chain.unit].append(s.path)
                open[s.stem] = (chain.unit, end)
            } else {
                units.append([s.path])
                if s.complete, let end = s.last { open[s.stem] = (units.count - 1, end) }
            }
        }
        return units
    }

    /// The time stamps of a file's first and (`toTheEnd`) last packets: one pass over its
    /// records (in place when the file is mapped), nothing decoded.
    static func survey(_ path: String, order: Int, reader: PcapSource.FileReader, toTheEnd: Bool) -> Survey {
        var s = Survey(path: path, stem: stem(path), order: order)
        guard path != "-", let source = try? PcapSource.openOffline(path, reader: reader) else { return s }
        while true {
            guard case .packet(let packet) = source.next() else { break }
            let t = Timestamp(clamping: packet.seconds, nanoseconds: packet.nanoseconds)
            if s.first == nil { s.first = t }
            s.last = t
            if !toTheEnd { break }
        }
        s.complete = toTheEnd
        return s
    }

    /// The file's name without its digits (`rot1` -> `rot`, `trace-1400.pcap` -> `trace-.pcap`).
    static func stem(_ path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return String(name.filter { !$0.isASCII || !$0.isNumber })
    }
}

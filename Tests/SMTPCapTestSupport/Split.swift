/// How a parser is fed one input: whole, one byte at a time, or in seeded random pieces. Every
/// parser must give the same answer for each.
public enum Split: CustomStringConvertible, Sendable {
    case whole
    case byteByByte
    case random(UInt64)

    public var description: String {
        switch self {
        case .whole: "whole"
        case .byteByByte: "byte-by-byte"
        case .random(let seed): "random(\(seed))"
        }
    }

    /// Whole, byte by byte, and eight random splits.
    public static let all: [Split] = [.whole, .byteByByte] + (1...8).map { .random($0) }

    /// The generator for `.random` (seed 0 for the others).
    public func generator() -> SeededRandom {
        if case .random(let seed) = self { return SeededRandom(seed: seed) }
        return SeededRandom(seed: 0)
    }

    /// `bytes` cut as this split says; random pieces are 1 to `maxPiece` bytes long and draw
    /// from `rng`, so consecutive inputs of one dialogue continue the same sequence.
    public func pieces(_ bytes: [UInt8], maxPiece: Int = 64, using rng: inout SeededRandom) -> [ArraySlice<UInt8>] {
        switch self {
        case .whole: return [bytes[...]]
        case .byteByByte: return bytes.indices.map { bytes[$0...$0] }
        case .random:
            var out: [ArraySlice<UInt8>] = []
            var i = 0
            while i < bytes.count {
                let n = Int.random(in: 1...max(1, min(maxPiece, bytes.count - i)), using: &rng)
                out.append(bytes[i..<(i + n)])
                i += n
            }
            return out
        }
    }

    /// A piece between guard bytes: a parser handed `guarded[window]` must read only inside
    /// the window (AddressSanitizer and the span's bounds both check).
    public static func guarded(_ piece: ArraySlice<UInt8>) -> (bytes: [UInt8], window: Range<Int>) {
        let before = Array("BEFORE".utf8), after = Array("AFTER".utf8)
        return (before + piece + after, before.count..<(before.count + piece.count))
    }
}

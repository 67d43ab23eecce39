import SMTPCapTestSupport
import TLSHandshake
import Findings
import SMTPCapCore
import Testing
@testable import SMTPMachine

/// The DATA content scanner and the line framer against byte-at-a-time reference versions,
/// on generated content fed in random splits (the scanner skips 16 bytes at a time, so
/// boundaries inside and around its vector steps matter).
@Suite("Content scanner and line framer")
struct ScannerTests {
    /// Reference: the content length before the first line that is exactly "." (CRLF or bare
    /// LF), or nil when there is none.
    static func referenceContentLength(_ bytes: [UInt8]) -> (content: Int, consumed: Int)? {
        var lineStart = 0
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x0a {
                let line = bytes[lineStart..<i]
                if line.elementsEqual([0x2e]) || line.elementsEqual([0x2e, 0x0d]) {
                    return (lineStart, i + 1)
                }
                lineStart = i + 1
            }
            i += 1
        }
        return nil
    }

    /// Content lines from an alphabet rich in the bytes that matter: CR, LF, dots.
    static func content(_ rng: inout SeededRandom, lines: Int) -> [UInt8] {
        let alphabet: [UInt8] = Array("ab.\r\n..x".utf8)
        var out: [UInt8] = []
        for _ in 0..<lines {
            let length = Int(rng.next() % 40)
            var line = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            line.removeAll { $0 == 0x0a }
            if line.first == 0x2e { line.insert(0x2e, at: 0) }  // dot-stuffed, as a client sends it
            out += line
            out += rng.next() % 4 == 0 ? [0x0a] : [0x0d, 0x0a]
        }
        return out
    }

    /// Feeds `stream` (content, its end line, more) to a scanner in chunks of `sizes()` bytes and
    /// checks where it ends and how much content it counted against the reference.
    static func checkScanner(_ stream: [UInt8], sizes: () -> Int) {
        let expected = referenceContentLength(stream)
        #expect(expected != nil)
        var scanner = BodyScanner()
        var offset = 0
        var endedAt: Int?
        while offset < stream.count && endedAt == nil {
            let size = sizes()
            let chunk = Array(stream[offset..<min(stream.count, offset + size)])
            var p = 0
            if scanner.scan(chunk.span, from: &p) { endedAt = offset + p }
            offset += size
        }
        #expect(endedAt == expected?.consumed)
        #expect(scanner.bytes == UInt64(expected?.content ?? -1))
    }

    static func withEnd(_ content: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        content + (rng.next() % 2 == 0 ? Array(".\r\n".utf8) : Array(".\n".utf8)) + Array("QUIT\r\n".utf8)
    }

    @Test(arguments: 0..<40)
    func scannerAgreesWithReference(seed: Int) {
        var rng = SeededRandom(seed: UInt64(seed) &+ 0x5eed)
        let content = Self.content(&rng, lines: Int(rng.next() % 200))
        let stream = Self.withEnd(content, &rng)
        Self.checkScanner(stream) { max(1, Int(rng.next() % 70)) }
    }

    /// Content like most mail's: long runs without a dot (base64 attachments), prose with a
    /// dot now and then, dot-stuffed lines; fed in packet-sized and whole chunks, so both the
    /// dot-to-dot search and the vector scan it hands over to are exercised.
    static func sparseContent(_ rng: inout SeededRandom, lines: Int) -> [UInt8] {
        let letters: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ ".utf8)
        var out: [UInt8] = []
        for _ in 0..<lines {
            var line = (0..<Int(rng.next() % 90)).map { _ in letters[Int(rng.next() % UInt64(letters.count))] }
            switch rng.next() % 16 {
            case 0: line.insert(contentsOf: [0x2e, 0x2e], at: 0)             // dot-stuffed
            case 1, 2: line.append(0x2e)                                     // a sentence ends
            case 3: line = (0..<Int(rng.next() % 30)).map { _ in rng.next() % 2 == 0 ? 0x2e : 0x61 }  // dot-dense
                if line.first == 0x2e { line.insert(0x2e, at: 0) }
            default: break
            }
            out += line
            out += rng.next() % 8 == 0 ? [0x0a] : [0x0d, 0x0a]
        }
        return out
    }

    @Test(arguments: 0..<30)
    func scannerAgreesWithReferenceOnSparseDots(seed: Int) {
        var rng = SeededRandom(seed: UInt64(seed) &+ 0xd07)
        let content = Self.sparseContent(&rng, lines: Int(rng.next() % 600))
        let stream = Self.withEnd(content, &rng)
        let whole = seed % 3 == 0
        Self.checkScanner(stream) { whole ? stream.count : 1 + Int(rng.next() % 1500) }
    }

    @Test func scannerFindsNoEndInContentWithoutOne() {
        var rng = SeededRandom(seed: 99)
        let stream = Self.content(&rng, lines: 2_000)
        var scanner = BodyScanner()
        var ended = false
        var p = 0
        ended = scanner.scan(stream.span, from: &p)
        #expect(!ended)
        #expect(scanner.bytes == UInt64(stream.count))
    }

    @Test(arguments: 0..<20)
    func framerAgreesWithSplittingOnLF(seed: Int) {
        var rng = SeededRandom(seed: UInt64(seed) &+ 77)
        let stream = Self.content(&rng, lines: 100) + Array("tail without end".utf8)
        var expected: [[UInt8]] = []
        var start = 0
        for (i, b) in stream.enumerated() where b == 0x0a {
            var line = Array(stream[start..<i])
            if line.last == 0x0d { line.removeLast() }
            expected.append(line)
            start = i + 1
        }
        let (lines, partial) = Self.frame(stream, lending: false) { max(1, Int(rng.next() % 50)) }
        let got = lines.map(\.bytes)
        #expect(got == expected)
        #expect(partial)
    }

    /// Lines lent in place (`wholeLine`, when nothing is pending) against lines copied by
    /// `consume`: the same kept bytes and wire lengths, for lines around the 2 KiB keep limit
    /// with and without CR, in random splits.
    @Test(arguments: 0..<20)
    func wholeLinesMatchConsume(seed: Int) {
        var rng = SeededRandom(seed: UInt64(seed) &+ 991)
        var stream: [UInt8] = []
        let keep = LineFramer.keep
        let lengths = [0, 1, 2, keep - 2, keep - 1, keep, keep + 1, keep + 2, 5_000]
        for _ in 0..<60 {
            let length = rng.next() % 3 == 0 ? lengths[Int(rng.next() % UInt64(lengths.count))] : Int(rng.next() % 80)
            stream += (0..<length).map { _ in UInt8(0x41 + rng.next() % 26) }
            stream += rng.next() % 2 == 0 ? [0x0d, 0x0a] : [0x0a]
        }
        var a = rng, b = rng
        let copied = Self.frame(stream, lending: false) { max(1, Int(a.next() % 3_000)) }.lines
        let lent = Self.frame(stream, lending: true) { max(1, Int(b.next() % 3_000)) }.lines
        #expect(copied.count == 60)
        #expect(lent.map(\.bytes) == copied.map(\.bytes))
        #expect(lent.map(\.length) == copied.map(\.length))
        #expect(copied.contains { $0.bytes.count == keep && $0.length > keep })  // a line cut at the keep limit
    }

    /// Frames `stream` fed in chunks of `size()` bytes: each line's kept bytes and wire length,
    /// and whether a partial line is left. With `lending`, lines that end inside their chunk
    /// are taken in place (`wholeLine`) when nothing is pending, as the SMTP machine does.
    static func frame(_ stream: [UInt8], lending: Bool, size: () -> Int) -> (lines: [(bytes: [UInt8], length: Int)], partial: Bool) {
        var framer = LineFramer()
        var got: [(bytes: [UInt8], length: Int)] = []
        var offset = 0
        while offset < stream.count {
            let end = min(stream.count, offset + size())
            let chunk = Array(stream[offset..<end])
            do {
                let raw = chunk.span
                var p = 0
                while p < raw.count {
                    if lending, let (kept, length) = framer.wholeLine(raw, from: &p) {
                        got.append((Array(chunk[kept]), length))
                    } else if framer.consume(raw, from: &p) {
                        let length = framer.length
                        var line = framer.takeLine()
                        got.append((line, length))
                        framer.giveBack(&line)
                    }
                }
            }
            offset = end
        }
        return (got, framer.hasPartialLine)
    }
}

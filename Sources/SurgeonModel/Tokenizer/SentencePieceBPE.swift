import Foundation

/// SentencePiece-style BPE as llama.cpp runs it for `tokenizer.ggml.model = llama`:
/// spaces become "▁" (with one prepended), adjacent symbols whose concatenation is a
/// token merge highest score first, and characters with no token fall back to their
/// `<0xXX>` byte tokens.
public final class SentencePieceBPE: Tokenizer, @unchecked Sendable {
    public let vocabularySize: Int
    public let bosId: Int?
    public let eosId: Int?
    public let addsBos: Bool
    public let addSpacePrefix: Bool

    private let tokens: [String]
    private let scores: [Float]
    private let idOf: [String: Int]
    private let byteTokens: [Int]
    private let added: AddedTokenSplitter

    public init(tokens: [String], scores: [Float], addedTokens: [(content: String, id: Int)],
                bosId: Int?, eosId: Int?, addsBos: Bool, addSpacePrefix: Bool) {
        self.tokens = tokens
        self.scores = scores.count == tokens.count ? scores : [Float](repeating: 0, count: tokens.count)
        vocabularySize = tokens.count
        self.bosId = bosId
        self.eosId = eosId
        self.addsBos = addsBos
        self.addSpacePrefix = addSpacePrefix
        var idOf: [String: Int] = [:]
        for (id, t) in tokens.enumerated() where idOf[t] == nil { idOf[t] = id }
        self.idOf = idOf
        byteTokens = (0..<256).map { b in idOf[String(format: "<0x%02X>", b)] ?? -1 }
        added = AddedTokenSplitter(addedTokens)
    }

    public func encode(_ text: String) -> [Int] {
        guard !text.isEmpty else { return [] }
        let scalars = Array(text.unicodeScalars)
        var ids: [Int] = []
        var first = true
        for part in added.split(scalars) {
            switch part {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                var s = String(String.UnicodeScalarView(scalars[range]))
                // llama.cpp prefixes a space only to the text at the very start.
                if addSpacePrefix && first { s = " " + s }
                ids += encodeSegment(s.replacingOccurrences(of: " ", with: "▁"))
            }
            first = false
        }
        return ids
    }

    private struct Symbol { var start: Int; var count: Int; var prev: Int; var next: Int }

    private struct Bigram: Comparable {
        let left: Int, right: Int, score: Float, size: Int
        static func < (a: Bigram, b: Bigram) -> Bool {
            a.score != b.score ? a.score > b.score : a.left < b.left
        }
    }

    /// Symbols start as single code points (not grapheme clusters), as in llama.cpp.
    private func encodeSegment(_ text: String) -> [Int] {
        let chars = text.unicodeScalars.map { String($0) }
        guard !chars.isEmpty else { return [] }
        var symbols = chars.indices.map { Symbol(start: $0, count: 1, prev: $0 - 1, next: $0 + 1 < chars.count ? $0 + 1 : -1) }
        func textOf(_ s: Symbol) -> String { chars[s.start..<(s.start + s.count)].joined() }
        var queue = BinaryHeap<Bigram>()
        func tryAdd(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let t = textOf(symbols[left]) + textOf(symbols[right])
            guard let id = idOf[t] else { return }
            queue.push(Bigram(left: left, right: right, score: scores[id], size: symbols[left].count + symbols[right].count))
        }
        for i in 1..<chars.count { tryAdd(i - 1, i) }
        while let best = queue.pop() {
            var l = symbols[best.left], r = symbols[best.right]
            // Stale entries: one side was merged away since this pair was queued.
            guard l.count > 0, r.count > 0, l.count + r.count == best.size else { continue }
            l.count += r.count
            r.count = 0
            l.next = r.next
            if r.next >= 0 { symbols[r.next].prev = best.left }
            symbols[best.left] = l
            symbols[best.right] = r
            tryAdd(l.prev, best.left)
            tryAdd(best.left, l.next)
        }
        // Every merged symbol is a token; a single character that is not one falls back
        // to its UTF-8 bytes.
        var out: [Int] = []
        var i = 0
        while i >= 0 && i < symbols.count {
            let t = textOf(symbols[i])
            if let id = idOf[t] {
                out.append(id)
            } else {
                for b in t.utf8 where byteTokens[Int(b)] >= 0 { out.append(byteTokens[Int(b)]) }
            }
            i = symbols[i].next
        }
        return out
    }

    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count {
            let t = tokens[id]
            if t.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">"), let b = UInt8(t.dropFirst(3).dropLast(), radix: 16) {
                bytes.append(b)
            } else {
                bytes += Array(t.replacingOccurrences(of: "▁", with: " ").utf8)
            }
        }
        var s = String(decoding: bytes, as: UTF8.self)
        if addSpacePrefix && s.hasPrefix(" ") { s.removeFirst() }
        return s
    }

    public func token(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }
}

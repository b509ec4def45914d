import Foundation

/// GPT-2 style byte-level BPE: pre-split the text, map each piece's UTF-8 bytes to
/// printable characters, then apply merges in rank order.
///
/// Merges work on token ids: every one of the 256 byte characters is a token, and each
/// merge "a b" maps the id pair (a, b) to (rank, id of "ab").
public final class ByteLevelBPE: Tokenizer, @unchecked Sendable {
    public let vocabularySize: Int
    public let bosId: Int?
    public let eosId: Int?
    public let addsBos: Bool
    public let preTokenizer: PreTokenizerKind

    private let tokens: [String]
    /// Byte value → id of its byte-level character; -1 when the vocabulary has none (some
    /// vocabularies drop control bytes, and `tokenizers` then skips them without an unk token).
    private let byteToken: [Int]
    private let tokenBytes: [[UInt8]]     // id → the bytes it stands for
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    private let added: AddedTokenSplitter
    private let cacheLock = NSLock()
    private var cache: [String: [Int]] = [:]

    public struct InvalidVocabulary: Error, CustomStringConvertible {
        public let description: String
    }

    public init(tokens: [String], merges: [String], addedTokens: [(content: String, id: Int)],
                preTokenizer: PreTokenizerKind, bosId: Int?, eosId: Int?, addsBos: Bool) throws {
        self.tokens = tokens
        vocabularySize = tokens.count
        self.preTokenizer = preTokenizer
        self.bosId = bosId
        self.eosId = eosId
        self.addsBos = addsBos
        var idOf: [String: Int] = [:]
        idOf.reserveCapacity(tokens.count)
        for (id, t) in tokens.enumerated() where idOf[t] == nil { idOf[t] = id }
        let charOf = ByteLevelBPE.byteCharacters
        let byteToken = (0..<256).map { idOf[String(charOf[$0])] ?? -1 }
        guard byteToken.filter({ $0 >= 0 }).count >= 128 else {
            throw InvalidVocabulary(description: "not a byte-level vocabulary (most byte characters are missing)")
        }
        self.byteToken = byteToken
        var byteOf: [Character: UInt8] = [:]
        for b in 0..<256 { byteOf[charOf[b]] = UInt8(b) }
        tokenBytes = tokens.map { t in t.compactMap { byteOf[$0] } }
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            guard let space = merge.firstIndex(of: " ") else { continue }
            let a = String(merge[..<space]), b = String(merge[merge.index(after: space)...])
            guard let ia = idOf[a], let ib = idOf[b], let iab = idOf[a + b] else { continue }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if table[key] == nil { table[key] = (Int32(rank), Int32(iab)) }
        }
        self.merges = table
        added = AddedTokenSplitter(addedTokens)
    }

    /// GPT-2's printable stand-ins for bytes: printable Latin-1 bytes map to themselves,
    /// the rest to U+0100 onwards in byte order.
    static let byteCharacters: [Character] = {
        var printable = Set<Int>(33...126)
        printable.formUnion(161...172)
        printable.formUnion(174...255)
        var out = [Character](repeating: " ", count: 256)
        var next = 256
        for b in 0..<256 {
            if printable.contains(b) {
                out[b] = Character(Unicode.Scalar(UInt32(b))!)
            } else {
                out[b] = Character(Unicode.Scalar(UInt32(next))!)
                next += 1
            }
        }
        return out
    }()

    public func encode(_ text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var ids: [Int] = []
        ids.reserveCapacity(scalars.count / 3)
        var pieces: [Range<Int>] = []
        for part in added.split(scalars) {
            switch part {
            case .token(let id): ids.append(id)
            case .text(let range):
                pieces.removeAll(keepingCapacity: true)
                PreTokenizerSplit.split(preTokenizer, scalars, range, into: &pieces)
                for piece in pieces { ids += encodePiece(scalars[piece]) }
            }
        }
        return ids
    }

    private func encodePiece(_ piece: ArraySlice<Unicode.Scalar>) -> [Int] {
        var key = String.UnicodeScalarView()
        key.append(contentsOf: piece)
        let word = String(key)
        cacheLock.lock()
        if let hit = cache[word] { cacheLock.unlock(); return hit }
        cacheLock.unlock()
        var symbols = word.utf8.compactMap { b in byteToken[Int(b)] >= 0 ? byteToken[Int(b)] : nil }
        applyMerges(&symbols)
        cacheLock.lock()
        if cache.count < 200_000 { cache[word] = symbols }
        cacheLock.unlock()
        return symbols
    }

    /// Repeatedly merges the adjacent pair of lowest rank (leftmost on ties).
    private func applyMerges(_ symbols: inout [Int]) {
        while symbols.count > 1 {
            var best: (rank: Int32, index: Int, id: Int32)? = nil
            for i in 0..<(symbols.count - 1) {
                if let m = merges[UInt64(symbols[i]) << 32 | UInt64(symbols[i + 1])], m.rank < (best?.rank ?? .max) {
                    best = (m.rank, i, m.id)
                }
            }
            guard let b = best else { return }
            // Merge every occurrence of this pair, left to right, as BPE does.
            let left = symbols[b.index], right = symbols[b.index + 1]
            var merged: [Int] = []
            merged.reserveCapacity(symbols.count)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count && symbols[i] == left && symbols[i + 1] == right {
                    merged.append(Int(b.id))
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
    }

    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count {
            let b = tokenBytes[id]
            if b.count == tokens[id].count { bytes += b } else { bytes += Array(tokens[id].utf8) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func token(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }
}

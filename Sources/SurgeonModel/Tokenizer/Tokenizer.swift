/// Text ↔ token ids.
public protocol Tokenizer: Sendable {
    var vocabularySize: Int { get }
    var bosId: Int? { get }
    var eosId: Int? { get }
    /// Whether a BOS token starts every encoded text (tokenizer_config `add_bos_token`).
    var addsBos: Bool { get }

    /// Ids of `text`, without BOS/EOS.
    func encode(_ text: String) -> [Int]
    func decode(_ ids: [Int]) -> String
    func token(_ id: Int) -> String?
}

extension Tokenizer {
    /// Ids with the BOS token prepended when the tokenizer's config asks for one.
    public func encodeWithSpecials(_ text: String) -> [Int] {
        let ids = encode(text)
        if addsBos, let bos = bosId { return [bos] + ids }
        return ids
    }
}

/// Splits text around added tokens (`<|im_start|>`, …) before normal tokenization, as
/// `tokenizers` does: each occurrence becomes its own id, longest match first.
struct AddedTokenSplitter: Sendable {
    private let byFirstScalar: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]]

    init(_ tokens: [(content: String, id: Int)]) {
        var map: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]] = [:]
        for (content, id) in tokens where !content.isEmpty {
            let scalars = Array(content.unicodeScalars)
            map[scalars[0], default: []].append((scalars, id))
        }
        for key in map.keys { map[key]!.sort { $0.scalars.count > $1.scalars.count } }
        byFirstScalar = map
    }

    enum Piece { case text(Range<Int>), token(Int) }

    /// Pieces of `scalars`: plain-text ranges and added-token ids, in order.
    func split(_ scalars: [Unicode.Scalar]) -> [Piece] {
        guard !byFirstScalar.isEmpty else { return [.text(0..<scalars.count)] }
        var pieces: [Piece] = []
        var start = 0, i = 0
        outer: while i < scalars.count {
            if let candidates = byFirstScalar[scalars[i]] {
                for (token, id) in candidates where i + token.count <= scalars.count
                    && scalars[i..<(i + token.count)].elementsEqual(token) {
                    if start < i { pieces.append(.text(start..<i)) }
                    pieces.append(.token(id))
                    i += token.count
                    start = i
                    continue outer
                }
            }
            i += 1
        }
        if start < scalars.count { pieces.append(.text(start..<scalars.count)) }
        return pieces
    }
}

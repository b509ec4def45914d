import Foundation
import SurgeonFormats
import SurgeonModel

/// The token windows distillation trains on: the training text cut into consecutive,
/// non-overlapping windows of `seqlen` tokens, visited in a seeded random order. A run
/// that needs more windows than the text holds repeats them only when `epochs` allows it
/// (each epoch in its own order), so `--tokens` never silently reuses text.
public struct DistillationData: Sendable {
    /// The distinct windows (the teacher runs once over each).
    public let windows: [[Int]]
    /// The order of training: indices into `windows`, one per micro-batch.
    public let order: [Int]
    public let corpus: String
    public let corpusXXH3: String
    public let corpusTokens: Int
    public let seed: UInt64

    public var seqlen: Int { windows.first?.count ?? 0 }
    /// Training tokens of one pass over `order`.
    public var tokens: Int { order.count * seqlen }

    public struct NotEnoughText: Error, CustomStringConvertible {
        public let description: String
    }

    public init(texts: [(name: String, text: String)], tokenizer: Tokenizer, tokens: Int, seqlen: Int,
                epochs: Int = 1, seed: UInt64) throws {
        precondition(seqlen >= 2 && tokens >= 1 && epochs >= 1)
        var all: [[Int]] = [], corpusTokens = 0
        for source in texts {
            let ids = tokenizer.encode(source.text)
            corpusTokens += ids.count
            all += stride(from: 0, to: ids.count - seqlen + 1, by: seqlen).map { Array(ids[$0..<($0 + seqlen)]) }
        }
        let needed = (tokens + seqlen - 1) / seqlen
        guard needed <= all.count * epochs else {
            let name = texts.map(\.name).joined(separator: " + ")
            throw NotEnoughText(description: "\(name): \(all.count) windows of \(seqlen) tokens (\(all.count * seqlen) tokens), "
                + "fewer than the \(needed) windows --tokens \(tokens) needs"
                + (epochs > 1 ? " in \(epochs) epochs" : "; give more text, fewer tokens, or --epochs to repeat it"))
        }
        var rng = SplitMix64(seed: seed)
        var permutation = Array(all.indices)
        permutation.shuffle(using: &rng)
        let distinct = Array(permutation.prefix(min(needed, all.count)))
        windows = distinct.map { all[$0] }
        // Epoch e visits the distinct windows in its own order.
        var order: [Int] = []
        while order.count < needed {
            var epoch = Array(windows.indices)
            if !order.isEmpty { epoch.shuffle(using: &rng) }
            order += epoch.prefix(needed - order.count)
        }
        self.order = order
        corpus = texts.map(\.name).joined(separator: " + ")
        let joined = texts.map(\.text).joined(separator: "\u{0}")
        corpusXXH3 = Array(joined.utf8).withUnsafeBytes { XXH3Hasher.hex(XXH3Hasher.hash($0)) }
        self.corpusTokens = corpusTokens
        self.seed = seed
    }
}

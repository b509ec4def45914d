import Foundation
import SurgeonCompute
import SurgeonModel

/// A model held resident as f32 for scoring: the layers of `Transformer`, plus the output
/// head decoded once (LanguageModelHead decodes its slices on every call, which would
/// dominate per-item scoring of a small model).
///
/// The forward pass (the one `DecoderLayer.forward`) runs several sequences at once on top
/// of an optional shared prefix whose keys and values were kept from an earlier run: that
/// is the prefix KV reuse.
public final class EvalModel {
    public let transformer: Transformer
    let shape: LayerShape
    let headWeights: [Float]
    public var vocabulary: Int { transformer.head.vocabulary }
    /// lm-eval's max_length: contexts are cut on the left to fit.
    public let maxLength: Int

    public init(checkpoint: Checkpoint) throws {
        transformer = try Transformer(checkpoint: checkpoint)
        shape = transformer.shape
        headWeights = transformer.head.output.decodeF32()
        transformer.head.output.release()
        maxLength = checkpoint.config.maxPositionEmbeddings > 0 ? checkpoint.config.maxPositionEmbeddings : 2048
    }

    /// Keys and values (after RoPE) of every layer for `length` positions, and the last
    /// position's final hidden state (its logits predict the first token after the prefix).
    public struct Prefix {
        public let length: Int
        let cache: KVCache
        var lastHidden: [Float]
    }

    /// Runs `tokens` from position 0 and keeps its KV cache.
    public func prefix(_ tokens: [Int]) -> Prefix {
        let cache = transformer.makeCache()
        let hidden = transformer.hiddenStates([tokens], past: cache, commit: true)
        return Prefix(length: tokens.count, cache: cache, lastHidden: Array(hidden[((tokens.count - 1) * shape.hidden)...]))
    }

    /// Final hidden states (before the final norm), rows of all `segments` concatenated;
    /// segment s has positions prefix.length ..< prefix.length + segments[s].count and
    /// attends to the prefix and to its own earlier tokens only.
    public func run(_ segments: [[Int]], after prefix: Prefix?) -> [Float] {
        transformer.hiddenStates(segments.filter { !$0.isEmpty }, past: prefix?.cache)
    }

    /// log p(target) and whether target is the argmax, for each row of final hidden states.
    public func logProbabilities(_ hidden: [Float], targets: [Int]) -> [(logProb: Double, greedy: Bool)] {
        let rows = targets.count
        guard rows > 0 else { return [] }
        let h = shape.hidden, vocab = vocabulary
        var normed = [Float](repeating: 0, count: rows * h)
        hidden.withUnsafeBufferPointer { x in normed.withUnsafeMutableBufferPointer {
            transformer.head.normalize(x.baseAddress!, into: $0.baseAddress!, rows: rows)
        } }
        var logits = [Float](repeating: 0, count: rows * vocab)
        normed.withUnsafeBufferPointer { np in headWeights.withUnsafeBufferPointer { wp in logits.withUnsafeMutableBufferPointer {
            BLAS.matmulTransposed(np.baseAddress!, wp.baseAddress!, $0.baseAddress!, m: rows, n: vocab, k: h)
            transformer.head.capLogits($0.baseAddress!, count: rows * vocab)
        } } }
        return logits.withUnsafeBufferPointer { lp in
            (0..<rows).map { r in
                let row = lp.baseAddress! + r * vocab
                var best = 0
                for j in 1..<vocab where row[j] > row[best] { best = j }
                let lse = Kernels.logSumExp(row, n: vocab)
                return (Double(row[targets[r]]) - lse, best == targets[r])
            }
        }
    }
}

import Foundation
import SurgeonCompute
import SurgeonModel

/// A model held resident as f32 for scoring: the layers of `Transformer`, plus the output
/// head decoded once (LanguageModelHead decodes its slices on every call, which would
/// dominate per-item scoring of a small model).
///
/// The forward pass runs several sequences at once on top of an optional shared prefix
/// whose keys and values were kept from an earlier run: that is the prefix KV reuse. Every
/// product goes through the same OpenBLAS sgemm as `ppl`.
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
        var keys: [[Float]], values: [[Float]]
        var lastHidden: [Float]
    }

    /// Runs `tokens` from position 0 and keeps its KV cache.
    public func prefix(_ tokens: [Int]) -> Prefix {
        var kept = (keys: [[Float]](), values: [[Float]]())
        let hidden = forward([tokens], after: nil, keep: &kept)
        return Prefix(length: tokens.count, keys: kept.keys, values: kept.values,
                      lastHidden: Array(hidden[((tokens.count - 1) * shape.hidden)...]))
    }

    /// Final hidden states (before the final norm), rows of all `segments` concatenated;
    /// segment s has positions prefix.length ..< prefix.length + segments[s].count and
    /// attends to the prefix and to its own earlier tokens only.
    public func run(_ segments: [[Int]], after prefix: Prefix?) -> [Float] {
        var unused = (keys: [[Float]](), values: [[Float]]())
        return forward(segments, after: prefix, keep: &unused)
    }

    private func forward(_ segments: [[Int]], after prefix: Prefix?, keep: inout (keys: [[Float]], values: [[Float]])) -> [Float] {
        let s = shape
        let p = prefix?.length ?? 0
        let tokens = segments.flatMap { $0 }
        let rows = tokens.count
        let longest = segments.map(\.count).max() ?? 0
        guard rows > 0 else { return [] }
        let positions = segments.flatMap { seg in (0..<seg.count).map { p + $0 } }
        let tables = transformer.rope.tables(count: p + longest)
        var x = [Float](repeating: 0, count: rows * s.hidden)
        var n = x, projected = x
        var q = [Float](repeating: 0, count: rows * s.qWidth), attention = q
        var k = [Float](repeating: 0, count: rows * s.kvWidth), v = k
        var gate = [Float](repeating: 0, count: rows * s.intermediate), up = gate
        var keysAll = [Float](repeating: 0, count: (p + longest) * s.kvWidth), valuesAll = keysAll
        var scores = [Float](repeating: 0, count: longest * (p + longest))
        x.withUnsafeMutableBufferPointer { transformer.head.embed(tokens[...], into: $0.baseAddress!) }
        let scale = 1 / Float(s.headDim).squareRoot()

        for (l, w) in transformer.layers.enumerated() {
            w.inputNorm.withUnsafeBufferPointer { Kernels.rmsNorm(x, $0.baseAddress!, &n, rows: rows, n: s.hidden, eps: s.eps) }
            Self.project(n, w.q, w.qBias, &q, rows: rows, out: s.qWidth, in: s.hidden)
            Self.project(n, w.k, w.kBias, &k, rows: rows, out: s.kvWidth, in: s.hidden)
            Self.project(n, w.v, w.vBias, &v, rows: rows, out: s.kvWidth, in: s.hidden)
            if let qNorm = w.qNorm, let kNorm = w.kNorm {
                // Qwen3: RMSNorm over each head before RoPE.
                q.withUnsafeMutableBufferPointer { qp in qNorm.withUnsafeBufferPointer {
                    Kernels.rmsNorm(qp.baseAddress!, $0.baseAddress!, qp.baseAddress!, rows: rows * s.heads, n: s.headDim, eps: s.eps) } }
                k.withUnsafeMutableBufferPointer { kp in kNorm.withUnsafeBufferPointer {
                    Kernels.rmsNorm(kp.baseAddress!, $0.baseAddress!, kp.baseAddress!, rows: rows * s.kvHeads, n: s.headDim, eps: s.eps) } }
            }
            tables.cos.withUnsafeBufferPointer { c in tables.sin.withUnsafeBufferPointer { sn in
                q.withUnsafeMutableBufferPointer {
                    transformer.rope.apply($0.baseAddress!, rows: rows, heads: s.heads, rowStride: s.qWidth,
                                           cos: c.baseAddress!, sin: sn.baseAddress!) { positions[$0] } }
                k.withUnsafeMutableBufferPointer {
                    transformer.rope.apply($0.baseAddress!, rows: rows, heads: s.kvHeads, rowStride: s.kvWidth,
                                           cos: c.baseAddress!, sin: sn.baseAddress!) { positions[$0] } }
            } }
            if segments.count == 1 && prefix == nil {
                keep.keys.append(k)
                keep.values.append(v)
            }
            // Attention, one segment at a time, over [prefix keys | the segment's own keys].
            if let prefix {
                keysAll.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: prefix.keys[l], count: p * s.kvWidth) }
                valuesAll.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: prefix.values[l], count: p * s.kvWidth) }
            }
            var first = 0
            for seg in segments {
                let t = seg.count, total = p + t
                guard t > 0 else { continue }
                keysAll.withUnsafeMutableBufferPointer { ka in valuesAll.withUnsafeMutableBufferPointer { va in
                    k.withUnsafeBufferPointer { (ka.baseAddress! + p * s.kvWidth).update(from: $0.baseAddress! + first * s.kvWidth, count: t * s.kvWidth) }
                    v.withUnsafeBufferPointer { (va.baseAddress! + p * s.kvWidth).update(from: $0.baseAddress! + first * s.kvWidth, count: t * s.kvWidth) }
                    q.withUnsafeBufferPointer { qp in attention.withUnsafeMutableBufferPointer { ap in scores.withUnsafeMutableBufferPointer { sc in
                        for h in 0..<s.heads {
                            let kv = h / s.groupSize
                            BLAS.matmulTransposed(qp.baseAddress! + first * s.qWidth + h * s.headDim, ka.baseAddress! + kv * s.headDim,
                                                  sc.baseAddress!, m: t, n: total, k: s.headDim,
                                                  lda: s.qWidth, ldb: s.kvWidth, ldc: total, alpha: scale)
                            for i in 0..<t { Kernels.softmaxPrefix(sc.baseAddress! + i * total, length: p + i + 1, width: total) }
                            BLAS.matmul(sc.baseAddress!, va.baseAddress! + kv * s.headDim,
                                        ap.baseAddress! + first * s.qWidth + h * s.headDim, m: t, n: s.headDim, k: total,
                                        lda: total, ldb: s.kvWidth, ldc: s.qWidth)
                        }
                    } } }
                } }
                first += t
            }
            Self.project(attention, w.o, w.oBias, &projected, rows: rows, out: s.hidden, in: s.qWidth)
            for i in 0..<(rows * s.hidden) { x[i] += projected[i] }
            w.postAttentionNorm.withUnsafeBufferPointer { Kernels.rmsNorm(x, $0.baseAddress!, &n, rows: rows, n: s.hidden, eps: s.eps) }
            Self.project(n, w.gate, w.gateBias, &gate, rows: rows, out: s.intermediate, in: s.hidden)
            Self.project(n, w.up, w.upBias, &up, rows: rows, out: s.intermediate, in: s.hidden)
            Kernels.siluMul(&gate, up, count: rows * s.intermediate)
            Self.project(gate, w.down, w.downBias, &projected, rows: rows, out: s.hidden, in: s.intermediate)
            for i in 0..<(rows * s.hidden) { x[i] += projected[i] }
        }
        return x
    }

    /// out[rows × out] = x[rows × in] · Wᵀ (+ bias).
    static func project(_ x: [Float], _ w: [Float], _ bias: [Float]?, _ out: inout [Float], rows: Int, out n: Int, in k: Int) {
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { op in
            BLAS.matmulTransposed(xp.baseAddress!, wp.baseAddress!, op.baseAddress!, m: rows, n: n, k: k)
            if let bias { bias.withUnsafeBufferPointer { Kernels.addBias(op.baseAddress!, $0.baseAddress!, rows: rows, n: n) } }
        } } }
    }

    /// log p(target) and whether target is the argmax, for each row of final hidden states.
    public func logProbabilities(_ hidden: [Float], targets: [Int]) -> [(logProb: Double, greedy: Bool)] {
        let rows = targets.count
        guard rows > 0 else { return [] }
        let h = shape.hidden, vocab = vocabulary
        var normed = [Float](repeating: 0, count: rows * h)
        transformer.head.finalNorm.withUnsafeBufferPointer {
            Kernels.rmsNorm(hidden, $0.baseAddress!, &normed, rows: rows, n: h, eps: shape.eps)
        }
        var logits = [Float](repeating: 0, count: rows * vocab)
        normed.withUnsafeBufferPointer { np in headWeights.withUnsafeBufferPointer { wp in logits.withUnsafeMutableBufferPointer {
            BLAS.matmulTransposed(np.baseAddress!, wp.baseAddress!, $0.baseAddress!, m: rows, n: vocab, k: h)
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

import SurgeonModel

/// The shapes a decoder layer's forward pass needs, from the config.
public struct LayerShape: Sendable {
    public let hidden: Int, heads: Int, kvHeads: Int, headDim: Int, intermediate: Int
    public let eps: Float

    public init(_ c: ModelConfig) {
        hidden = c.hiddenSize
        heads = c.numAttentionHeads
        kvHeads = c.numKeyValueHeads
        headDim = c.headDim
        intermediate = c.intermediateSize
        eps = Float(c.rmsNormEps)
    }

    public var qWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }
    public var groupSize: Int { heads / kvHeads }
}

/// A growable f32 buffer owned by a workspace.
final class ScratchBuffer {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init() {
        pointer = .allocate(capacity: 1)
        capacity = 1
    }

    deinit { pointer.deallocate() }

    /// Ensures room for `count` floats (contents are not kept when it grows).
    func reserve(_ count: Int) {
        guard count > capacity else { return }
        pointer.deallocate()
        pointer = .allocate(capacity: count)
        capacity = count
    }
}

/// Scratch buffers for one chunk of tokens, reused across layers (llama2.c's RunState).
public final class LayerWorkspace {
    let normed = ScratchBuffer(), q = ScratchBuffer(), k = ScratchBuffer(), v = ScratchBuffer()
    let attention = ScratchBuffer(), gate = ScratchBuffer(), up = ScratchBuffer()
    let scores = ScratchBuffer(), input = ScratchBuffer(), residual = ScratchBuffer()

    public init() {}

    func reserve(rows: Int, shape: LayerShape, sequenceLength: Int) {
        for (buffer, width) in [(normed, shape.hidden), (q, shape.qWidth), (k, shape.kvWidth), (v, shape.kvWidth),
                                (attention, shape.qWidth), (gate, shape.intermediate),
                                (up, shape.intermediate), (input, shape.hidden), (residual, shape.hidden)] {
            buffer.reserve(rows * width)
        }
        scores.reserve(sequenceLength * sequenceLength)
    }
}

/// One pre-norm decoder layer (LLaMA/Mistral/Qwen2/Qwen3), run in place on `x`: a chunk
/// of `sequences` sequences of `length` tokens each, rows of `hidden` floats, positions
/// 0..<length within each sequence.
///
///     h = x + o_proj(attention(rope(q(norm(x))), rope(k(norm(x))), v(norm(x))))
///     x = h + down(silu(gate(norm(h))) · up(norm(h)))
public enum DecoderLayer {
    public static func forward(_ w: DecoderLayerWeights, shape s: LayerShape, rope: RotaryEmbedding,
                               ropeTables: (cos: [Float], sin: [Float]),
                               x: UnsafeMutablePointer<Float>, sequences: Int, length: Int,
                               workspace ws: LayerWorkspace, observe: ((LayerActivations) -> Void)? = nil,
                               firstSequence: Int = 0) {
        let rows = sequences * length
        ws.reserve(rows: rows, shape: s, sequenceLength: length)
        let n = ws.normed.pointer, q = ws.q.pointer, k = ws.k.pointer, v = ws.v.pointer
        let attention = ws.attention.pointer
        let gate = ws.gate.pointer, up = ws.up.pointer
        if observe != nil { ws.input.pointer.update(from: x, count: rows * s.hidden) }

        // Attention block.
        w.inputNorm.withUnsafeBufferPointer { Kernels.rmsNorm(x, $0.baseAddress!, n, rows: rows, n: s.hidden, eps: s.eps) }
        project(n, w.q, w.qBias, q, rows: rows, out: s.qWidth, in: s.hidden)
        project(n, w.k, w.kBias, k, rows: rows, out: s.kvWidth, in: s.hidden)
        project(n, w.v, w.vBias, v, rows: rows, out: s.kvWidth, in: s.hidden)
        if let qNorm = w.qNorm, let kNorm = w.kNorm {
            // Qwen3: RMSNorm over each head's head_dim values, before RoPE.
            qNorm.withUnsafeBufferPointer { Kernels.rmsNorm(q, $0.baseAddress!, q, rows: rows * s.heads, n: s.headDim, eps: s.eps) }
            kNorm.withUnsafeBufferPointer { Kernels.rmsNorm(k, $0.baseAddress!, k, rows: rows * s.kvHeads, n: s.headDim, eps: s.eps) }
        }
        ropeTables.cos.withUnsafeBufferPointer { c in
            ropeTables.sin.withUnsafeBufferPointer { sn in
                rope.apply(q, rows: rows, heads: s.heads, rowStride: s.qWidth, cos: c.baseAddress!, sin: sn.baseAddress!) { $0 % length }
                rope.apply(k, rows: rows, heads: s.kvHeads, rowStride: s.kvWidth, cos: c.baseAddress!, sin: sn.baseAddress!) { $0 % length }
            }
        }
        for seq in 0..<sequences {
            let base = seq * length
            causalAttention(q: q + base * s.qWidth, k: k + base * s.kvWidth, v: v + base * s.kvWidth,
                            out: attention + base * s.qWidth, length: length, shape: s, scores: ws.scores.pointer)
        }
        projectAdding(attention, w.o, w.oBias, into: x, rows: rows, out: s.hidden, in: s.qWidth)
        if observe != nil { ws.residual.pointer.update(from: x, count: rows * s.hidden) }

        // MLP block.
        w.postAttentionNorm.withUnsafeBufferPointer { Kernels.rmsNorm(x, $0.baseAddress!, n, rows: rows, n: s.hidden, eps: s.eps) }
        project(n, w.gate, w.gateBias, gate, rows: rows, out: s.intermediate, in: s.hidden)
        project(n, w.up, w.upBias, up, rows: rows, out: s.intermediate, in: s.hidden)
        Kernels.siluMul(gate, up, count: rows * s.intermediate)
        projectAdding(gate, w.down, w.downBias, into: x, rows: rows, out: s.hidden, in: s.intermediate)

        observe?(LayerActivations(
            firstSequence: firstSequence, sequenceLength: length, rows: rows,
            input: UnsafeBufferPointer(start: ws.input.pointer, count: rows * s.hidden),
            attentionOutput: UnsafeBufferPointer(start: attention, count: rows * s.qWidth),
            postAttention: UnsafeBufferPointer(start: ws.residual.pointer, count: rows * s.hidden),
            mlpIntermediate: UnsafeBufferPointer(start: gate, count: rows * s.intermediate),
            output: UnsafeBufferPointer(start: x, count: rows * s.hidden)))
    }

    /// out[rows × out] = x[rows × in] · Wᵀ (+ bias).
    static func project(_ x: UnsafePointer<Float>, _ w: [Float], _ bias: [Float]?, _ out: UnsafeMutablePointer<Float>,
                        rows: Int, out n: Int, in k: Int) {
        w.withUnsafeBufferPointer { BLAS.matmulTransposed(x, $0.baseAddress!, out, m: rows, n: n, k: k) }
        if let bias { bias.withUnsafeBufferPointer { Kernels.addBias(out, $0.baseAddress!, rows: rows, n: n) } }
    }

    /// residual[rows × out] += x[rows × in] · Wᵀ (+ bias): the residual add rides on the
    /// sgemm (beta = 1) instead of a separate buffer and pass.
    static func projectAdding(_ x: UnsafePointer<Float>, _ w: [Float], _ bias: [Float]?,
                              into residual: UnsafeMutablePointer<Float>, rows: Int, out n: Int, in k: Int) {
        w.withUnsafeBufferPointer { BLAS.matmulTransposed(x, $0.baseAddress!, residual, m: rows, n: n, k: k, beta: 1) }
        if let bias { bias.withUnsafeBufferPointer { Kernels.addBias(residual, $0.baseAddress!, rows: rows, n: n) } }
    }

    /// Query rows per block of causal attention: a block only scores the keys up to its
    /// last row, which skips most of the masked upper triangle.
    public static let causalBlock = 128

    /// Causal GQA attention for one sequence: query head h reads KV head h / G.
    static func causalAttention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                out: UnsafeMutablePointer<Float>, length t: Int, shape s: LayerShape,
                                scores: UnsafeMutablePointer<Float>) {
        let scale = 1 / Float(s.headDim).squareRoot()
        for h in 0..<s.heads {
            let kv = h / s.groupSize
            for first in stride(from: 0, to: t, by: causalBlock) {
                let rows = min(causalBlock, t - first), keys = first + rows
                // scores[rows × keys] = q_h · k_kvᵀ · scale, rows strided through the q/k buffers.
                BLAS.matmulTransposed(q + first * s.qWidth + h * s.headDim, k + kv * s.headDim, scores,
                                      m: rows, n: keys, k: s.headDim, lda: s.qWidth, ldb: s.kvWidth, ldc: keys, alpha: scale)
                Kernels.parallelChunks(rows, minimum: 32) { chunk in
                    for i in chunk { Kernels.softmaxPrefix(scores + i * keys, length: first + i + 1, width: keys) }
                }
                BLAS.matmul(scores, v + kv * s.headDim, out + first * s.qWidth + h * s.headDim, m: rows, n: s.headDim,
                            k: keys, lda: keys, ldb: s.kvWidth, ldc: s.qWidth)
            }
        }
    }
}

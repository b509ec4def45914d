import CVectorMath
import SurgeonModel

/// The shapes a decoder layer's forward pass needs, from the config.
public struct LayerShape: Sendable {
    public let hidden: Int, heads: Int, kvHeads: Int, headDim: Int, intermediate: Int
    public let eps: Float
    /// Family facts the forward applies (FamilyTraits), resolved against the config.
    public let normOffset: Float
    public let activation: FamilyTraits.Activation
    public let attentionScale: Float
    public let attentionSoftcap: Float?
    public let slidingWindow: Int?
    private let slidingLayers: [Bool]

    public init(_ c: ModelConfig) {
        hidden = c.hiddenSize
        heads = c.numAttentionHeads
        kvHeads = c.numKeyValueHeads
        headDim = c.headDim
        intermediate = c.intermediateSize
        eps = Float(c.rmsNormEps)
        let traits = c.family?.traits ?? .llama
        normOffset = traits.normWeightOffset
        activation = traits.activation
        attentionScale = 1 / Float(c.queryPreAttnScalar ?? Double(c.headDim)).squareRoot()
        attentionSoftcap = c.attnLogitSoftcapping.map { Float($0) }
        slidingWindow = c.slidingWindow
        slidingLayers = (0..<c.numHiddenLayers).map { c.isSlidingLayer($0) }
    }

    /// The window layer `layer` attends within, or nil for full causal attention.
    public func window(layer: Int) -> Int? {
        layer < slidingLayers.count && slidingLayers[layer] ? slidingWindow : nil
    }

    public var qWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }
    public var groupSize: Int { heads / kvHeads }
}

/// A growable f32 buffer owned by a workspace or a KV cache.
final class ScratchBuffer {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init() {
        pointer = .allocate(capacity: 1)
        capacity = 1
    }

    deinit { pointer.deallocate() }

    /// Ensures room for `count` floats; the first `keeping` floats survive a move.
    func reserve(_ count: Int, keeping: Int = 0) {
        guard count > capacity else { return }
        let grown = UnsafeMutablePointer<Float>.allocate(capacity: count)
        if keeping > 0 { grown.update(from: pointer, count: min(keeping, capacity)) }
        pointer.deallocate()
        pointer = grown
        capacity = count
    }
}

/// Scratch buffers for one chunk of tokens, reused across layers (llama2.c's RunState).
public final class LayerWorkspace {
    let normed = ScratchBuffer(), q = ScratchBuffer(), k = ScratchBuffer(), v = ScratchBuffer()
    let attention = ScratchBuffer(), gate = ScratchBuffer(), up = ScratchBuffer()
    let scores = ScratchBuffer(), input = ScratchBuffer(), residual = ScratchBuffer()
    let keyPanels = ScratchBuffer()

    public init() {}

    func reserve(rows: Int, shape: LayerShape, scoreCount: Int) {
        for (buffer, width) in [(normed, shape.hidden), (q, shape.qWidth), (k, shape.kvWidth), (v, shape.kvWidth),
                                (attention, shape.qWidth), (gate, shape.intermediate),
                                (up, shape.intermediate), (input, shape.hidden), (residual, shape.hidden)] {
            buffer.reserve(rows * width)
        }
        scores.reserve(scoreCount)
    }
}

/// Keys and values (after RoPE) of every layer for the positions seen so far: generation
/// appends one position per step, eval keeps a shared prefix and runs its continuations
/// after it.
public final class KVCache {
    /// Positions committed; a forward writes its own keys and values after them.
    public var count: Int { tokens.count }
    /// The tokens at those positions (to rebuild the cache: see `Transformer.hiddenStates`).
    public private(set) var tokens: [Int] = []
    let width: Int
    private let keys: [ScratchBuffer], values: [ScratchBuffer]

    public init(layers: Int, width: Int) {
        self.width = width
        keys = (0..<layers).map { _ in ScratchBuffer() }
        values = (0..<layers).map { _ in ScratchBuffer() }
    }

    /// Layer `layer`'s keys and values, with room for `extra` positions after `count`.
    func rows(layer: Int, extra: Int) -> (keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        keys[layer].reserve((count + extra) * width * 2, keeping: count * width)
        values[layer].reserve((count + extra) * width * 2, keeping: count * width)
        return (keys[layer].pointer, values[layer].pointer)
    }

    /// Makes the positions of `tokens`, which the last forward wrote, part of the cache.
    public func commit(_ tokens: [Int]) { self.tokens += tokens }

    /// Forgets every position.
    public func reset() { tokens = [] }
}

/// One pre-norm decoder layer, run in place on `x`: rows of `hidden` floats, split into
/// sequences of `lengths[s]` tokens. Each sequence continues the positions in `past`
/// (from 0 without a cache), attends to them and to its own earlier tokens, and leaves
/// its keys and values in the cache after them. `ropeTables` cover positions
/// past.count ..< past.count + the longest sequence.
///
///     h = x + post(o_proj(attention(rope(q(norm(x))), rope(k(norm(x))), v(norm(x)))))
///     x = h + post(down(act(gate(norm(h))) · up(norm(h))))
///
/// `post` is Gemma 2's output norm (identity elsewhere), act is SiLU or tanh-GELU, norms
/// multiply by w or (1 + w), and attention may be soft-capped and windowed (`LayerShape`).
/// With a `tape` (no cache), the forward records what `backward` (DecoderLayerBackward.swift)
/// needs to run it in reverse.
public enum DecoderLayer {
    public static func forward(_ w: DecoderLayerWeights, shape s: LayerShape, rope: RotaryEmbedding,
                               ropeTables: (cos: [Float], sin: [Float]),
                               x: UnsafeMutablePointer<Float>, lengths: [Int], past: KVCache? = nil, layer: Int = 0,
                               workspace ws: LayerWorkspace, observe: ((LayerActivations) -> Void)? = nil,
                               firstSequence: Int = 0, tape: LayerTape? = nil) {
        let started = Profile.now()
        defer { Profile.add(.forward, since: started) }
        let rows = lengths.reduce(0, +), longest = lengths.max() ?? 0, pastCount = past?.count ?? 0
        // Each attention worker scores one block of up to `causalBlock` rows at a time.
        let scoreStride = min(longest, causalBlock) * (pastCount + longest)
        ws.reserve(rows: rows, shape: s, scoreCount: Kernels.threads * scoreStride)
        let n = ws.normed.pointer, q = ws.q.pointer, k = ws.k.pointer, v = ws.v.pointer
        let attention = ws.attention.pointer
        let gate = ws.gate.pointer, up = ws.up.pointer
        if observe != nil { ws.input.pointer.update(from: x, count: rows * s.hidden) }
        precondition(tape == nil || past == nil, "a tape records a forward without a KV cache")
        tape?.begin(lengths: lengths)
        tape?.record(.input, x, count: rows * s.hidden)
        // Row r's position after the cached ones: `ropeTables` start at position pastCount.
        let positions = lengths.flatMap { Array(0..<$0) }

        // Attention block.
        norm(x, w, .inputNorm, n, rows: rows, width: s.hidden, eps: s.eps, offset: s.normOffset)
        project(n, w, .q, bias: .qBias, q, rows: rows, out: s.qWidth, in: s.hidden)
        project(n, w, .k, bias: .kBias, k, rows: rows, out: s.kvWidth, in: s.hidden)
        project(n, w, .v, bias: .vBias, v, rows: rows, out: s.kvWidth, in: s.hidden)
        tape?.record(.v, v, count: rows * s.kvWidth)
        if w[.qNorm] != nil {
            tape?.record(.qBeforeNorm, q, count: rows * s.qWidth)
            tape?.record(.kBeforeNorm, k, count: rows * s.kvWidth)
            // Qwen3: RMSNorm over each head's head_dim values, before RoPE.
            norm(q, w, .qNorm, q, rows: rows * s.heads, width: s.headDim, eps: s.eps)
            norm(k, w, .kNorm, k, rows: rows * s.kvHeads, width: s.headDim, eps: s.eps)
        }
        ropeTables.cos.withUnsafeBufferPointer { c in
            ropeTables.sin.withUnsafeBufferPointer { sn in
                rope.apply(q, rows: rows, heads: s.heads, rowStride: s.qWidth, cos: c.baseAddress!, sin: sn.baseAddress!) { positions[$0] }
                rope.apply(k, rows: rows, heads: s.kvHeads, rowStride: s.kvWidth, cos: c.baseAddress!, sin: sn.baseAddress!) { positions[$0] }
            }
        }
        tape?.record(.q, q, count: rows * s.qWidth)
        tape?.record(.k, k, count: rows * s.kvWidth)
        var first = 0
        for t in lengths {
            var keys = UnsafePointer(k + first * s.kvWidth), values = UnsafePointer(v + first * s.kvWidth)
            if let past {
                // The sequence's keys and values go after the cached ones; attention reads both.
                let cached = past.rows(layer: layer, extra: t)
                (cached.keys + pastCount * s.kvWidth).update(from: keys, count: t * s.kvWidth)
                (cached.values + pastCount * s.kvWidth).update(from: values, count: t * s.kvWidth)
                (keys, values) = (UnsafePointer(cached.keys), UnsafePointer(cached.values))
            }
            Profile.measure(.attention) {
                causalAttention(q: q + first * s.qWidth, keys: keys, values: values, out: attention + first * s.qWidth,
                                queries: t, past: pastCount, shape: s, window: s.window(layer: w.sourceLayer ?? layer),
                                scores: ws.scores.pointer, scoreStride: scoreStride, packing: ws.keyPanels)
            }
            first += t
        }
        tape?.record(.attention, attention, count: rows * s.qWidth)
        addOutput(attention, w, .o, bias: .oBias, norm: .attentionOutputNorm, into: x, scratch: n,
                  rows: rows, out: s.hidden, in: s.qWidth, shape: s, tape: tape, slot: .attentionProjection)
        tape?.record(.residual, x, count: rows * s.hidden)
        if observe != nil { ws.residual.pointer.update(from: x, count: rows * s.hidden) }

        // MLP block.
        norm(x, w, .mlpNorm, n, rows: rows, width: s.hidden, eps: s.eps, offset: s.normOffset)
        project(n, w, .gate, bias: .gateBias, gate, rows: rows, out: s.intermediate, in: s.hidden)
        project(n, w, .up, bias: .upBias, up, rows: rows, out: s.intermediate, in: s.hidden)
        tape?.record(.gate, gate, count: rows * s.intermediate)
        tape?.record(.up, up, count: rows * s.intermediate)
        switch s.activation {
        case .silu: Kernels.siluMul(gate, up, count: rows * s.intermediate)
        case .geluTanh: Kernels.geluTanhMul(gate, up, count: rows * s.intermediate)
        }
        addOutput(gate, w, .down, bias: .downBias, norm: .mlpOutputNorm, into: x, scratch: n,
                  rows: rows, out: s.hidden, in: s.intermediate, shape: s, tape: tape, slot: .mlpProjection)

        guard let observe else { return }
        let observed = Profile.now()
        defer { Profile.add(.statistics, since: observed) }
        observe(LayerActivations(
            firstSequence: firstSequence, sequenceLength: longest, rows: rows,
            input: UnsafeBufferPointer(start: ws.input.pointer, count: rows * s.hidden),
            attentionOutput: UnsafeBufferPointer(start: attention, count: rows * s.qWidth),
            postAttention: UnsafeBufferPointer(start: ws.residual.pointer, count: rows * s.hidden),
            mlpIntermediate: UnsafeBufferPointer(start: gate, count: rows * s.intermediate),
            output: UnsafeBufferPointer(start: x, count: rows * s.hidden)))
    }

    /// out = RMSNorm(x) · (w[field] + offset), row by row.
    static func norm(_ x: UnsafePointer<Float>, _ w: DecoderLayerWeights, _ field: LayerField,
                     _ out: UnsafeMutablePointer<Float>, rows: Int, width: Int, eps: Float, offset: Float = 0) {
        w[field]!.withUnsafeBufferPointer { Kernels.rmsNorm(x, $0.baseAddress!, out, rows: rows, n: width, eps: eps, offset: offset) }
    }

    /// residual += projection (+ bias), through the output norm `normField` when the layer
    /// has one (Gemma 2), in `scratch`; otherwise the add rides on the sgemm.
    static func addOutput(_ x: UnsafePointer<Float>, _ w: DecoderLayerWeights, _ field: LayerField, bias: LayerField,
                          norm normField: LayerField, into residual: UnsafeMutablePointer<Float>,
                          scratch: UnsafeMutablePointer<Float>, rows: Int, out n: Int, in k: Int, shape s: LayerShape,
                          tape: LayerTape? = nil, slot: LayerTape.Slot) {
        guard w[normField] != nil else {
            return projectAdding(x, w, field, bias: bias, into: residual, rows: rows, out: n, in: k)
        }
        project(x, w, field, bias: bias, scratch, rows: rows, out: n, in: k)
        tape?.record(slot, scratch, count: rows * n)
        norm(scratch, w, normField, scratch, rows: rows, width: n, eps: s.eps, offset: s.normOffset)
        Kernels.add(residual, scratch, count: rows * n)
    }

    /// out[rows × out] = x[rows × in] · Wᵀ (+ bias).
    static func project(_ x: UnsafePointer<Float>, _ w: DecoderLayerWeights, _ field: LayerField, bias: LayerField,
                        _ out: UnsafeMutablePointer<Float>, rows: Int, out n: Int, in k: Int) {
        Profile.measure(.projections) {
            w[field]!.withUnsafeBufferPointer { BLAS.matmulTransposed(x, $0.baseAddress!, out, m: rows, n: n, k: k) }
        }
        Profile.count(projection: 2 * Double(rows * n * k))
        w[bias]?.withUnsafeBufferPointer { Kernels.addBias(out, $0.baseAddress!, rows: rows, n: n) }
    }

    /// residual[rows × out] += x[rows × in] · Wᵀ (+ bias): the residual add rides on the
    /// sgemm (beta = 1) instead of a separate buffer and pass.
    static func projectAdding(_ x: UnsafePointer<Float>, _ w: DecoderLayerWeights, _ field: LayerField, bias: LayerField,
                              into residual: UnsafeMutablePointer<Float>, rows: Int, out n: Int, in k: Int) {
        Profile.measure(.projections) {
            w[field]!.withUnsafeBufferPointer { BLAS.matmulTransposed(x, $0.baseAddress!, residual, m: rows, n: n, k: k, beta: 1) }
        }
        Profile.count(projection: 2 * Double(rows * n * k))
        w[bias]?.withUnsafeBufferPointer { Kernels.addBias(residual, $0.baseAddress!, rows: rows, n: n) }
    }

    /// Query rows per block of causal attention: one (head, block) pair is one thread's item.
    public static let causalBlock = 128

    /// Causal GQA attention for one sequence of `queries` tokens after `past` cached
    /// positions: query i sees keys 0...past + i (the last `window` of them when windowed),
    /// and query head h reads KV head h / G.
    ///
    /// The (head, block) pairs are independent, so they run side by side, one per thread,
    /// each with its own `scoreStride` floats of `scores`. A pair's arithmetic is the same
    /// whichever thread takes it, so the result does not depend on the thread count.
    static func causalAttention(q: UnsafePointer<Float>, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>,
                                out: UnsafeMutablePointer<Float>, queries t: Int, past p: Int, shape s: LayerShape,
                                window: Int? = nil, scores: UnsafeMutablePointer<Float>, scoreStride: Int,
                                packing buffer: ScratchBuffer) {
        let panels = KeyPanels(keys: k, count: p + t, queries: t, shape: s, into: buffer)
        let blocks = (t + causalBlock - 1) / causalBlock
        // Latest blocks first: they see the most keys, so the pairs left for last are the cheap ones.
        Kernels.parallelItems(s.heads * blocks) { item, worker in
            let h = item % s.heads, first = (blocks - 1 - item / s.heads) * causalBlock
            attentionBlock(q: q, keys: k, panels: panels, values: v, out: out, head: h, first: first,
                           rows: min(causalBlock, t - first), past: p, shape: s, window: window,
                           scores: scores + worker * scoreStride)
        }
        let visible = (0..<t).reduce(0) { $0 + min(p + $1 + 1, window ?? Int.max) }
        Profile.count(attention: 4 * Double(s.heads * s.headDim * visible))
    }

    /// Head `h`'s attention for the `rows` queries from `first`: their weights, then
    /// out = weights · V (the masked weights are 0, so the product can run past them).
    static func attentionBlock(q: UnsafePointer<Float>, keys k: UnsafePointer<Float>, panels: KeyPanels?,
                               values v: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, head h: Int, first: Int,
                               rows: Int, past p: Int, shape s: LayerShape, window: Int?, scores: UnsafeMutablePointer<Float>) {
        let kv = h / s.groupSize, before = p + first
        attentionWeights(q: q + first * s.qWidth + h * s.headDim, keys: k + kv * s.headDim,
                         panels: panels?.head(kv), into: scores, rows: rows, past: before, shape: s,
                         window: window, rowsInParallel: false)
        vm_attention_values(scores, before + rows, v + kv * s.headDim, s.kvWidth, out + first * s.qWidth + h * s.headDim,
                            s.qWidth, rows, before, s.headDim)
    }

    /// One head's attention weights for `rows` queries whose first sees keys 0...past:
    /// scores[rows × (past + rows)] = softmax(cap(q · kᵀ · scale)) under the causal (and
    /// window) mask, rows strided through the q/k buffers; masked entries are 0. `capped`,
    /// when given, receives the capped scores before the softmax (the soft-cap's backward
    /// needs them). The softmax rows are split over the threads unless the caller is
    /// itself one of several threads (`rowsInParallel` false).
    static func attentionWeights(q: UnsafePointer<Float>, keys k: UnsafePointer<Float>, panels: UnsafePointer<Float>?,
                                 into scores: UnsafeMutablePointer<Float>, rows: Int, past p: Int, shape s: LayerShape,
                                 window: Int?, capped: UnsafeMutablePointer<Float>? = nil, rowsInParallel: Bool = true) {
        let keys = p + rows
        if let panels {
            vm_attention_scores(q, s.qWidth, panels, scores, keys, rows, p, s.headDim, s.attentionScale)
        } else {
            scoresBySgemm(q: q, keys: k, into: scores, rows: rows, past: p, shape: s)
        }
        Kernels.parallelChunks(rows, minimum: rowsInParallel ? 32 : rows + 1) { chunk in
            for i in chunk {
                let row = scores + i * keys, length = p + i + 1
                if let cap = s.attentionSoftcap {
                    Kernels.softcap(row, count: length, cap: cap)
                    capped?.advanced(by: i * keys).update(from: row, count: length)
                }
                if let window, length > window {
                    Kernels.softmaxWindow(row, from: length - window, to: length, width: keys)
                } else {
                    Kernels.softmaxPrefix(row, length: length, width: keys)
                }
            }
        }
    }

    /// The scores of fewer than `KeyPanels.minimumQueries` queries (a generation step) by
    /// sgemm on the keys as they are, where packing every cached key would cost more than
    /// it saves: the keys before the queries, then their own small square.
    static func scoresBySgemm(q: UnsafePointer<Float>, keys k: UnsafePointer<Float>, into scores: UnsafeMutablePointer<Float>,
                              rows: Int, past p: Int, shape s: LayerShape) {
        let keys = p + rows
        if p > 0 {
            BLAS.matmulTransposed(q, k, scores, m: rows, n: p, k: s.headDim, lda: s.qWidth, ldb: s.kvWidth, ldc: keys,
                                  alpha: s.attentionScale)
        }
        BLAS.matmulTransposed(q, k + p * s.kvWidth, scores + p, m: rows, n: rows, k: s.headDim, lda: s.qWidth,
                              ldb: s.kvWidth, ldc: keys, alpha: s.attentionScale)
    }
}

/// One sequence's keys per KV head in the panels `vm_attention_scores` reads (16 keys
/// transposed per panel). Made for `minimumQueries` queries or more, where packing costs
/// one pass over the keys against 2 · queries · G passes of arithmetic.
struct KeyPanels {
    static let minimumQueries = 16
    private let base: UnsafeMutablePointer<Float>, headStride: Int

    /// nil below `minimumQueries` queries: the scores then come from sgemm on the keys as they are.
    init?(keys k: UnsafePointer<Float>, count: Int, queries: Int, shape s: LayerShape, into buffer: ScratchBuffer) {
        guard queries >= Self.minimumQueries else { return nil }
        let hd = s.headDim, headStride = (count + 15) / 16 * 16 * hd
        buffer.reserve(s.kvHeads * headStride)
        let base = buffer.pointer
        Kernels.parallelItems(s.kvHeads) { kv, _ in
            vm_pack_key_panels(k + kv * hd, s.kvWidth, base + kv * headStride, count, hd)
        }
        (self.base, self.headStride) = (base, headStride)
    }

    /// KV head `kv`'s panels.
    func head(_ kv: Int) -> UnsafePointer<Float> { UnsafePointer(base + kv * headStride) }
}

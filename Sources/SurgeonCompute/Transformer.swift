import Foundation
import SurgeonModel

/// A whole model with every layer's weights resident as f32: for generation and for
/// checking the streaming executor against a plain forward pass.
public final class Transformer {
    public let config: ModelConfig
    public let shape: LayerShape
    public let rope: RotaryEmbedding
    public let head: LanguageModelHead
    public let layers: [DecoderLayerWeights]
    private let workspace = LayerWorkspace()

    public init(checkpoint: Checkpoint, layers: [DecoderLayerWeights]? = nil) throws {
        config = checkpoint.config
        shape = LayerShape(checkpoint.config)
        rope = RotaryEmbedding(checkpoint: checkpoint)
        head = try LanguageModelHead(checkpoint: checkpoint)
        self.layers = try layers ?? (0..<checkpoint.config.numHiddenLayers).map {
            try DecoderLayerWeights.load(from: checkpoint, layer: $0)
        }
    }

    /// Logits [tokens.count × vocabulary] of one sequence, all positions at once.
    public func logits(_ tokens: [Int]) -> [Float] {
        let t = tokens.count
        var x = [Float](repeating: 0, count: t * shape.hidden)
        let tables = rope.tables(count: t)
        return x.withUnsafeMutableBufferPointer { buffer in
            head.embed(tokens[...], into: buffer.baseAddress!)
            for w in layers {
                DecoderLayer.forward(w, shape: shape, rope: rope, ropeTables: tables, x: buffer.baseAddress!,
                                     sequences: 1, length: t, workspace: workspace)
            }
            return head.logits(buffer.baseAddress!, rows: t)
        }
    }

    /// A KV cache for generating up to `capacity` positions.
    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layers: layers.count, capacity: capacity, width: shape.kvWidth)
    }

    /// Runs one token at `cache.count` through every layer, appending its keys and values
    /// to the cache, and returns its logits.
    public func step(_ token: Int, cache: KVCache) -> [Float] {
        let s = shape
        let position = cache.count
        precondition(position < cache.capacity, "KV cache full")
        var x = [Float](repeating: 0, count: s.hidden)
        var normed = x, q = [Float](repeating: 0, count: s.qWidth), k = [Float](repeating: 0, count: s.kvWidth)
        var v = k, attention = q, projected = x
        var gate = [Float](repeating: 0, count: s.intermediate), up = gate
        var scores = [Float](repeating: 0, count: position + 1)
        let tables = rope.tables(count: 1, offset: position)
        x.withUnsafeMutableBufferPointer { head.embed([token][...], into: $0.baseAddress!) }
        for (l, w) in layers.enumerated() {
            w.inputNorm.withUnsafeBufferPointer { Kernels.rmsNorm(x, $0.baseAddress!, &normed, rows: 1, n: s.hidden, eps: s.eps) }
            DecoderLayer.project(normed, w.q, w.qBias, &q, rows: 1, out: s.qWidth, in: s.hidden)
            DecoderLayer.project(normed, w.k, w.kBias, &k, rows: 1, out: s.kvWidth, in: s.hidden)
            DecoderLayer.project(normed, w.v, w.vBias, &v, rows: 1, out: s.kvWidth, in: s.hidden)
            if let qNorm = w.qNorm, let kNorm = w.kNorm {
                q.withUnsafeMutableBufferPointer { qp in
                    qNorm.withUnsafeBufferPointer { Kernels.rmsNorm(qp.baseAddress!, $0.baseAddress!, qp.baseAddress!, rows: s.heads, n: s.headDim, eps: s.eps) }
                }
                k.withUnsafeMutableBufferPointer { kp in
                    kNorm.withUnsafeBufferPointer { Kernels.rmsNorm(kp.baseAddress!, $0.baseAddress!, kp.baseAddress!, rows: s.kvHeads, n: s.headDim, eps: s.eps) }
                }
            }
            rope.apply(&q, rows: 1, heads: s.heads, rowStride: s.qWidth, cos: tables.cos, sin: tables.sin) { _ in 0 }
            rope.apply(&k, rows: 1, heads: s.kvHeads, rowStride: s.kvWidth, cos: tables.cos, sin: tables.sin) { _ in 0 }
            cache.append(layer: l, key: k, value: v)
            // Attention of the new query over every cached position (no mask needed).
            let scale = 1 / Float(s.headDim).squareRoot()
            for h in 0..<s.heads {
                let kv = h / s.groupSize
                for p in 0...position {
                    var dot: Float = 0
                    for i in 0..<s.headDim { dot += q[h * s.headDim + i] * cache.keys[l][p * s.kvWidth + kv * s.headDim + i] }
                    scores[p] = dot * scale
                }
                scores.withUnsafeMutableBufferPointer { Kernels.softmaxPrefix($0.baseAddress!, length: position + 1, width: position + 1) }
                for i in 0..<s.headDim {
                    var sum: Float = 0
                    for p in 0...position { sum += scores[p] * cache.values[l][p * s.kvWidth + kv * s.headDim + i] }
                    attention[h * s.headDim + i] = sum
                }
            }
            DecoderLayer.project(attention, w.o, w.oBias, &projected, rows: 1, out: s.hidden, in: s.qWidth)
            for i in 0..<s.hidden { x[i] += projected[i] }
            w.postAttentionNorm.withUnsafeBufferPointer { Kernels.rmsNorm(x, $0.baseAddress!, &normed, rows: 1, n: s.hidden, eps: s.eps) }
            DecoderLayer.project(normed, w.gate, w.gateBias, &gate, rows: 1, out: s.intermediate, in: s.hidden)
            DecoderLayer.project(normed, w.up, w.upBias, &up, rows: 1, out: s.intermediate, in: s.hidden)
            Kernels.siluMul(&gate, up, count: s.intermediate)
            DecoderLayer.project(gate, w.down, w.downBias, &projected, rows: 1, out: s.hidden, in: s.intermediate)
            for i in 0..<s.hidden { x[i] += projected[i] }
        }
        cache.count += 1
        return head.logits(x, rows: 1)
    }

    /// Greedy decoding: feeds `prompt`, then appends the most likely token `maxTokens`
    /// times, stopping early at `stop`.
    public func generate(prompt: [Int], maxTokens: Int, stop: Set<Int> = [], onToken: ((Int) -> Void)? = nil) -> [Int] {
        let cache = makeCache(capacity: prompt.count + maxTokens)
        var logits: [Float] = []
        for t in prompt { logits = step(t, cache: cache) }
        var out: [Int] = []
        for _ in 0..<maxTokens {
            guard !logits.isEmpty else { break }
            let next = logits.indices.max { logits[$0] < logits[$1] }!
            if stop.contains(next) { break }
            out.append(next)
            onToken?(next)
            logits = step(next, cache: cache)
        }
        return out
    }
}

/// Keys and values of every layer for the positions generated so far.
public final class KVCache {
    public let capacity: Int
    public var count = 0
    var keys: [[Float]], values: [[Float]]
    private let width: Int

    init(layers: Int, capacity: Int, width: Int) {
        self.capacity = capacity
        self.width = width
        keys = Array(repeating: [Float](repeating: 0, count: capacity * width), count: layers)
        values = keys
    }

    func append(layer: Int, key: [Float], value: [Float]) {
        let base = count * width
        for i in 0..<width {
            keys[layer][base + i] = key[i]
            values[layer][base + i] = value[i]
        }
    }
}

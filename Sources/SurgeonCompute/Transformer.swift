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
        head.logits(hiddenStates([tokens]), rows: tokens.count)
    }

    /// Final hidden states (before the final norm) of `sequences`, rows concatenated. Each
    /// sequence continues the positions in `past` and attends to them; with `commit`
    /// (one sequence only) its keys and values stay in the cache.
    public func hiddenStates(_ sequences: [[Int]], past: KVCache? = nil, commit: Bool = false) -> [Float] {
        precondition(!commit || (past != nil && sequences.count == 1), "only one sequence can be added to a cache")
        if commit, let past, rope.switchesToLongContext(from: past.count, to: past.count + sequences[0].count) {
            // The cached keys were rotated with the short longrope factors. transformers
            // (Phi3ForCausalLM.prepare_inputs_for_generation) drops the cache when a sequence
            // first outgrows the original context and reruns it with the long ones.
            let earlier = past.tokens
            past.reset()
            let all = hiddenStates([earlier + sequences[0]], past: past, commit: true)
            return Array(all[(earlier.count * shape.hidden)...])
        }
        let tokens = sequences.flatMap { $0 }
        let lengths = sequences.map(\.count)
        var x = [Float](repeating: 0, count: tokens.count * shape.hidden)
        guard !tokens.isEmpty else { return x }
        // Only the new positions: a generation step rotates one row, not the whole history.
        let tables = rope.tables(count: lengths.max()!, offset: past?.count ?? 0)
        x.withUnsafeMutableBufferPointer { buffer in
            head.embed(tokens[...], into: buffer.baseAddress!)
            for (l, w) in layers.enumerated() {
                DecoderLayer.forward(w, shape: shape, rope: rope, ropeTables: tables, x: buffer.baseAddress!,
                                     lengths: lengths, past: past, layer: l, workspace: workspace)
            }
        }
        if commit { past!.commit(tokens) }
        return x
    }

    /// An empty KV cache for this model.
    public func makeCache() -> KVCache {
        KVCache(layers: layers.count, width: shape.kvWidth)
    }

    /// Runs one token after the cached positions, adds its keys and values to the cache,
    /// and returns its logits.
    public func step(_ token: Int, cache: KVCache) -> [Float] {
        head.logits(hiddenStates([[token]], past: cache, commit: true), rows: 1)
    }

    /// Greedy decoding: feeds `prompt`, then appends the most likely token `maxTokens`
    /// times, stopping early at `stop`.
    public func generate(prompt: [Int], maxTokens: Int, stop: Set<Int> = [], onToken: ((Int) -> Void)? = nil) -> [Int] {
        let cache = makeCache()
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

import Foundation
import SurgeonModel

/// Runs token sequences through a model one decoder layer at a time.
///
/// Only the current layer's weights are resident (decoded to f32 from the mapping, then
/// dropped); the hidden states of all sequences live in a `HiddenStates` store. After
/// each layer an observer sees its activations, chunk by chunk, so statistics are
/// gathered in the same pass. A run can start at any layer from states cached earlier.
public final class StreamingExecutor {
    public let checkpoint: Checkpoint
    public let shape: LayerShape
    public let rope: RotaryEmbedding
    public let head: LanguageModelHead
    /// The checkpoint's own layer count.
    public let layerCount: Int
    /// Hidden states above this size spill to zstd-compressed temp files.
    public var memoryBudget: Int
    /// Tokens per chunk inside a layer: bounds the activation buffers.
    public var chunkTokens: Int
    /// Layer forwards executed (one per layer per pass), for the resume benchmark.
    public private(set) var layerForwards = 0

    /// Scratch buffers of one chunk (about 116 MB at SmolLM2's width and 4096 tokens);
    /// executors that run one after the other can share them.
    public let workspace: LayerWorkspace

    public init(checkpoint: Checkpoint, memoryBudget: Int = 2 << 30, chunkTokens: Int = 4096,
                workspace: LayerWorkspace = LayerWorkspace()) throws {
        self.workspace = workspace
        self.checkpoint = checkpoint
        shape = LayerShape(checkpoint.config)
        rope = RotaryEmbedding(checkpoint: checkpoint)
        head = try LanguageModelHead(checkpoint: checkpoint)
        layerCount = checkpoint.config.numHiddenLayers
        self.memoryBudget = memoryBudget
        self.chunkTokens = chunkTokens
    }

    /// Embeds `sequences` (all of one length) into a new store: the input of layer 0.
    public func embed(_ sequences: [[Int]]) throws -> HiddenStates {
        let length = sequences.first?.count ?? 0
        precondition(sequences.allSatisfy { $0.count == length }, "sequences must share one length")
        let states = try HiddenStates(sequences: sequences.count, length: length, width: shape.hidden,
                                      chunkSequences: max(1, chunkTokens / max(length, 1)), memoryBudget: memoryBudget)
        try states.pass { chunk, buffer in
            for (i, s) in chunk.enumerated() {
                head.embed(sequences[s][...], into: buffer + i * length * shape.hidden)
            }
        }
        return states
    }

    /// Runs `layers` over `states` in place, layer i with `weights(i)` (surgery's stack;
    /// the checkpoint's own layers by default). `observe` sees each layer's activations;
    /// `boundary` is called after each layer with its index and the states, to cache them.
    public func run(_ states: HiddenStates, layers: Range<Int>,
                    weights: ((Int) throws -> DecoderLayerWeights)? = nil,
                    observe: ((Int, LayerActivations) -> Void)? = nil,
                    boundary: ((Int, HiddenStates) throws -> Void)? = nil,
                    progress: ((Int) -> Void)? = nil) throws {
        let tables = rope.tables(count: states.length)
        for layer in layers {
            let w = try weights?(layer) ?? DecoderLayerWeights.load(from: checkpoint, layer: layer)
            try states.pass { chunk, buffer in
                DecoderLayer.forward(w, shape: shape, rope: rope, ropeTables: tables, x: buffer,
                                     lengths: Array(repeating: states.length, count: chunk.count), layer: layer, workspace: workspace,
                                     observe: observe.map { f in { f(layer, $0) } }, firstSequence: chunk.lowerBound)
            }
            layerForwards += 1
            try boundary?(layer, states)
            progress?(layer)
        }
    }

    /// Summed next-token NLL of `states` (after the last layer) and the number of scored
    /// positions; `targets[s][j]` is the token position j of sequence s predicts, -1 to skip.
    public func negativeLogLikelihood(_ states: HiddenStates, targets: [[Int]]) throws -> (sum: Double, count: Int) {
        var sum = 0.0, count = 0
        try states.pass { chunk, buffer in
            for (i, s) in chunk.enumerated() {
                let t = targets[s]
                let losses = head.negativeLogLikelihood(buffer + i * states.length * shape.hidden,
                                                        rows: states.length, targets: t)
                for (loss, target) in zip(losses, t) where target >= 0 {
                    sum += loss
                    count += 1
                }
            }
        }
        return (sum, count)
    }

    /// Logits [length × vocabulary] of each sequence in `states` (after the last layer).
    public func logits(_ states: HiddenStates) throws -> [[Float]] {
        var out: [[Float]] = []
        try states.pass { chunk, buffer in
            for i in 0..<chunk.count {
                out.append(head.logits(buffer + i * states.length * shape.hidden, rows: states.length))
            }
        }
        return out
    }
}

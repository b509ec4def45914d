import CPlatform
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
    /// Hidden states above this size spill to temporary files.
    public var memoryBudget: Int
    /// Tokens per chunk inside a layer: bounds the activation buffers.
    public var chunkTokens: Int
    /// Layer forwards executed (one per layer per pass), for the resume benchmark.
    public private(set) var layerForwards = 0

    /// Scratch buffers of one chunk (about 116 MB at SmolLM2's width and 4096 tokens);
    /// executors that run one after the other can share them.
    public let workspace: LayerWorkspace

    /// `chunkTokens` defaults to `defaultChunkTokens(shape)`.
    public init(checkpoint: Checkpoint, memoryBudget: Int = 2 << 30, chunkTokens: Int? = nil,
                workspace: LayerWorkspace = LayerWorkspace()) throws {
        self.workspace = workspace
        self.checkpoint = checkpoint
        shape = LayerShape(checkpoint.config)
        rope = RotaryEmbedding(checkpoint: checkpoint)
        head = try LanguageModelHead(checkpoint: checkpoint)
        layerCount = checkpoint.config.numHiddenLayers
        self.memoryBudget = memoryBudget
        self.chunkTokens = chunkTokens ?? Self.defaultChunkTokens(shape)
    }

    /// 4096 tokens, or fewer where one chunk's activation buffers would pass 512 MB: on a
    /// 7B/8B shape they take 0.8 GB at 4096 tokens, which with the three layers of f32 a
    /// merge holds would pass 4 GB; 2560 tokens still keep sgemm at full speed there.
    public static func defaultChunkTokens(_ s: LayerShape) -> Int {
        let bytesPerToken = 4 * (5 * s.hidden + 2 * s.kvWidth + 2 * s.intermediate)
        return max(1, min(4096, (512 << 20) / bytesPerToken))
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
    /// the checkpoint's own layers by default). With `ComputeSettings.prefetch`,
    /// `weights(i + 1)` runs on a background thread while layer i computes, so it must only
    /// read what the run leaves alone. `prepare` sees each layer's weights on this thread
    /// before the layer runs; `observe` sees its activations; `boundary` is called after
    /// each layer with its index and the states, to cache them.
    public func run(_ states: HiddenStates, layers: Range<Int>,
                    weights: ((Int) throws -> DecoderLayerWeights)? = nil,
                    prepare: ((Int, DecoderLayerWeights) -> Void)? = nil,
                    observe: ((Int, LayerActivations) -> Void)? = nil,
                    boundary: ((Int, HiddenStates) throws -> Void)? = nil,
                    progress: ((Int) -> Void)? = nil) throws {
        let tables = rope.tables(count: states.length)
        let checkpoint = checkpoint
        let load = { (i: Int) in try weights?(i) ?? DecoderLayerWeights.load(from: checkpoint, layer: i) }
        var ahead: WeightPrefetch?
        // Nothing may still be decoding when the run returns, by error or not.
        defer { ahead?.wait() }
        for layer in layers {
            let w: DecoderLayerWeights
            if let pending = ahead {
                w = try Profile.measure(.decodeWait) { try pending.take() }
            } else {
                w = try Profile.measure(.decode) { try load(layer) }
            }
            ahead = ComputeSettings.prefetch && layer + 1 < layers.upperBound ? WeightPrefetch { try load(layer + 1) } : nil
            prepare?(layer, w)
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

/// One layer's weights, decoded on a thread of its own: the executor starts layer i + 1's
/// while layer i computes (the decode is single-threaded, so it mostly fills the gaps the
/// sgemm threads leave), at the cost of a second layer of f32 weights in memory.
final class WeightPrefetch: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private var result: Result<DecoderLayerWeights, any Error>?
    private var waited = false

    init(_ load: @escaping () throws -> DecoderLayerWeights) {
        // `load` only reads (the checkpoint's mapping, a spilled layer's file): see `run`.
        nonisolated(unsafe) let load = load
        Thread { [self] in
            // Lowest priority: the decode should take the cycles the forwards leave idle
            // (serial loops, spill I/O), not the sgemm threads' cores.
            _ = cplatform_set_thread_nice(19)
            result = Result { try Profile.measure(.decode) { try load() } }
            finished.signal()
        }.start()
    }

    /// Waits for the decode; the weights, or what it threw.
    func take() throws -> DecoderLayerWeights {
        wait()
        return try result!.get()
    }

    /// Waits for the decode to finish (later calls return at once).
    func wait() {
        guard !waited else { return }
        finished.wait()
        waited = true
    }
}

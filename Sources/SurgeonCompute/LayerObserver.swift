/// What a decoder layer computed for a chunk of tokens, as [rows × width] row-major views
/// valid only during the call.
public struct LayerActivations {
    /// Global index of the first sequence in this chunk, and tokens per sequence.
    public let firstSequence: Int
    public let sequenceLength: Int
    public let rows: Int
    /// The layer's input (hidden size wide).
    public let input: UnsafeBufferPointer<Float>
    /// Concatenated head outputs: the input of `o_proj` (heads × head_dim wide).
    public let attentionOutput: UnsafeBufferPointer<Float>
    /// h = x + o_proj(attention): the residual stream between the two blocks, which the
    /// MLP adds to (hidden size wide). Healing fits `down_proj` against it.
    public let postAttention: UnsafeBufferPointer<Float>
    /// act(gate) · up: the input of `down_proj` (intermediate size wide).
    public let mlpIntermediate: UnsafeBufferPointer<Float>
    /// The layer's output (hidden size wide).
    public let output: UnsafeBufferPointer<Float>
}

/// Sees every layer's activations as the executor runs, to gather statistics in the same
/// pass (channel sensitivity, block influence).
public protocol LayerObserver: AnyObject {
    func observe(layer: Int, _ activations: LayerActivations)
}

import SurgeonFormats
import SurgeonModel

/// One decoder layer's weights as f32, in HF layout (matrices are out × in).
///
/// The executor holds one of these at a time; surgery builds merged layers as values of
/// this type too.
public struct DecoderLayerWeights: Sendable {
    public var inputNorm: [Float]
    public var q: [Float], k: [Float], v: [Float], o: [Float]
    public var qBias: [Float]?, kBias: [Float]?, vBias: [Float]?, oBias: [Float]?
    public var qNorm: [Float]?, kNorm: [Float]?
    public var postAttentionNorm: [Float]
    public var gate: [Float], up: [Float], down: [Float]
    public var gateBias: [Float]?, upBias: [Float]?, downBias: [Float]?

    /// Decodes layer `layer` of `checkpoint` to f32 and hands its pages back to the kernel.
    public static func load(from checkpoint: Checkpoint, layer: Int) throws -> DecoderLayerWeights {
        let prefix = TensorLayout.layerPrefix(layer)
        func tensor(_ suffix: String) throws -> [Float] {
            guard let t = checkpoint.tensor(prefix + suffix) else {
                throw FormatError(.inconsistent, path: checkpoint.path, "missing tensor '\(prefix + suffix)'")
            }
            defer { t.release() }
            return t.decodeF32()
        }
        func optional(_ suffix: String) -> [Float]? {
            guard let t = checkpoint.tensor(prefix + suffix) else { return nil }
            defer { t.release() }
            return t.decodeF32()
        }
        return DecoderLayerWeights(
            inputNorm: try tensor("input_layernorm.weight"),
            q: try tensor("self_attn.q_proj.weight"), k: try tensor("self_attn.k_proj.weight"),
            v: try tensor("self_attn.v_proj.weight"), o: try tensor("self_attn.o_proj.weight"),
            qBias: optional("self_attn.q_proj.bias"), kBias: optional("self_attn.k_proj.bias"),
            vBias: optional("self_attn.v_proj.bias"), oBias: optional("self_attn.o_proj.bias"),
            qNorm: optional("self_attn.q_norm.weight"), kNorm: optional("self_attn.k_norm.weight"),
            postAttentionNorm: try tensor("post_attention_layernorm.weight"),
            gate: try tensor("mlp.gate_proj.weight"), up: try tensor("mlp.up_proj.weight"),
            down: try tensor("mlp.down_proj.weight"),
            gateBias: optional("mlp.gate_proj.bias"), upBias: optional("mlp.up_proj.bias"),
            downBias: optional("mlp.down_proj.bias"))
    }

    /// Bytes of f32 held.
    public var byteCount: Int {
        4 * Field.allCases.reduce(0) { $0 + (self[$1]?.count ?? 0) }
    }
}

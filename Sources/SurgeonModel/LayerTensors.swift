/// A decoder layer's tensors, one row each: the single table that loading, spilling,
/// merging, weight sums, writing, GGUF naming and the integrity check all read.
///
/// A family that needs another tensor adds a field and a row here, with the condition
/// under which its checkpoints carry it.
public enum LayerField: Int, CaseIterable, Sendable {
    case inputNorm, q, k, v, o, qBias, kBias, vBias, oBias, qNorm, kNorm
    /// The norm in front of the MLP (HF LLaMA's `post_attention_layernorm`).
    case mlpNorm
    case gate, up, down, gateBias, upBias, downBias
    /// Gemma 2's norms on the attention's and the MLP's outputs.
    case attentionOutputNorm, mlpOutputNorm
}

/// One dimension of a layer tensor, resolved against a config.
public enum LayerDimension: Sendable {
    case hidden, queryWidth, kvWidth, intermediate, headDim

    public func size(_ c: ModelConfig) -> Int {
        switch self {
        case .hidden: c.hiddenSize
        case .queryWidth: c.numAttentionHeads * c.headDim
        case .kvWidth: c.numKeyValueHeads * c.headDim
        case .intermediate: c.intermediateSize
        case .headDim: c.headDim
        }
    }
}

/// The units CoMe keeps whole when it concatenates layers (SPEC §4).
public enum MergeUnit: Sendable {
    /// KV group j: rows [j·d, (j+1)·d) of k and v.
    case kvGroup
    /// The G query heads reading KV group j: rows [j·G·d, (j+1)·G·d) of q, columns of o.
    case queryGroup
    /// Intermediate channel i: row i of gate and up, column i of down.
    case ffnChannel
}

/// How a tensor of a merged layer is built from the window's layers.
public enum MergeRule: Sendable {
    /// Concatenate the kept units' rows.
    case rows(MergeUnit)
    /// Concatenate the kept units' columns.
    case columns(MergeUnit)
    /// Σ rₜ · vₜ with the retention ratios (vectors that cannot be concatenated).
    case ratioWeighted
    /// A hidden-size norm: the mean of the window's, or the first layer's (`NormRule`).
    case norm
}

/// When a family's checkpoint carries a tensor.
public enum TensorPresence: Sendable {
    case always
    /// q/k/v biases: always in Qwen2, with `attention_bias` elsewhere.
    case qkvBias
    case attentionBias
    case mlpBias
    /// Per-head q/k RMSNorm (Qwen3).
    case qkNorm
    /// Norms before and after attention and MLP (Gemma 2), or only before (the rest).
    case sandwichNorms, preNormsOnly

    public func holds(_ c: ModelConfig, _ t: FamilyTraits) -> Bool {
        switch self {
        case .always: true
        case .qkvBias: t.alwaysHasQKVBias || c.attentionBias
        case .attentionBias: c.attentionBias
        case .mlpBias: c.mlpBias
        case .qkNorm: t.hasQKNorm
        case .sandwichNorms: t.hasSandwichNorms
        case .preNormsOnly: !t.hasSandwichNorms
        }
    }

    /// Whether a family's checkpoints can carry the tensor for some config (names map
    /// only within a family: `post_attention_layernorm` is a different norm in Gemma 2).
    public func possible(_ t: FamilyTraits) -> Bool {
        switch self {
        case .sandwichNorms: t.hasSandwichNorms
        case .preNormsOnly: !t.hasSandwichNorms
        default: true
        }
    }
}

public struct LayerTensor: Sendable {
    public let field: LayerField
    /// The name after `model.layers.N.` in HF checkpoints.
    public let hfSuffix: String
    /// The name after `blk.N.` in GGUF files.
    public let ggufSuffix: String
    public let dimensions: [LayerDimension]
    public let presence: TensorPresence
    public let merge: MergeRule

    public func shape(_ c: ModelConfig) -> [Int] { dimensions.map { $0.size(c) } }
    /// Norm weights: left alone by LaCo's weight sum, summed by MKA's.
    public var isNorm: Bool { hfSuffix.contains("norm") }
}

/// A stored tensor holding several layer tensors' rows (Phi-3's `qkv_proj`).
public struct FusedTensor: Sendable {
    public let hfSuffix: String
    public let ggufSuffix: String
    public let parts: [LayerField]

    /// Each part's HF suffix and its rows in the fused tensor.
    public func partRows(_ c: ModelConfig, family: ModelFamily) -> [(suffix: String, rows: Range<Int>)] {
        var start = 0
        return parts.map { field in
            let row = LayerTensors.row(field, in: family)!
            let count = row.dimensions[0].size(c)
            defer { start += count }
            return (row.hfSuffix, start..<(start + count))
        }
    }
}

public enum LayerTensors {
    /// Every tensor a supported layer can have, in the order transformers lists them.
    public static let table: [LayerTensor] = [
        LayerTensor(field: .inputNorm, hfSuffix: "input_layernorm.weight", ggufSuffix: "attn_norm.weight",
                    dimensions: [.hidden], presence: .always, merge: .norm),
        LayerTensor(field: .q, hfSuffix: "self_attn.q_proj.weight", ggufSuffix: "attn_q.weight",
                    dimensions: [.queryWidth, .hidden], presence: .always, merge: .rows(.queryGroup)),
        LayerTensor(field: .qBias, hfSuffix: "self_attn.q_proj.bias", ggufSuffix: "attn_q.bias",
                    dimensions: [.queryWidth], presence: .qkvBias, merge: .rows(.queryGroup)),
        LayerTensor(field: .k, hfSuffix: "self_attn.k_proj.weight", ggufSuffix: "attn_k.weight",
                    dimensions: [.kvWidth, .hidden], presence: .always, merge: .rows(.kvGroup)),
        LayerTensor(field: .kBias, hfSuffix: "self_attn.k_proj.bias", ggufSuffix: "attn_k.bias",
                    dimensions: [.kvWidth], presence: .qkvBias, merge: .rows(.kvGroup)),
        LayerTensor(field: .v, hfSuffix: "self_attn.v_proj.weight", ggufSuffix: "attn_v.weight",
                    dimensions: [.kvWidth, .hidden], presence: .always, merge: .rows(.kvGroup)),
        LayerTensor(field: .vBias, hfSuffix: "self_attn.v_proj.bias", ggufSuffix: "attn_v.bias",
                    dimensions: [.kvWidth], presence: .qkvBias, merge: .rows(.kvGroup)),
        LayerTensor(field: .o, hfSuffix: "self_attn.o_proj.weight", ggufSuffix: "attn_output.weight",
                    dimensions: [.hidden, .queryWidth], presence: .always, merge: .columns(.queryGroup)),
        LayerTensor(field: .oBias, hfSuffix: "self_attn.o_proj.bias", ggufSuffix: "attn_output.bias",
                    dimensions: [.hidden], presence: .attentionBias, merge: .ratioWeighted),
        LayerTensor(field: .qNorm, hfSuffix: "self_attn.q_norm.weight", ggufSuffix: "attn_q_norm.weight",
                    dimensions: [.headDim], presence: .qkNorm, merge: .ratioWeighted),
        LayerTensor(field: .kNorm, hfSuffix: "self_attn.k_norm.weight", ggufSuffix: "attn_k_norm.weight",
                    dimensions: [.headDim], presence: .qkNorm, merge: .ratioWeighted),
        LayerTensor(field: .mlpNorm, hfSuffix: "post_attention_layernorm.weight", ggufSuffix: "ffn_norm.weight",
                    dimensions: [.hidden], presence: .preNormsOnly, merge: .norm),
        LayerTensor(field: .attentionOutputNorm, hfSuffix: "post_attention_layernorm.weight",
                    ggufSuffix: "post_attention_norm.weight", dimensions: [.hidden], presence: .sandwichNorms, merge: .norm),
        LayerTensor(field: .mlpNorm, hfSuffix: "pre_feedforward_layernorm.weight", ggufSuffix: "ffn_norm.weight",
                    dimensions: [.hidden], presence: .sandwichNorms, merge: .norm),
        LayerTensor(field: .gate, hfSuffix: "mlp.gate_proj.weight", ggufSuffix: "ffn_gate.weight",
                    dimensions: [.intermediate, .hidden], presence: .always, merge: .rows(.ffnChannel)),
        LayerTensor(field: .gateBias, hfSuffix: "mlp.gate_proj.bias", ggufSuffix: "ffn_gate.bias",
                    dimensions: [.intermediate], presence: .mlpBias, merge: .rows(.ffnChannel)),
        LayerTensor(field: .up, hfSuffix: "mlp.up_proj.weight", ggufSuffix: "ffn_up.weight",
                    dimensions: [.intermediate, .hidden], presence: .always, merge: .rows(.ffnChannel)),
        LayerTensor(field: .upBias, hfSuffix: "mlp.up_proj.bias", ggufSuffix: "ffn_up.bias",
                    dimensions: [.intermediate], presence: .mlpBias, merge: .rows(.ffnChannel)),
        LayerTensor(field: .down, hfSuffix: "mlp.down_proj.weight", ggufSuffix: "ffn_down.weight",
                    dimensions: [.hidden, .intermediate], presence: .always, merge: .columns(.ffnChannel)),
        LayerTensor(field: .downBias, hfSuffix: "mlp.down_proj.bias", ggufSuffix: "ffn_down.bias",
                    dimensions: [.hidden], presence: .mlpBias, merge: .ratioWeighted),
        LayerTensor(field: .mlpOutputNorm, hfSuffix: "post_feedforward_layernorm.weight", ggufSuffix: "post_ffw_norm.weight",
                    dimensions: [.hidden], presence: .sandwichNorms, merge: .norm),
    ]

    /// Tensors some families store fused: the parts' rows one after the other. They are
    /// split into row views of the parts when a checkpoint is opened, and fused again by
    /// the writers, so that everything between sees the parts.
    public static let fused: [FusedTensor] = [
        FusedTensor(hfSuffix: "self_attn.qkv_proj.weight", ggufSuffix: "attn_qkv.weight", parts: [.q, .k, .v]),
        FusedTensor(hfSuffix: "mlp.gate_up_proj.weight", ggufSuffix: "ffn_up.weight", parts: [.gate, .up]),
    ]

    /// The row for `field` in `family`.
    public static func row(_ field: LayerField, in family: ModelFamily) -> LayerTensor? {
        possible(in: family).first { $0.field == field }
    }

    /// The rows a family's checkpoints can carry.
    public static func possible(in family: ModelFamily) -> [LayerTensor] {
        let traits = family.traits
        return table.filter { $0.presence.possible(traits) }
    }

    /// The tensors a layer of config `c` in family `family` carries, in table order.
    public static func present(_ c: ModelConfig, family: ModelFamily) -> [LayerTensor] {
        let traits = family.traits
        return table.filter { $0.presence.holds(c, traits) }
    }

    /// How CoMe merges `field`: the same in every family that has it.
    public static func mergeRule(_ field: LayerField) -> (MergeRule, [LayerDimension]) {
        let row = table.first { $0.field == field }!
        return (row.merge, row.dimensions)
    }
}

/// The tensors a model of a given config must have, with their HF names and shapes.
public struct TensorSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
}

public enum TensorLayout {
    public static func layerPrefix(_ layer: Int) -> String { "model.layers.\(layer)." }

    /// Tensors of decoder layer `layer`, in the order transformers lists them.
    public static func layerTensors(_ c: ModelConfig, family: ModelFamily, layer: Int) -> [TensorSpec] {
        let p = layerPrefix(layer)
        let q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim
        let h = c.hiddenSize, f = c.intermediateSize
        let t = family.traits
        var specs = [TensorSpec(name: p + "input_layernorm.weight", shape: [h])]
        let qkvBias = t.alwaysHasQKVBias || c.attentionBias
        for (proj, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            specs.append(TensorSpec(name: p + "self_attn.\(proj).weight", shape: [rows, h]))
            if qkvBias { specs.append(TensorSpec(name: p + "self_attn.\(proj).bias", shape: [rows])) }
        }
        specs.append(TensorSpec(name: p + "self_attn.o_proj.weight", shape: [h, q]))
        if c.attentionBias { specs.append(TensorSpec(name: p + "self_attn.o_proj.bias", shape: [h])) }
        if t.hasQKNorm {
            specs.append(TensorSpec(name: p + "self_attn.q_norm.weight", shape: [c.headDim]))
            specs.append(TensorSpec(name: p + "self_attn.k_norm.weight", shape: [c.headDim]))
        }
        specs.append(TensorSpec(name: p + "post_attention_layernorm.weight", shape: [h]))
        for (proj, shape) in [("gate_proj", [f, h]), ("up_proj", [f, h]), ("down_proj", [h, f])] {
            specs.append(TensorSpec(name: p + "mlp.\(proj).weight", shape: shape))
            if c.mlpBias { specs.append(TensorSpec(name: p + "mlp.\(proj).bias", shape: [shape[0]])) }
        }
        return specs
    }

    /// Every tensor of the model: embeddings, all layers, final norm, and the head when
    /// it is not tied to the embeddings.
    public static func expectedTensors(_ c: ModelConfig, family: ModelFamily) -> [TensorSpec] {
        var specs = [TensorSpec(name: "model.embed_tokens.weight", shape: [c.vocabSize, c.hiddenSize])]
        for layer in 0..<c.numHiddenLayers {
            specs += layerTensors(c, family: family, layer: layer)
        }
        specs.append(TensorSpec(name: "model.norm.weight", shape: [c.hiddenSize]))
        if !c.tieWordEmbeddings {
            specs.append(TensorSpec(name: "lm_head.weight", shape: [c.vocabSize, c.hiddenSize]))
        }
        return specs
    }

    /// The decoder layer an HF tensor name belongs to, if any.
    public static func layerIndex(of name: String) -> Int? {
        guard name.hasPrefix("model.layers.") else { return nil }
        let rest = name.dropFirst("model.layers.".count)
        return Int(rest.prefix { $0.isNumber })
    }
}

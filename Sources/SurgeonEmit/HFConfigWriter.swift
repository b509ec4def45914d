import Foundation
import SurgeonFormats
import SurgeonModel

/// config.json for an output folder.
///
/// From an HF input the original JSON is kept key for key and only what changed is
/// rewritten (layer count, dtype, per-layer lists); from a GGUF input it is built from
/// the derived `ModelConfig`.
public enum HFConfigWriter {
    public static func configJSON(for checkpoint: Checkpoint, numLayers: Int? = nil, keptLayers: [Int]? = nil,
                                  torchDtype: String?) throws -> Data {
        var object: [String: Any]
        if let original = checkpoint.configJSON,
           let parsed = try? JSONSerialization.jsonObject(with: original) as? [String: Any] {
            object = parsed
        } else {
            object = fromConfig(checkpoint.config)
        }
        if let numLayers {
            object["num_hidden_layers"] = numLayers
            // Per-layer lists (e.g. `layer_types`) must stay as long as the layer count.
            for (key, value) in object {
                guard let list = value as? [Any], list.count == checkpoint.config.numHiddenLayers else { continue }
                if let keptLayers { object[key] = keptLayers.map { list[$0] } }
            }
            // Without `layer_types` the attention kind follows the index, which pruning
            // shifts: spell out each kept layer's (transformers ≥ 4.53 reads it).
            if object["layer_types"] == nil, checkpoint.family.traits.slidingWindowOnEvenLayers, let keptLayers {
                object["layer_types"] = keptLayers.map {
                    checkpoint.config.isSlidingLayer($0) ? "sliding_attention" : "full_attention"
                }
            }
        }
        if let torchDtype { object["torch_dtype"] = torchDtype }
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    static func fromConfig(_ c: ModelConfig) -> [String: Any] {
        var o: [String: Any] = [
            "architectures": c.architectures,
            "model_type": c.modelType,
            "hidden_size": c.hiddenSize,
            "intermediate_size": c.intermediateSize,
            "num_hidden_layers": c.numHiddenLayers,
            "num_attention_heads": c.numAttentionHeads,
            "num_key_value_heads": c.numKeyValueHeads,
            "head_dim": c.headDim,
            "rms_norm_eps": c.rmsNormEps,
            "rope_theta": c.ropeTheta,
            "max_position_embeddings": c.maxPositionEmbeddings,
            "vocab_size": c.vocabSize,
            "tie_word_embeddings": c.tieWordEmbeddings,
            "hidden_act": "silu",
            "attention_bias": c.attentionBias,
            "mlp_bias": c.mlpBias,
            "use_cache": true,
        ]
        if let bos = c.bosTokenId { o["bos_token_id"] = bos }
        if c.eosTokenIds.count == 1 { o["eos_token_id"] = c.eosTokenIds[0] } else if !c.eosTokenIds.isEmpty { o["eos_token_id"] = c.eosTokenIds }
        if let act = c.hiddenActivation {
            o["hidden_act"] = act
            o["hidden_activation"] = act
        }
        if let v = c.slidingWindow { o["sliding_window"] = v }
        if let v = c.attnLogitSoftcapping { o["attn_logit_softcapping"] = v }
        if let v = c.finalLogitSoftcapping { o["final_logit_softcapping"] = v }
        if let v = c.queryPreAttnScalar { o["query_pre_attn_scalar"] = v }
        if let v = c.originalMaxPositionEmbeddings { o["original_max_position_embeddings"] = v }
        if let scaling = c.ropeScaling, let short = scaling.shortFactor, let long = scaling.longFactor {
            // Phi3Config (transformers 4.x) accepts exactly these three keys.
            o["rope_scaling"] = ["type": scaling.ropeType, "short_factor": short, "long_factor": long] as [String: Any]
        } else if let scaling = c.ropeScaling, let data = try? JSONEncoder().encode(scaling),
           let json = try? JSONSerialization.jsonObject(with: data) {
            o["rope_scaling"] = json
        }
        return o
    }

    /// transformers' name for a dtype.
    public static func torchName(_ dtype: DType) -> String? {
        switch dtype {
        case .f32: "float32"
        case .f16: "float16"
        case .bf16: "bfloat16"
        default: nil
        }
    }
}

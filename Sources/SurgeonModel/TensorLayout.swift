/// The tensors a model of a given config must have, with their HF names and shapes.
public struct TensorSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
}

public enum TensorLayout {
    public static func layerPrefix(_ layer: Int) -> String { "model.layers.\(layer)." }

    /// Tensors of decoder layer `layer`, in the order transformers lists them.
    public static func layerTensors(_ c: ModelConfig, family: ModelFamily, layer: Int) -> [TensorSpec] {
        LayerTensors.present(c, family: family).map {
            TensorSpec(name: layerPrefix(layer) + $0.hfSuffix, shape: $0.shape(c))
        }
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

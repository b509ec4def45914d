/// HF ↔ GGUF tensor names (llama.cpp's `gguf-py/gguf/tensor_mapping.py`): the model-wide
/// ones here, a layer's from `LayerTensors`.
public enum TensorNames {
    static let global: [(hf: String, gguf: String)] = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ]

    /// `model.layers.3.mlp.up_proj.weight` → `blk.3.ffn_up.weight`; nil for names with
    /// no GGUF counterpart (e.g. `rotary_emb.inv_freq`).
    public static func gguf(fromHF name: String, family: ModelFamily) -> String? {
        if let g = global.first(where: { $0.hf == name }) { return g.gguf }
        guard let layer = TensorLayout.layerIndex(of: name) else { return nil }
        let rest = name.dropFirst(TensorLayout.layerPrefix(layer).count)
        if family.traits.fusesProjections {
            if let f = LayerTensors.fused.first(where: { $0.hfSuffix == rest }) { return "blk.\(layer).\(f.ggufSuffix)" }
            // The parts exist only as views; files hold the fused tensor.
            let parts = LayerTensors.fused.flatMap(\.parts)
            if LayerTensors.possible(in: family).contains(where: { $0.hfSuffix == rest && parts.contains($0.field) }) { return nil }
        }
        return LayerTensors.possible(in: family).first { $0.hfSuffix == rest }.map { "blk.\(layer).\($0.ggufSuffix)" }
    }

    /// `blk.3.ffn_up.weight` → `model.layers.3.mlp.up_proj.weight`.
    public static func hf(fromGGUF name: String, family: ModelFamily) -> String? {
        if let g = global.first(where: { $0.gguf == name }) { return g.hf }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        if family.traits.fusesProjections, let f = LayerTensors.fused.first(where: { $0.ggufSuffix == parts[2] }) {
            return TensorLayout.layerPrefix(layer) + f.hfSuffix
        }
        return LayerTensors.possible(in: family).first { $0.ggufSuffix == parts[2] }.map { TensorLayout.layerPrefix(layer) + $0.hfSuffix }
    }
}

/// HF ↔ GGUF tensor names (llama.cpp's `gguf-py/gguf/tensor_mapping.py`, for the
/// families we support).
public enum TensorNames {
    static let global: [(hf: String, gguf: String)] = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ]

    static let perLayer: [(hf: String, gguf: String)] = [
        ("input_layernorm", "attn_norm"),
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("self_attn.q_norm", "attn_q_norm"),
        ("self_attn.k_norm", "attn_k_norm"),
        ("post_attention_layernorm", "ffn_norm"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ]

    /// `model.layers.3.mlp.up_proj.weight` → `blk.3.ffn_up.weight`; nil for names with
    /// no GGUF counterpart (e.g. `rotary_emb.inv_freq`).
    public static func gguf(fromHF name: String) -> String? {
        if let g = global.first(where: { $0.hf == name }) { return g.gguf }
        guard let layer = TensorLayout.layerIndex(of: name) else { return nil }
        let rest = name.dropFirst(TensorLayout.layerPrefix(layer).count)
        for (hf, gguf) in perLayer {
            for suffix in ["weight", "bias"] where rest == "\(hf).\(suffix)" {
                return "blk.\(layer).\(gguf).\(suffix)"
            }
        }
        return nil
    }

    /// `blk.3.ffn_up.weight` → `model.layers.3.mlp.up_proj.weight`.
    public static func hf(fromGGUF name: String) -> String? {
        if let g = global.first(where: { $0.gguf == name }) { return g.hf }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        for (hf, gguf) in perLayer {
            for suffix in ["weight", "bias"] where parts[2] == "\(gguf).\(suffix)" {
                return "\(TensorLayout.layerPrefix(layer))\(hf).\(suffix)"
            }
        }
        return nil
    }
}

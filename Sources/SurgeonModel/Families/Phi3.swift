extension FamilyTraits {
    /// Phi-3 (HF `Phi3ForCausalLM`): LLaMA's layer with q/k/v fused into `qkv_proj` and
    /// gate/up into `gate_up_proj` (presented here as row views of the fused tensors and
    /// written back fused), `longrope` scaling, NEOX RoPE. CoMe's defaults are LLaMA's.
    public static let phi3 = FamilyTraits(
        hfClassName: "Phi3ForCausalLM", ggufArchitecture: "phi3",
        ggufPermutesQK: false, ggufAlwaysWritesKeyLength: false,
        alwaysHasQKVBias: false, hasQKNorm: false, fusesProjections: true, configDefaults: phi3Defaults,
        comeP: 1, comeRho: nil)

    /// `Phi3Config`'s defaults.
    static var phi3Defaults: ConfigDefaults {
        var d = ConfigDefaults()
        d.originalMaxPositionEmbeddings = 4096
        return d
    }
}

extension FamilyTraits {
    /// Qwen2 / Qwen2.5: LLaMA-like with biases on q, k and v (not o), NEOX RoPE.
    public static let qwen2 = FamilyTraits(
        hfClassName: "Qwen2ForCausalLM", ggufArchitecture: "qwen2",
        ggufPermutesQK: false, ggufAlwaysWritesKeyLength: false,
        alwaysHasQKVBias: true, hasQKNorm: false, comeP: 32, comeRho: 0.85)
}

extension FamilyTraits {
    /// LLaMA 1/2/3 and everything that copies it (SmolLM2 among them): RMSNorm, RoPE
    /// (with optional llama3 frequency scaling), GQA, SiLU-gated MLP, no biases by default.
    public static let llama = FamilyTraits(
        hfClassName: "LlamaForCausalLM", ggufArchitecture: "llama",
        ggufPermutesQK: true, ggufAlwaysWritesKeyLength: false,
        alwaysHasQKVBias: false, hasQKNorm: false, comeP: 1, comeRho: nil)
}

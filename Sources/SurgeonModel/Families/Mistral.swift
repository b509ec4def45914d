extension FamilyTraits {
    /// Mistral: LLaMA's tensors and layout; llama.cpp stores it as arch "llama".
    /// (Sliding-window attention only matters past the window, beyond our context lengths.)
    public static let mistral = FamilyTraits(
        hfClassName: "MistralForCausalLM", ggufArchitecture: "llama",
        ggufPermutesQK: true, ggufAlwaysWritesKeyLength: false,
        alwaysHasQKVBias: false, hasQKNorm: false, comeP: 1, comeRho: nil)
}

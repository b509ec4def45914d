extension FamilyTraits {
    /// Gemma 2 (HF `Gemma2ForCausalLM`): (1 + w) RMSNorm with a norm before and after both
    /// attention and MLP, GeGLU with the tanh gelu, embeddings × √hidden, attention scaled
    /// by query_pre_attn_scalar^-½ and soft-capped, soft-capped final logits, sliding-window
    /// attention on alternate layers, tied embeddings by default, NEOX RoPE.
    /// CoMe's defaults are LLaMA's: the paper gives none for Gemma.
    public static let gemma2 = FamilyTraits(
        hfClassName: "Gemma2ForCausalLM", ggufArchitecture: "gemma2",
        ggufPermutesQK: false, ggufAlwaysWritesKeyLength: true,
        alwaysHasQKVBias: false, hasQKNorm: false,
        normWeightOffset: 1, activation: .geluTanh, scalesEmbeddings: true, hasSandwichNorms: true,
        slidingWindowOnEvenLayers: true, tiesEmbeddingsByDefault: true, configDefaults: gemma2Defaults,
        ggufStoresNormPlusOne: true, comeP: 1, comeRho: nil)

    /// `Gemma2Config`'s defaults.
    static var gemma2Defaults: ConfigDefaults {
        var d = ConfigDefaults()
        d.headDim = 256
        d.hiddenActivation = "gelu_pytorch_tanh"
        d.queryPreAttnScalar = 256
        d.slidingWindow = 4096
        d.attnLogitSoftcapping = 50
        d.finalLogitSoftcapping = 30
        return d
    }
}

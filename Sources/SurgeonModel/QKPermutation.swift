/// The row order llama.cpp's converter gives LLaMA q/k projections.
///
/// HF applies RoPE to the two halves of each head (`rotate_half`); llama.cpp rotates
/// adjacent pairs. `convert_hf_to_gguf.py` therefore reshapes each head's rows from
/// [2, head_dim/2] to [head_dim/2, 2]: GGUF row h·d + 2j + t holds HF row h·d + t·d/2 + j.
public enum QKPermutation {
    /// For each GGUF row, the HF row it holds (apply when writing GGUF).
    public static func hfRowsForGGUF(heads: Int, headDim: Int) -> [Int] {
        let half = headDim / 2
        var rows = [Int](repeating: 0, count: heads * headDim)
        for h in 0..<heads {
            for j in 0..<half {
                for t in 0..<2 {
                    rows[h * headDim + 2 * j + t] = h * headDim + t * half + j
                }
            }
        }
        return rows
    }

    public enum Direction { case hfRowsForGGUF, ggufRowsForHF }

    /// The permutation of tensor `name` in a family whose GGUFs permute q/k (SPEC §2):
    /// for each GGUF row its HF row (writing), or for each HF row its GGUF row (reading);
    /// nil for other tensors and families.
    /// `storedRows`, when given, is the tensor's height: a tensor the config does not fit
    /// is left unpermuted (the integrity check names it) rather than sized by the config.
    public static func rows(of name: String, config c: ModelConfig, family: ModelFamily, _ direction: Direction,
                            storedRows: Int? = nil) -> [Int]? {
        guard family.traits.ggufPermutesQK else { return nil }
        let heads: Int
        if name.hasSuffix("self_attn.q_proj.weight") { heads = c.numAttentionHeads }
        else if name.hasSuffix("self_attn.k_proj.weight") { heads = c.numKeyValueHeads }
        else { return nil }
        if let storedRows, heads.multipliedReportingOverflow(by: c.headDim) != (storedRows, false) { return nil }
        switch direction {
        case .hfRowsForGGUF: return hfRowsForGGUF(heads: heads, headDim: c.headDim)
        case .ggufRowsForHF: return ggufRowsForHF(heads: heads, headDim: c.headDim)
        }
    }

    /// For each HF row, the GGUF row it is stored in (apply when reading GGUF).
    public static func ggufRowsForHF(heads: Int, headDim: Int) -> [Int] {
        let forward = hfRowsForGGUF(heads: heads, headDim: headDim)
        var inverse = [Int](repeating: 0, count: forward.count)
        for (gguf, hf) in forward.enumerated() { inverse[hf] = gguf }
        return inverse
    }
}

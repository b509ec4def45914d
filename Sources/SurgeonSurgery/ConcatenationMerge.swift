import SurgeonCompute
import SurgeonModel

/// CoMe's concatenation merge (SPEC §4): from each layer of a window keep its most
/// sensitive units in proportion to its retention ratio, and concatenate them in layer
/// order. Every unit moves with all of its rows and columns.
public enum ConcatenationMerge {
    public enum NormRule: String, Sendable, Codable, CaseIterable {
        /// Element-wise mean of the window's norm weights (the paper's rule).
        case mean
        /// The first layer's norm weights unchanged.
        case keepFirst = "keep-first"
    }

    /// Merges `layers` (in window order) with the given ratios and unit scores.
    public static func merge(_ layers: [DecoderLayerWeights], ratios: [Double], ffnScores: [[Double]],
                             kvGroupScores: [[Double]], config c: ModelConfig, norms: NormRule)
        -> (weights: DecoderLayerWeights, kept: [KeptUnits]) {
        let kept = keptUnits(ratios: ratios, ffnScores: ffnScores, kvGroupScores: kvGroupScores, config: c)
        return (merge(layers, ratios: ratios, kept: kept, config: c, norms: norms), kept)
    }

    /// Each layer's most sensitive units, as many as its ratio allows.
    public static func keptUnits(ratios: [Double], ffnScores: [[Double]], kvGroupScores: [[Double]],
                                 config c: ModelConfig) -> [KeptUnits] {
        let ffnCounts = RetentionRatios.unitCounts(ratios, units: c.intermediateSize)
        let groupCounts = RetentionRatios.unitCounts(ratios, units: c.numKeyValueHeads)
        return ratios.indices.map { t in
            KeptUnits(ffnChannels: RetentionRatios.topUnits(ffnScores[t], k: ffnCounts[t]),
                      kvGroups: RetentionRatios.topUnits(kvGroupScores[t], k: groupCounts[t]))
        }
    }

    /// Builds the merged layer from the units each layer keeps (also how a manifest's
    /// steps are replayed); `ratios` weight the vectors that cannot be concatenated. Each
    /// tensor follows its row of the layer table.
    public static func merge(_ layers: [DecoderLayerWeights], ratios: [Double], kept: [KeptUnits],
                             config c: ModelConfig, norms: NormRule) -> DecoderLayerWeights {
        var merged = layers[0]
        for field in layers[0].fields {
            let sources = layers.map { $0[field]! }
            let (rule, dimensions) = LayerTensors.mergeRule(field)
            let shape = dimensions.map { $0.size(c) }
            switch rule {
            case .rows(let unit):
                merged[field] = gatherRows(parts(sources, kept, unit, c), width: shape.count == 2 ? shape[1] : 1)
            case .columns(let unit):
                merged[field] = gatherColumns(parts(sources, kept, unit, c), rows: shape[0], width: shape[1])
            case .ratioWeighted:
                merged[field] = weightedSum(sources, ratios)
            case .norm:
                // Gemma's (1 + w) norms average the same way: mean(1 + w) = 1 + mean(w).
                if norms == .mean { merged[field] = mean(sources) }
            }
        }
        return merged
    }

    /// Each layer's tensor with the index ranges (rows or columns) of the units it keeps,
    /// in layer order. A KV group is K/V rows [j·d, (j+1)·d), the q rows of heads
    /// jG..<(j+1)G and the o_proj columns behind them; query heads keep their order inside
    /// the group, so merged query head j'·G + i still reads merged KV head j'. An FFN
    /// channel is row i of gate and up and column i of down.
    static func parts(_ sources: [[Float]], _ kept: [KeptUnits], _ unit: MergeUnit, _ c: ModelConfig) -> [([Float], Range<Int>)] {
        let d = c.headDim, g = c.numAttentionHeads / c.numKeyValueHeads
        return zip(sources, kept).flatMap { w, k -> [([Float], Range<Int>)] in
            switch unit {
            case .kvGroup: k.kvGroups.map { j in (w, (j * d)..<((j + 1) * d)) }
            case .queryGroup: k.kvGroups.map { j in (w, (j * g * d)..<((j + 1) * g * d)) }
            case .ffnChannel: k.ffnChannels.map { i in (w, i..<(i + 1)) }
            }
        }
    }

    /// Concatenates row ranges of row-major matrices `width` wide.
    static func gatherRows(_ parts: [([Float], Range<Int>)], width: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(parts.reduce(0) { $0 + $1.1.count * width })
        for (m, rows) in parts { out += m[(rows.lowerBound * width)..<(rows.upperBound * width)] }
        return out
    }

    /// Concatenates column ranges of [rows × width] matrices into a [rows × Σ columns] one.
    static func gatherColumns(_ parts: [([Float], Range<Int>)], rows: Int, width: Int) -> [Float] {
        let total = parts.reduce(0) { $0 + $1.1.count }
        var out = [Float](repeating: 0, count: rows * total)
        for r in 0..<rows {
            var at = r * total
            for (m, cols) in parts {
                for c in cols { out[at] = m[r * width + c]; at += 1 }
            }
        }
        return out
    }

    static func mean(_ vectors: [[Float]]) -> [Float] {
        var out = [Float](repeating: 0, count: vectors[0].count)
        for v in vectors { for i in out.indices { out[i] += v[i] } }
        let n = Float(vectors.count)
        return out.map { $0 / n }
    }

    /// Σ r_t · v_t.
    static func weightedSum(_ vectors: [[Float]], _ ratios: [Double]) -> [Float] {
        var out = [Double](repeating: 0, count: vectors[0].count)
        for (v, r) in zip(vectors, ratios) { for i in out.indices { out[i] += r * Double(v[i]) } }
        return out.map { Float($0) }
    }
}

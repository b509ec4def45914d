import SurgeonCompute
import SurgeonModel

/// Which units of which source layer a merged layer kept.
public struct KeptUnits: Sendable, Codable, Equatable {
    /// Intermediate channels (rows of gate/up, columns of down), ascending.
    public var ffnChannels: [Int]
    /// KV groups (a KV head with its G query heads and their o_proj columns), ascending.
    public var kvGroups: [Int]
}

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
    /// steps are replayed); `ratios` weight the vectors that cannot be concatenated.
    public static func merge(_ layers: [DecoderLayerWeights], ratios: [Double], kept: [KeptUnits],
                             config c: ModelConfig, norms: NormRule) -> DecoderLayerWeights {
        let h = c.hiddenSize, d = c.headDim, g = c.numAttentionHeads / c.numKeyValueHeads
        let qWidth = c.numAttentionHeads * d, f = c.intermediateSize

        var merged = layers[0]
        // Attention: a KV group is K/V rows [j·d, (j+1)·d), q rows of heads jG..<(j+1)G, and
        // the o_proj columns behind those heads. Query heads keep their order inside the
        // group, so merged query head j'·G + i still reads merged KV head j'.
        let kvRows = zip(layers, kept).map { w, k in k.kvGroups.map { j in (w, (j * d)..<((j + 1) * d)) } }.flatMap { $0 }
        let qRows = zip(layers, kept).map { w, k in k.kvGroups.map { j in (w, (j * g * d)..<((j + 1) * g * d)) } }.flatMap { $0 }
        merged.q = gatherRows(qRows.map { ($0.0.q, $0.1) }, width: h)
        merged.k = gatherRows(kvRows.map { ($0.0.k, $0.1) }, width: h)
        merged.v = gatherRows(kvRows.map { ($0.0.v, $0.1) }, width: h)
        merged.o = gatherColumns(qRows.map { ($0.0.o, $0.1) }, rows: h, width: qWidth)
        if layers[0].qBias != nil {
            merged.qBias = gatherRows(qRows.map { ($0.0.qBias!, $0.1) }, width: 1)
            merged.kBias = gatherRows(kvRows.map { ($0.0.kBias!, $0.1) }, width: 1)
            merged.vBias = gatherRows(kvRows.map { ($0.0.vBias!, $0.1) }, width: 1)
        }
        merged.oBias = weightedSum(layers.map(\.oBias), ratios)
        merged.qNorm = weightedSum(layers.map(\.qNorm), ratios)
        merged.kNorm = weightedSum(layers.map(\.kNorm), ratios)

        // FFN: channel i is row i of gate and up, column i of down.
        let channels = zip(layers, kept).map { w, k in k.ffnChannels.map { i in (w, i..<(i + 1)) } }.flatMap { $0 }
        merged.gate = gatherRows(channels.map { ($0.0.gate, $0.1) }, width: h)
        merged.up = gatherRows(channels.map { ($0.0.up, $0.1) }, width: h)
        merged.down = gatherColumns(channels.map { ($0.0.down, $0.1) }, rows: h, width: f)
        if layers[0].gateBias != nil {
            merged.gateBias = gatherRows(channels.map { ($0.0.gateBias!, $0.1) }, width: 1)
            merged.upBias = gatherRows(channels.map { ($0.0.upBias!, $0.1) }, width: 1)
        }
        merged.downBias = weightedSum(layers.map(\.downBias), ratios)

        if norms == .mean {
            merged.inputNorm = mean(layers.map(\.inputNorm))
            merged.postAttentionNorm = mean(layers.map(\.postAttentionNorm))
        }
        return merged
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

    /// Σ r_t · v_t, or nil when the layers have no such tensor.
    static func weightedSum(_ vectors: [[Float]?], _ ratios: [Double]) -> [Float]? {
        guard let first = vectors[0] else { return nil }
        var out = [Double](repeating: 0, count: first.count)
        for (v, r) in zip(vectors, ratios) { for i in out.indices { out[i] += r * Double(v![i]) } }
        return out.map { Float($0) }
    }
}

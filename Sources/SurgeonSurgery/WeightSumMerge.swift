import Foundation
import SurgeonCompute

/// Weight-sum merging, the family CoMe is compared with (LaCo, MKA): every parameter of
/// the merged layer is Σ cᵢ·Wᵢ over the window's layers. Unlike concatenation, it mixes
/// unrelated channels; it is here as a baseline.
public enum WeightSumMerge {
    /// Where the merged layer's RMSNorm weights come from.
    public enum Norms: Sendable {
        /// The first layer's, unchanged (LaCo merges only the attention and MLP weights).
        case first
        /// Σ cᵢ·normᵢ like every other parameter (MKA fuses whole layers).
        case combined
    }

    public static func merge(_ layers: [DecoderLayerWeights], coefficients c: [Float], norms: Norms) -> DecoderLayerWeights {
        merge(count: layers.count, coefficients: c, norms: norms) { layers[$0] }
    }

    /// The same sum with the layers loaded one at a time by `layer(i)`, so that only the
    /// running sum and one source layer are held (LaCo's groups are four layers deep).
    public static func merge(count: Int, coefficients c: [Float], norms: Norms,
                             layer: (Int) throws -> DecoderLayerWeights) rethrows -> DecoderLayerWeights {
        var summed: [WritableKeyPath<DecoderLayerWeights, [Float]>] = [\.q, \.k, \.v, \.o, \.gate, \.up, \.down]
        var summedOptional: [WritableKeyPath<DecoderLayerWeights, [Float]?>] =
            [\.qBias, \.kBias, \.vBias, \.oBias, \.gateBias, \.upBias, \.downBias]
        if norms == .combined {
            summed += [\.inputNorm, \.postAttentionNorm]
            summedOptional += [\.qNorm, \.kNorm]
        }
        // The sum runs from zero, term by term in layer order: 0 + c₀·W₀ + c₁·W₁ + ….
        func scale(_ out: inout [Float], by ci: Float) {
            out.withUnsafeMutableBufferPointer { o in for i in o.indices { o[i] = 0 + ci * o[i] } }
        }
        func add(_ values: [Float], times ci: Float, to out: inout [Float]) {
            out.withUnsafeMutableBufferPointer { o in for i in o.indices { o[i] += ci * values[i] } }
        }
        var m = try layer(0)
        for path in summed { scale(&m[keyPath: path], by: c[0]) }
        for path in summedOptional where m[keyPath: path] != nil { scale(&m[keyPath: path]!, by: c[0]) }
        for i in 1..<count {
            let w = try layer(i)
            for path in summed { add(w[keyPath: path], times: c[i], to: &m[keyPath: path]) }
            for path in summedOptional where m[keyPath: path] != nil { add(w[keyPath: path]!, times: c[i], to: &m[keyPath: path]!) }
        }
        return m
    }

    /// LaCo's RDSC merge: W* = W₀ + Σᵢ (Wᵢ − W₀), i.e. coefficients (1 − m, 1, …, 1).
    public static func lacoCoefficients(count: Int) -> [Float] {
        [Float(2 - count)] + [Float](repeating: 1, count: count - 1)
    }

    /// MKA's weights for two layers from normalised NPIB scores (shallower first):
    /// e^I/(1 + e^I) and its complement.
    public static func mkaCoefficients(normalizedNPIB i: Double) -> [Float] {
        let a = exp(i) / (1 + exp(i))
        return [Float(a), Float(1 - a)]
    }
}

/// Layer importance by weight magnitude (Magnitude / Magnitude+ baselines).
public enum LayerMagnitude {
    /// Σ|w| over every parameter of the layer (weights, biases, norms).
    public static func importance(_ w: DecoderLayerWeights) -> Double {
        DecoderLayerWeights.Field.allCases.reduce(0.0) { total, field in
            total + (w[field] ?? []).reduce(0.0) { $0 + Double(abs($1)) }
        }
    }
}

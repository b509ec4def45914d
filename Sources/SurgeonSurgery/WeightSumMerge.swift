import Foundation
import SurgeonModel
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
        let summed = LayerField.allCases.filter { field in
            norms == .combined || !LayerTensors.table.contains { $0.field == field && $0.isNorm }
        }
        // The sum runs from zero, term by term in layer order: 0 + c₀·W₀ + c₁·W₁ + ….
        var m = try layer(0)
        for field in summed where m[field] != nil { m[field] = m[field]!.map { 0 + c[0] * $0 } }
        for i in 1..<count {
            let w = try layer(i)
            for field in summed where m[field] != nil {
                w[field]!.withUnsafeBufferPointer { source in
                    m[field]!.withUnsafeMutableBufferPointer { o in for j in o.indices { o[j] += c[i] * source[j] } }
                }
            }
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
        LayerField.allCases.reduce(0.0) { total, field in
            total + (w[field] ?? []).reduce(0.0) { $0 + Double(abs($1)) }
        }
    }
}

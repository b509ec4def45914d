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
        func sum(_ pick: (DecoderLayerWeights) -> [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: pick(layers[0]).count)
            for (w, ci) in zip(layers, c) {
                let values = pick(w)
                for i in out.indices { out[i] += ci * values[i] }
            }
            return out
        }
        func optionalSum(_ pick: (DecoderLayerWeights) -> [Float]?) -> [Float]? {
            pick(layers[0]) == nil ? nil : sum { pick($0)! }
        }
        var m = layers[0]
        m.q = sum(\.q); m.k = sum(\.k); m.v = sum(\.v); m.o = sum(\.o)
        m.qBias = optionalSum(\.qBias); m.kBias = optionalSum(\.kBias)
        m.vBias = optionalSum(\.vBias); m.oBias = optionalSum(\.oBias)
        m.gate = sum(\.gate); m.up = sum(\.up); m.down = sum(\.down)
        m.gateBias = optionalSum(\.gateBias); m.upBias = optionalSum(\.upBias); m.downBias = optionalSum(\.downBias)
        if norms == .combined {
            m.inputNorm = sum(\.inputNorm); m.postAttentionNorm = sum(\.postAttentionNorm)
            m.qNorm = optionalSum(\.qNorm); m.kNorm = optionalSum(\.kNorm)
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
        let arrays: [[Float]?] = [w.inputNorm, w.q, w.k, w.v, w.o, w.qBias, w.kBias, w.vBias, w.oBias, w.qNorm, w.kNorm,
                                  w.postAttentionNorm, w.gate, w.up, w.down, w.gateBias, w.upBias, w.downBias]
        return arrays.reduce(0.0) { total, a in total + (a ?? []).reduce(0.0) { $0 + Double(abs($1)) } }
    }
}

import Foundation

/// How much of each layer in a merge window survives (Alg. 1, ADJUSTRETENTIONRATIOS), and
/// how ratios become whole units.
public enum RetentionRatios {
    /// r_t = BI_t^p / Σ BI^p; if max r_t < ρ, the layer with the largest BI (first on ties)
    /// gets ρ and the others share 1 − ρ in proportion to their r_t. (The upstream code uses
    /// ρ^(1/(count−1)) for windows of more than two layers; we apply ρ as given.)
    public static func adjusted(bi: [Double], p: Double, rho: Double?) -> [Double] {
        let powered = bi.map { pow(max($0, 0), p) }
        let total = powered.reduce(0, +)
        var r = total > 0 ? powered.map { $0 / total } : [Double](repeating: 1 / Double(bi.count), count: bi.count)
        if let rho, let top = r.max(), top < rho {
            let star = bi.firstIndex(of: bi.max()!)!
            let rest = r.enumerated().filter { $0.offset != star }.reduce(0) { $0 + $1.element }
            r = r.enumerated().map { t, value in
                t == star ? rho : (rest > 0 ? (1 - rho) * value / rest : (1 - rho) / Double(r.count - 1))
            }
        }
        return r
    }

    /// k_t = floor(r_t · units) for every layer but the one with the largest r_t (first on
    /// ties), which takes the remainder, so the merged layer keeps exactly `units` units.
    public static func unitCounts(_ ratios: [Double], units: Int) -> [Int] {
        let largest = ratios.firstIndex(of: ratios.max()!)!
        var k = ratios.map { Int(($0 * Double(units)).rounded(.down)) }
        k[largest] = 0
        k[largest] = units - k.reduce(0, +)
        return k
    }

    /// Indices of the `k` highest scores (lower index first on ties), ascending.
    public static func topUnits(_ scores: [Double], k: Int) -> [Int] {
        let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        return order.prefix(k).sorted()
    }
}

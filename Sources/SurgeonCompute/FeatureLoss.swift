import Foundation

/// The distillation loss between a student's and a teacher's hidden states, row by row
/// (one row per token), averaged over rows.
///
/// - `kl`: the paper's symmetric KL between softmaxes over the hidden dimension,
///   KL(p‖q) + KL(q‖p) = Σᵢ (pᵢ − qᵢ)(log pᵢ − log qᵢ), p = softmax(teacher), q = softmax(student).
/// - `mse`: the mean over the hidden dimension of (student − teacher)².
public enum FeatureLoss: String, Sendable, CaseIterable, Codable {
    case kl, mse

    /// The mean loss over `rows`; adds `scale` × d(mean loss)/d(student) into `gradient`.
    public func evaluate(student: UnsafePointer<Float>, teacher: UnsafePointer<Float>, rows: Int, width: Int,
                         gradient: UnsafeMutablePointer<Float>?, scale: Float = 1) -> Double {
        guard rows > 0 else { return 0 }
        var total = 0.0
        let perRow = scale / Float(rows)
        var logP = [Double](repeating: 0, count: width), logQ = logP
        for r in 0..<rows {
            let s = student + r * width, t = teacher + r * width, g = gradient.map { $0 + r * width }
            switch self {
            case .mse:
                var sum = 0.0
                for i in 0..<width {
                    let d = s[i] - t[i]
                    sum += Double(d * d)
                    g?[i] += perRow * 2 * d / Float(width)
                }
                total += sum / Double(width)
            case .kl:
                Self.logSoftmax(t, width, into: &logP)
                Self.logSoftmax(s, width, into: &logQ)
                var loss = 0.0, klQP = 0.0
                for i in 0..<width {
                    let p = exp(logP[i]), q = exp(logQ[i])
                    loss += (p - q) * (logP[i] - logQ[i])
                    klQP += q * (logQ[i] - logP[i])
                }
                total += loss
                // d/ds KL(p‖q) = q − p;  d/ds KL(q‖p) = q ⊙ (log q − log p − KL(q‖p)).
                if let g {
                    for i in 0..<width {
                        let p = exp(logP[i]), q = exp(logQ[i])
                        g[i] += perRow * Float((q - p) + q * (logQ[i] - logP[i] - klQP))
                    }
                }
            }
        }
        return total / Double(rows)
    }

    private static func logSoftmax(_ x: UnsafePointer<Float>, _ n: Int, into out: inout [Double]) {
        var m = -Double.infinity
        for i in 0..<n { m = max(m, Double(x[i])) }
        var sum = 0.0
        for i in 0..<n { sum += exp(Double(x[i]) - m) }
        let shift = m + log(sum)
        for i in 0..<n { out[i] = Double(x[i]) - shift }
    }
}

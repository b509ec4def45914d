import Foundation

/// A least-squares fit y ≈ W·x (+ b) over many rows, accumulated as its normal equations
/// in f64 a block of rows at a time, so the rows themselves are never held:
///
///     G = Σ x xᵀ,  C = Σ y xᵀ,  (G + λ·mean(diag G)·I)·Wᵀ = Cᵀ,  solved by Cholesky.
///
/// With `intercept`, x gets a constant 1 appended and its weight is the bias b; the
/// ridge does not shrink it. G (inputs² f64) is the largest buffer: 1536² for SmolLM2's
/// FFN, 11008² (0.97 GB) for LLaMA-2-7B's.
public final class RidgeRegression {
    public let inputs: Int, outputs: Int, intercept: Bool
    /// Rows accumulated so far.
    public private(set) var rows = 0
    private let width: Int
    private var gram: [Double]
    private var cross: [Double]
    /// Rows converted to f64 per BLAS call: big enough for dsyrk to run near peak, small
    /// enough that the block (≤ 45 MB at 7B shapes) stays far below G.
    static let blockRows = 512

    public struct Solution: Sendable {
        /// W [outputs × inputs] row-major: the layout of a weight matrix (out × in).
        public var weights: [Float]
        public var bias: [Float]?
        /// The relative ridge λ the solve used (larger than asked if G + λ·m·I was not
        /// positive definite at the requested λ).
        public var ridge: Double
    }

    public enum Failure: Error, CustomStringConvertible {
        case noSignal
        case notPositiveDefinite(ridge: Double)

        public var description: String {
            switch self {
            case .noSignal: "the fit's inputs are zero on every calibration token"
            case .notPositiveDefinite(let ridge): "the normal equations stay singular up to ridge \(ridge)"
            }
        }
    }

    public init(inputs: Int, outputs: Int, intercept: Bool) {
        self.inputs = inputs
        self.outputs = outputs
        self.intercept = intercept
        width = inputs + (intercept ? 1 : 0)
        gram = [Double](repeating: 0, count: width * width)
        cross = [Double](repeating: 0, count: outputs * width)
    }

    /// Adds `rows` rows: inputs x[rows × inputs] and targets y = target − base, both
    /// [rows × outputs] (f32, row-major).
    public func add(x: UnsafePointer<Float>, target: UnsafePointer<Float>, minus base: UnsafePointer<Float>, rows: Int) {
        let block = min(Self.blockRows, rows)
        var xs = [Double](repeating: 0, count: block * width)
        var ys = [Double](repeating: 0, count: block * outputs)
        for first in stride(from: 0, to: rows, by: block) {
            let m = min(block, rows - first)
            xs.withUnsafeMutableBufferPointer { xb in
                ys.withUnsafeMutableBufferPointer { yb in
                    for r in 0..<m {
                        let xr = x + (first + r) * inputs, xo = xb.baseAddress! + r * width
                        for i in 0..<inputs { xo[i] = Double(xr[i]) }
                        if intercept { xo[inputs] = 1 }
                        let tr = target + (first + r) * outputs, br = base + (first + r) * outputs
                        let yo = yb.baseAddress! + r * outputs
                        for o in 0..<outputs { yo[o] = Double(tr[o]) - Double(br[o]) }
                    }
                    gram.withUnsafeMutableBufferPointer { BLAS.addGramUpper(xb.baseAddress!, $0.baseAddress!, m: m, n: width) }
                    cross.withUnsafeMutableBufferPointer {
                        BLAS.addTransposedProduct(yb.baseAddress!, xb.baseAddress!, $0.baseAddress!, m: m, n: width, p: outputs)
                    }
                }
            }
        }
        self.rows += rows
    }

    /// The ridge solution for λ = `ridge` (relative to the mean of G's input diagonal).
    /// If the system is not positive definite, λ grows tenfold (and to at least 1e-8)
    /// until it is, at most ten times; `Solution.ridge` says which λ was used. Consumes
    /// the accumulated sums.
    public func solve(ridge: Double) throws -> Solution {
        let n = width
        for i in 0..<n { for j in (i + 1)..<n { gram[j * n + i] = gram[i * n + j] } }
        let diagonal = (0..<n).map { gram[$0 * n + $0] }
        let scale = diagonal[0..<inputs].reduce(0, +) / Double(inputs)
        guard scale > 0, scale.isFinite else { throw Failure.noSignal }
        var lambda = ridge
        for attempt in 0..<11 {
            if attempt > 0 {
                lambda = max(lambda * 10, 1e-8)
                restoreFromLower(diagonal)
            }
            let factored = gram.withUnsafeMutableBufferPointer { g -> Bool in
                for i in 0..<inputs { g[i * n + i] += lambda * scale }
                return BLAS.choleskyUpper(g.baseAddress!, n: n)
            }
            guard factored else { continue }
            gram.withUnsafeBufferPointer { g in
                cross.withUnsafeMutableBufferPointer { BLAS.choleskySolveUpper(g.baseAddress!, $0.baseAddress!, n: n, rhs: outputs) }
            }
            var weights = [Float](repeating: 0, count: outputs * inputs)
            var bias: [Float]? = intercept ? [Float](repeating: 0, count: outputs) : nil
            for o in 0..<outputs {
                for i in 0..<inputs { weights[o * inputs + i] = Float(cross[o * n + i]) }
                bias?[o] = Float(cross[o * n + inputs])
            }
            return Solution(weights: weights, bias: bias, ridge: lambda)
        }
        throw Failure.notPositiveDefinite(ridge: lambda)
    }

    /// dpotrf overwrote the upper triangle (row-major) and the diagonal; the strict lower
    /// triangle, which `solve` mirrored from the upper one dsyrk wrote, still holds G.
    private func restoreFromLower(_ diagonal: [Double]) {
        let n = width
        for i in 0..<n {
            gram[i * n + i] = diagonal[i]
            for j in (i + 1)..<n { gram[i * n + j] = gram[j * n + i] }
        }
    }
}

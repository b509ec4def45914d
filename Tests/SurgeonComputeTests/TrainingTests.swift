import XCTest
@testable import SurgeonCompute
@testable import SurgeonModel

final class FeatureLossTests: XCTestCase {
    /// The analytic gradient of each loss equals central differences of the loss itself.
    func testGradientsMatchFiniteDifferences() {
        var rng = SystemRandomNumberGenerator()
        let rows = 3, width = 7
        let student = (0..<(rows * width)).map { _ in Float.random(in: -2...2, using: &rng) }
        let teacher = (0..<(rows * width)).map { _ in Float.random(in: -2...2, using: &rng) }
        for loss in FeatureLoss.allCases {
            var g = [Float](repeating: 0, count: student.count)
            _ = loss.evaluate(student: student, teacher: teacher, rows: rows, width: width, gradient: &g)
            for i in [0, 5, 11, 20] {
                var plus = student, minus = student
                plus[i] += 1e-2
                minus[i] -= 1e-2
                let fd = (loss.evaluate(student: plus, teacher: teacher, rows: rows, width: width, gradient: nil)
                    - loss.evaluate(student: minus, teacher: teacher, rows: rows, width: width, gradient: nil)) / 2e-2
                XCTAssertEqual(Double(g[i]), fd, accuracy: 1e-3 * max(abs(fd), 1e-2), "\(loss) element \(i)")
            }
        }
    }

    func testIdenticalStatesHaveZeroLossAndGradient() {
        let x: [Float] = [1, -2, 3, 0.5]
        for loss in FeatureLoss.allCases {
            var g = [Float](repeating: 0, count: 4)
            XCTAssertEqual(loss.evaluate(student: x, teacher: x, rows: 1, width: 4, gradient: &g), 0, accuracy: 1e-12)
            XCTAssertEqual(g.map(abs).max()!, 0, accuracy: 1e-7)
        }
    }
}

final class AdamWTests: XCTestCase {
    /// Two steps by hand: m, v, bias corrections and the decoupled decay.
    func testTwoStepsByHand() {
        var w = DecoderLayerWeights()
        w[.inputNorm] = [1, -1]
        var opt = AdamW(like: w, weightDecay: 0.1)
        var g = DecoderLayerWeights()
        g[.inputNorm] = [0.5, -2]
        opt.step(&w, gradients: g, lr: 0.01)
        // Step 1: m̂ = g, v̂ = g², update = g / (|g| + ε) ≈ ±1.
        XCTAssertEqual(w[.inputNorm]![0], 1 - 0.01 * (1 + 0.1 * 1), accuracy: 1e-6)
        XCTAssertEqual(w[.inputNorm]![1], -1 - 0.01 * (-1 + 0.1 * -1), accuracy: 1e-6)
        let w1 = w[.inputNorm]![0]
        g[.inputNorm] = [1, -2]
        opt.step(&w, gradients: g, lr: 0.01)
        let m = 0.9 * 0.05 + 0.1 * 1.0, v = 0.999 * 0.00025 + 0.001 * 1.0
        let update = (m / (1 - 0.81)) / ((v / (1 - 0.998001)).squareRoot() + 1e-8)
        XCTAssertEqual(Double(w[.inputNorm]![0]), Double(w1) - 0.01 * (update + 0.1 * Double(w1)), accuracy: 1e-6)
        XCTAssertEqual(opt.steps, 2)
    }

    func testCosineGoesFromPeakToZero() {
        XCTAssertEqual(cosineRate(peak: 2, step: 0, steps: 10), 2)
        XCTAssertEqual(cosineRate(peak: 2, step: 5, steps: 10), 1, accuracy: 1e-12)
        XCTAssertEqual(cosineRate(peak: 2, step: 10, steps: 10), 0, accuracy: 1e-12)
    }
}

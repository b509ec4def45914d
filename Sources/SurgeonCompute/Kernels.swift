import CVectorMath
import Foundation
import SurgeonModel
import Synchronization

/// Element-wise and row-wise kernels of the forward pass, on row-major buffers.
public enum Kernels {
    /// out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight, for each row of width `n`.
    /// With `offset` 1 the weights are Gemma's: out = x̂ · (1 + weight).
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                               rows: Int, n: Int, eps: Float, offset: Float = 0) {
        // Rows are independent, so they split over the threads (out may be x: row by row in place).
        parallelChunks(rows, minimum: max(1, 16_384 / max(n, 1))) { range in
            for r in range { vm_rms_norm(x + r * n, weight, out + r * n, n, eps, offset) }
        }
    }

    /// gate = gelu_tanh(gate) · up (GeGLU, Gemma), in place.
    public static func geluTanhMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        parallelChunks(count) { range in
            for i in range {
                let g = gate[i]
                gate[i] = 0.5 * g * (1 + tanhf(0.7978845608028654 * (g + 0.044715 * g * g * g))) * up[i]
            }
        }
    }

    /// The backward of a = act(gate) · up: dGate = dA · up · act'(gate), dUp = dA · act(gate).
    /// `dActivated` may be the same buffer as `dGate`.
    public static func gatedActivationBackward(_ activation: FamilyTraits.Activation, gate: UnsafePointer<Float>,
                                               up: UnsafePointer<Float>, dActivated: UnsafePointer<Float>,
                                               dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int) {
        parallelChunks(count) { range in
            for i in range {
                let g = gate[i], da = dActivated[i]
                let value: Float, slope: Float
                switch activation {
                case .silu:
                    let sigmoid = 1 / (1 + expf(-g))
                    value = g * sigmoid
                    slope = sigmoid * (1 + g * (1 - sigmoid))
                case .geluTanh:
                    let c: Float = 0.7978845608028654
                    let t = tanhf(c * (g + 0.044715 * g * g * g))
                    value = 0.5 * g * (1 + t)
                    slope = 0.5 * (1 + t) + 0.5 * g * (1 - t * t) * c * (1 + 3 * 0.044715 * g * g)
                }
                dUp[i] = da * value
                dGate[i] = da * up[i] * slope
            }
        }
    }

    /// x = tanh(x / cap) · cap over `count` values (Gemma 2's soft-capping).
    public static func softcap(_ x: UnsafeMutablePointer<Float>, count: Int, cap: Float) {
        for i in 0..<count { x[i] = tanhf(x[i] / cap) * cap }
    }

    /// Softmax over entries from..<to of a row, in place; the rest of its `width` set to 0.
    public static func softmaxWindow(_ row: UnsafeMutablePointer<Float>, from: Int, to: Int, width: Int) {
        for j in 0..<from { row[j] = 0 }
        softmaxPrefix(row + from, length: to - from, width: width - from)
    }

    /// x[r] += bias for each row.
    public static func addBias(_ x: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, n: Int) {
        for r in 0..<rows {
            let xr = x + r * n
            for i in 0..<n { xr[i] += bias[i] }
        }
    }

    /// x += y, element-wise over `count`.
    public static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { x[i] += y[i] }
    }

    /// gate = silu(gate) · up (SwiGLU), in place.
    public static func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        parallelChunks(count) { VectorMath.siluMul(gate, up, range: $0) }
    }

    /// Threads for the element-wise work between sgemm calls (OpenBLAS parallelises only
    /// its own calls; left alone, the exp-heavy loops would run on one core).
    public static var threads: Int { ComputeSettings.threads }

    /// Runs `body` over `count` indices split into one contiguous range per thread; small
    /// counts stay on the calling thread.
    public static func parallelChunks(_ count: Int, minimum: Int = 16_384, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, max(1, count / minimum))
        if parts <= 1 { return body(0..<count) }
        // Each range is written by one thread only; callers pass disjoint-range work.
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            body((p * count / parts)..<((p + 1) * count / parts))
        }
    }

    /// Runs `body(item, worker)` for items 0..<count on `threads` workers numbered from 0,
    /// each taking the next item not yet taken, with OpenBLAS held to one thread meanwhile
    /// so that the workers' own sgemm calls are what share the cores.
    public static func parallelItems(_ count: Int, _ body: (_ item: Int, _ worker: Int) -> Void) {
        let workers = min(threads, count)
        if workers <= 1 { return (0..<count).forEach { body($0, 0) } }
        let next = ItemCounter()
        nonisolated(unsafe) let body = body
        BLAS.singleThreaded {
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                while case let item = next.take(), item < count { body(item, worker) }
            }
        }
    }

    /// Softmax over the first `length` entries of a row, in place (the rest are set to 0).
    public static func softmaxPrefix(_ row: UnsafeMutablePointer<Float>, length: Int, width: Int) {
        VectorMath.softmaxPrefix(row, length: length, width: width)
    }

    /// log Σ exp(row) over `n` entries, computed stably.
    public static func logSumExp(_ row: UnsafePointer<Float>, n: Int) -> Double {
        let m = VectorMath.maximum(row, count: n)
        return Double(m) + log(VectorMath.sumExp(row, count: n, shift: m))
    }
}

/// The shared "next item" of `Kernels.parallelItems`.
private final class ItemCounter: Sendable {
    private let value = Atomic<Int>(0)
    func take() -> Int { value.add(1, ordering: .relaxed).oldValue }
}

import Foundation
import SurgeonModel

/// AdamW (Loshchilov & Hutter; PyTorch's `torch.optim.AdamW` update) over one decoder
/// layer's parameters, with f32 first and second moments shaped like the weights:
///
///     m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  w ← w − lr·(m̂ / (√v̂ + ε) + λ·w)
///
/// where m̂ = m / (1−β₁ᵗ), v̂ = v / (1−β₂ᵗ) and λ the (decoupled) weight decay.
public struct AdamW: Sendable {
    public static let beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8

    public var weightDecay: Float
    public private(set) var m: DecoderLayerWeights
    public private(set) var v: DecoderLayerWeights
    /// Updates taken so far (t).
    public private(set) var steps: Int

    public init(like weights: DecoderLayerWeights, weightDecay: Float = 0.01) {
        self.weightDecay = weightDecay
        m = .zeros(like: weights)
        v = .zeros(like: weights)
        steps = 0
    }

    /// An optimiser restored from a checkpoint.
    public init(m: DecoderLayerWeights, v: DecoderLayerWeights, steps: Int, weightDecay: Float) {
        self.m = m
        self.v = v
        self.steps = steps
        self.weightDecay = weightDecay
    }

    /// One update of every field of `weights` by `gradients` at learning rate `lr`.
    public mutating func step(_ weights: inout DecoderLayerWeights, gradients: DecoderLayerWeights, lr: Float) {
        steps += 1
        let c1 = 1 - powf(Self.beta1, Float(steps)), c2 = 1 - powf(Self.beta2, Float(steps))
        let (b1, b2, eps, decay) = (Self.beta1, Self.beta2, Self.epsilon, weightDecay)
        for field in weights.fields {
            guard let g = gradients[field] else { continue }
            g.withUnsafeBufferPointer { g in
                m[field]!.withUnsafeMutableBufferPointer { m in
                    v[field]!.withUnsafeMutableBufferPointer { v in
                        weights[field]!.withUnsafeMutableBufferPointer { w in
                            for i in 0..<w.count {
                                m[i] = b1 * m[i] + (1 - b1) * g[i]
                                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                                let update = (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                                w[i] -= lr * (update + decay * w[i])
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Cosine decay from `peak` at step 0 to 0 after `steps` steps.
public func cosineRate(peak: Double, step: Int, steps: Int) -> Double {
    guard steps > 1 else { return peak }
    return peak * 0.5 * (1 + cos(Double.pi * Double(step) / Double(steps)))
}

import Foundation
import SurgeonModel

/// Rotary position embedding in HF's `rotate_half` convention: dimension i of a head
/// is rotated with dimension i + d/2 by angle position · invFreq[i].
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    public private(set) var invFreq: [Float]
    /// `longrope` (Phi-3): the frequencies for sequences longer than `shortContext`
    /// positions, and the scale of cos and sin.
    public private(set) var longInvFreq: [Float]?
    public private(set) var shortContext = Int.max
    public private(set) var attentionFactor: Float = 1

    public init(config: ModelConfig) {
        let headDim = config.headDim
        self.headDim = headDim
        let base = (0..<(headDim / 2)).map { i in pow(config.ropeTheta, Double(2 * i) / Double(headDim)) }
        var freq = base.map { Float(1 / $0) }
        if let s = config.ropeScaling, s.ropeType == "longrope" || s.ropeType == "su",
           let short = s.shortFactor, let long = s.longFactor, short.count == base.count, long.count == base.count {
            // transformers' _compute_longrope_parameters, with the dynamic switch to the long
            // factors once a forward covers more than the original context.
            let context = RopeScaling.longropeContext(config)
            freq = zip(base, short).map { Float(1 / ($1 * $0)) }
            longInvFreq = zip(base, long).map { Float(1 / ($1 * $0)) }
            shortContext = context.original
            attentionFactor = Float(context.attentionFactor)
        } else if let s = config.ropeScaling {
            freq = RotaryEmbedding.scaled(freq, s)
        }
        invFreq = freq
    }

    /// The embedding of a checkpoint: from its config, and for a GGUF written by llama.cpp's
    /// converter with llama3 scaling, from its `rope_freqs` tensor (the divisor of each
    /// inverse frequency; GGUF has no keys for the scaling parameters).
    public init(checkpoint: Checkpoint) {
        self.init(config: checkpoint.config)
        if let stored = checkpoint.unmappedTensors.first(where: { $0.name == "rope_freqs.weight" }),
           stored.elementCount == headDim / 2 {
            let factors = CheckpointTensor(name: stored.name, stored: stored).decodeF32()
            invFreq = zip(invFreq, factors).map { $0 / $1 }
        }
    }

    /// transformers' `rope_init_fn`s: llama3 smooths between factor-scaled low
    /// frequencies and unscaled high ones; linear divides every frequency by the factor.
    static func scaled(_ freq: [Float], _ s: RopeScaling) -> [Float] {
        switch s.ropeType {
        case "llama3":
            guard let factor = s.factor, let low = s.lowFreqFactor, let high = s.highFreqFactor,
                  let original = s.originalMaxPositionEmbeddings else { return freq }
            let lowWavelen = Double(original) / low, highWavelen = Double(original) / high
            return freq.map { f in
                let wavelen = 2 * Double.pi / Double(f)
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return Float(Double(f) / factor) }
                let smooth = (Double(original) / wavelen - low) / (high - low)
                return Float((1 - smooth) * Double(f) / factor + smooth * Double(f))
            }
        case "linear":
            guard let factor = s.factor else { return freq }
            return freq.map { Float(Double($0) / factor) }
        default:
            return freq
        }
    }

    /// Whether a forward over positions 0..<to uses other frequencies than one over 0..<from.
    public func switchesToLongContext(from: Int, to: Int) -> Bool {
        longInvFreq != nil && from > 0 && from <= shortContext && to > shortContext
    }

    /// cos and sin tables for positions 0..<count: [count × d/2] each. A forward over
    /// `count` positions uses the long `longrope` factors when count exceeds the original
    /// context, as transformers does.
    public func tables(count: Int, offset: Int = 0) -> (cos: [Float], sin: [Float]) {
        let half = headDim / 2
        let freq = count + offset > shortContext ? longInvFreq ?? invFreq : invFreq
        var c = [Float](repeating: 0, count: count * half), s = c
        for p in 0..<count {
            for i in 0..<half {
                let angle = Float(p + offset) * freq[i]
                c[p * half + i] = cos(angle) * attentionFactor
                s[p * half + i] = sin(angle) * attentionFactor
            }
        }
        return (c, s)
    }

    /// Rotates `heads` heads of each row in place; row r has position `positions(r)`.
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, rowStride: Int,
                      cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, position: (Int) -> Int) {
        let half = headDim / 2
        for r in 0..<rows {
            let p = position(r)
            let c = cos + p * half, s = sin + p * half
            for h in 0..<heads {
                let v = x + r * rowStride + h * headDim
                for i in 0..<half {
                    let a = v[i], b = v[i + half]
                    v[i] = a * c[i] - b * s[i]
                    v[i + half] = b * c[i] + a * s[i]
                }
            }
        }
    }
}

import SurgeonModel

/// What a decoder layer's forward keeps for its backward: the layer input, q/k before their
/// norms (Qwen3), q/k after RoPE, v, the head outputs, the projections before Gemma 2's
/// output norms, the residual between the blocks, and gate and up before the activation.
/// Everything else (the normed inputs, act(gate)·up, the attention weights) is recomputed:
/// it costs one elementwise pass or one score sgemm, and the weights alone would take
/// heads × T² floats per layer.
public final class LayerTape {
    public enum Slot: Int, CaseIterable {
        case input, qBeforeNorm, kBeforeNorm, q, k, v, attention, attentionProjection, residual, gate, up, mlpProjection
    }

    private let buffers = Slot.allCases.map { _ in ScratchBuffer() }
    /// Tokens per sequence of the recorded forward.
    public private(set) var lengths: [Int] = []
    private var used = [Int](repeating: 0, count: Slot.allCases.count)

    public init() {}

    func begin(lengths: [Int]) {
        self.lengths = lengths
        used = used.map { _ in 0 }
    }

    func record(_ slot: Slot, _ x: UnsafePointer<Float>, count: Int) {
        buffers[slot.rawValue].reserve(count)
        buffers[slot.rawValue].pointer.update(from: x, count: count)
        used[slot.rawValue] = count
    }

    func pointer(_ slot: Slot) -> UnsafeMutablePointer<Float> { buffers[slot.rawValue].pointer }

    /// Bytes the last forward recorded.
    public var byteCount: Int { 4 * used.reduce(0, +) }
}

/// Scratch buffers of the backward pass, reused across layers.
public final class BackwardWorkspace {
    let normed = ScratchBuffer(), dNormed = ScratchBuffer(), dOutput = ScratchBuffer()
    let dq = ScratchBuffer(), dk = ScratchBuffer(), dv = ScratchBuffer(), dAttention = ScratchBuffer()
    let activated = ScratchBuffer(), dGate = ScratchBuffer(), dUp = ScratchBuffer()
    let weights = ScratchBuffer(), dWeights = ScratchBuffer(), capped = ScratchBuffer()
    let keyPanels = ScratchBuffer()

    public init() {}

    func reserve(rows: Int, longest: Int, shape s: LayerShape) {
        for (buffer, width) in [(normed, s.hidden), (dNormed, s.hidden), (dOutput, s.hidden), (dq, s.qWidth),
                                (dk, s.kvWidth), (dv, s.kvWidth), (dAttention, s.qWidth), (activated, s.intermediate),
                                (dGate, s.intermediate), (dUp, s.intermediate)] {
            buffer.reserve(rows * width)
        }
        let block = min(longest, DecoderLayer.causalBlock) * longest
        for buffer in [weights, dWeights, capped] { buffer.reserve(block) }
    }
}

extension DecoderLayer {
    /// The backward of `forward`, from what `tape` recorded: on entry `dx` holds dL/d(output),
    /// on return dL/d(input). With `gradients` (zeros or earlier sums, shaped like `w`),
    /// dL/dW of every field is added to it; without (a frozen layer) only dx is computed,
    /// which skips half the sgemms. The steps undo the forward's in reverse:
    ///
    ///     dh = dx + norm'(h)ᵀ · [gate'ᵀ · (act'(gate) · up · downᵀdz) + up'ᵀ · (act(gate) · downᵀdz)]
    ///     dx = dh + norm'(x)ᵀ · [qᵀ · rope⁻¹(dq) + kᵀ · rope⁻¹(dk) + vᵀ · dv],  (dq, dk, dv) = attention'(oᵀ · dz)
    ///
    /// where dz is d(output) through Gemma 2's output norm (itself elsewhere).
    public static func backward(_ w: DecoderLayerWeights, shape s: LayerShape, rope: RotaryEmbedding,
                                ropeTables: (cos: [Float], sin: [Float]), tape: LayerTape,
                                dx: UnsafeMutablePointer<Float>, gradients: inout DecoderLayerWeights?, layer: Int = 0,
                                workspace ws: BackwardWorkspace) {
        let lengths = tape.lengths, rows = lengths.reduce(0, +), longest = lengths.max() ?? 0
        ws.reserve(rows: rows, longest: longest, shape: s)
        let n = ws.normed.pointer, dn = ws.dNormed.pointer, dz = ws.dOutput.pointer
        let positions = lengths.flatMap { Array(0..<$0) }

        // MLP block: x = h + post(down(act(gate(n)) · up(n))), n = norm(h).
        let h = tape.pointer(.residual)
        let dOut = outputNormBackward(w, .mlpOutputNorm, tape.pointer(.mlpProjection), dx, into: dz,
                                      rows: rows, shape: s, gradients: &gradients)
        let activated = ws.activated.pointer, gate = tape.pointer(.gate), up = tape.pointer(.up)
        activated.update(from: gate, count: rows * s.intermediate)
        switch s.activation {
        case .silu: Kernels.siluMul(activated, up, count: rows * s.intermediate)
        case .geluTanh: Kernels.geluTanhMul(activated, up, count: rows * s.intermediate)
        }
        let dGate = ws.dGate.pointer, dUp = ws.dUp.pointer
        linearBackward(dOut, activated, w, .down, bias: .downBias, dx: dGate, rows: rows, out: s.hidden, in: s.intermediate,
                       gradients: &gradients)
        Kernels.gatedActivationBackward(s.activation, gate: gate, up: up, dActivated: dGate, dGate: dGate, dUp: dUp,
                                        count: rows * s.intermediate)
        norm(h, w, .mlpNorm, n, rows: rows, width: s.hidden, eps: s.eps, offset: s.normOffset)
        linearBackward(dGate, n, w, .gate, bias: .gateBias, dx: dn, rows: rows, out: s.intermediate, in: s.hidden,
                       gradients: &gradients)
        linearBackward(dUp, n, w, .up, bias: .upBias, dx: dn, rows: rows, out: s.intermediate, in: s.hidden,
                       accumulate: true, gradients: &gradients)
        normBackward(h, w, .mlpNorm, dn, into: dx, accumulate: true, rows: rows, width: s.hidden, shape: s,
                     gradients: &gradients)

        // Attention block: h = x + post(o(attention(rope(q(n)), rope(k(n)), v(n)))), n = norm(x).
        let x = tape.pointer(.input)
        let dAttnOut = outputNormBackward(w, .attentionOutputNorm, tape.pointer(.attentionProjection), dx, into: dz,
                                          rows: rows, shape: s, gradients: &gradients)
        let dAttention = ws.dAttention.pointer, dq = ws.dq.pointer, dk = ws.dk.pointer, dv = ws.dv.pointer
        linearBackward(dAttnOut, tape.pointer(.attention), w, .o, bias: .oBias, dx: dAttention, rows: rows,
                       out: s.hidden, in: s.qWidth, gradients: &gradients)
        dk.update(repeating: 0, count: rows * s.kvWidth)
        dv.update(repeating: 0, count: rows * s.kvWidth)
        var first = 0
        for t in lengths {
            causalAttentionBackward(q: tape.pointer(.q) + first * s.qWidth, keys: tape.pointer(.k) + first * s.kvWidth,
                                    values: tape.pointer(.v) + first * s.kvWidth, dOut: dAttention + first * s.qWidth,
                                    dq: dq + first * s.qWidth, dk: dk + first * s.kvWidth, dv: dv + first * s.kvWidth,
                                    queries: t, shape: s, window: s.window(layer: w.sourceLayer ?? layer), workspace: ws)
            first += t
        }
        // RoPE is a rotation (times longrope's attention factor): its transpose turns by -angle.
        let negatedSin = ropeTables.sin.map { -$0 }
        ropeTables.cos.withUnsafeBufferPointer { c in
            negatedSin.withUnsafeBufferPointer { sn in
                rope.apply(dq, rows: rows, heads: s.heads, rowStride: s.qWidth, cos: c.baseAddress!, sin: sn.baseAddress!) { positions[$0] }
                rope.apply(dk, rows: rows, heads: s.kvHeads, rowStride: s.kvWidth, cos: c.baseAddress!, sin: sn.baseAddress!) { positions[$0] }
            }
        }
        if w[.qNorm] != nil {
            normBackward(tape.pointer(.qBeforeNorm), w, .qNorm, dq, into: dq, rows: rows * s.heads, width: s.headDim,
                         shape: s, offset: 0, gradients: &gradients)
            normBackward(tape.pointer(.kBeforeNorm), w, .kNorm, dk, into: dk, rows: rows * s.kvHeads, width: s.headDim,
                         shape: s, offset: 0, gradients: &gradients)
        }
        norm(x, w, .inputNorm, n, rows: rows, width: s.hidden, eps: s.eps, offset: s.normOffset)
        linearBackward(dq, n, w, .q, bias: .qBias, dx: dn, rows: rows, out: s.qWidth, in: s.hidden, gradients: &gradients)
        linearBackward(dk, n, w, .k, bias: .kBias, dx: dn, rows: rows, out: s.kvWidth, in: s.hidden, accumulate: true,
                       gradients: &gradients)
        linearBackward(dv, n, w, .v, bias: .vBias, dx: dn, rows: rows, out: s.kvWidth, in: s.hidden, accumulate: true,
                       gradients: &gradients)
        normBackward(x, w, .inputNorm, dn, into: dx, accumulate: true, rows: rows, width: s.hidden, shape: s,
                     gradients: &gradients)
    }

    /// d(projection) from d(output) through Gemma 2's output norm `field` (into `scratch`),
    /// or d(output) itself when the layer has no such norm.
    static func outputNormBackward(_ w: DecoderLayerWeights, _ field: LayerField, _ projection: UnsafePointer<Float>,
                                   _ dOutput: UnsafeMutablePointer<Float>, into scratch: UnsafeMutablePointer<Float>,
                                   rows: Int, shape s: LayerShape, gradients: inout DecoderLayerWeights?) -> UnsafeMutablePointer<Float> {
        guard w[field] != nil else { return dOutput }
        normBackward(projection, w, field, dOutput, into: scratch, rows: rows, width: s.hidden, shape: s, gradients: &gradients)
        return scratch
    }

    /// For y = x̂ · (w + offset), x̂ = x / rms(x): dx (= or +=) (w+offset)·dy/rms − x̂ · mean(x̂ · (w+offset) · dy)/rms,
    /// and dw += Σ_rows dy · x̂. `dy` and `dx` may be the same buffer.
    static func normBackward(_ x: UnsafePointer<Float>, _ w: DecoderLayerWeights, _ field: LayerField,
                             _ dy: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                             rows: Int, width: Int, shape s: LayerShape, offset: Float? = nil,
                             gradients: inout DecoderLayerWeights?) {
        let offset = offset ?? s.normOffset, eps = s.eps
        // One pass per row: dw (when the layer trains) and dx share its rms.
        func rowsBackward(_ dw: UnsafeMutablePointer<Float>?) {
            w[field]!.withUnsafeBufferPointer { weight in
                let weight = weight.baseAddress!
                for r in 0..<rows {
                    let xr = x + r * width, dyr = dy + r * width, dxr = dx + r * width
                    let inv = 1 / (rowMeanSquare(xr, width) + eps).squareRoot()
                    var dot: Float = 0
                    for i in 0..<width {
                        dw?[i] += dyr[i] * xr[i] * inv
                        dot += dyr[i] * (weight[i] + offset) * xr[i]
                    }
                    let correction = dot * inv * inv * inv / Float(width)
                    for i in 0..<width {
                        let d = dyr[i] * (weight[i] + offset) * inv - xr[i] * correction
                        dxr[i] = accumulate ? dxr[i] + d : d
                    }
                }
            }
        }
        if gradients != nil {
            gradients![field]!.withUnsafeMutableBufferPointer { rowsBackward($0.baseAddress!) }
        } else {
            rowsBackward(nil)
        }
    }

    static func rowMeanSquare(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var sum: Float = 0
        for i in 0..<n { sum += x[i] * x[i] }
        return sum / Float(n)
    }

    /// For y = x · Wᵀ + b: dx (= or +=) dy · W, and with gradients dW += dyᵀ · x, db += Σ_rows dy.
    static func linearBackward(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: DecoderLayerWeights,
                               _ field: LayerField, bias: LayerField, dx: UnsafeMutablePointer<Float>,
                               rows: Int, out n: Int, in k: Int, accumulate: Bool = false,
                               gradients: inout DecoderLayerWeights?) {
        w[field]!.withUnsafeBufferPointer {
            BLAS.matmul(dy, $0.baseAddress!, dx, m: rows, n: k, k: n, beta: accumulate ? 1 : 0)
        }
        guard gradients != nil else { return }
        gradients![field]!.withUnsafeMutableBufferPointer {
            BLAS.matmulTransposedA(dy, x, $0.baseAddress!, m: n, n: k, k: rows, beta: 1)
        }
        if w[bias] != nil {
            gradients![bias]!.withUnsafeMutableBufferPointer { db in
                for r in 0..<rows {
                    for j in 0..<n { db[j] += dy[r * n + j] }
                }
            }
        }
    }

    /// The backward of `causalAttention` for one sequence without a cache: dq is written,
    /// dk and dv (zeroed by the caller) are summed into over the query heads of each group.
    /// For each head and block, with P the attention weights (recomputed) and S the capped
    /// scores: dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)) · cap'(S),
    /// dQ = scale · dS·K, dK += scale · dSᵀ·Q.
    static func causalAttentionBackward(q: UnsafePointer<Float>, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>,
                                        dOut: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>,
                                        dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                        queries t: Int, shape s: LayerShape, window: Int?, workspace ws: BackwardWorkspace) {
        let p = ws.weights.pointer, dp = ws.dWeights.pointer
        let capped = s.attentionSoftcap == nil ? nil : ws.capped.pointer
        let hd = s.headDim
        // The forward's scores, to the bit: the same kernel for as many queries.
        let panels = KeyPanels(keys: k, count: t, queries: t, shape: s, into: ws.keyPanels)
        for h in 0..<s.heads {
            let kv = h / s.groupSize, qh = q + h * hd, kh = k + kv * hd, vh = v + kv * hd
            for first in stride(from: 0, to: t, by: causalBlock) {
                let rows = min(causalBlock, t - first), keys = first + rows
                let qRows = qh + first * s.qWidth, dORows = dOut + first * s.qWidth + h * hd
                attentionWeights(q: qRows, keys: kh, panels: panels?.head(kv), into: p, rows: rows, past: first,
                                 shape: s, window: window, capped: capped)
                BLAS.matmulTransposedA(p, dORows, dv + kv * hd, m: keys, n: hd, k: rows, lda: keys, ldb: s.qWidth,
                                       ldc: s.kvWidth, beta: 1)
                BLAS.matmulTransposed(dORows, vh, dp, m: rows, n: keys, k: hd, lda: s.qWidth, ldb: s.kvWidth, ldc: keys)
                Kernels.parallelChunks(rows, minimum: 32) { chunk in
                    for i in chunk {
                        let pr = p + i * keys, dpr = dp + i * keys, length = first + i + 1
                        var dot: Float = 0
                        for j in 0..<length { dot += pr[j] * dpr[j] }
                        for j in 0..<length { dpr[j] = pr[j] * (dpr[j] - dot) }
                        for j in length..<keys { dpr[j] = 0 }
                        if let cap = s.attentionSoftcap, let capped {
                            let cr = capped + i * keys
                            for j in 0..<length {
                                let y = cr[j] / cap
                                dpr[j] *= 1 - y * y
                            }
                        }
                    }
                }
                BLAS.matmul(dp, kh, dq + first * s.qWidth + h * hd, m: rows, n: hd, k: keys, lda: keys, ldb: s.kvWidth,
                            ldc: s.qWidth, alpha: s.attentionScale)
                BLAS.matmulTransposedA(dp, qRows, dk + kv * hd, m: keys, n: hd, k: rows, lda: keys, ldb: s.qWidth,
                                       ldc: s.kvWidth, alpha: s.attentionScale, beta: 1)
            }
        }
    }
}

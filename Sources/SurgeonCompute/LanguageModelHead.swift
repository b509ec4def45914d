import Foundation
import SurgeonFormats
import SurgeonModel

/// Token embeddings in, and the final norm and vocabulary projection out.
///
/// Neither the embedding table nor the head is held as f32: embedding rows are decoded
/// per token, and the head is applied a slice of the vocabulary at a time (an online
/// log-sum-exp), so memory stays at one slice whatever the vocabulary size.
public struct LanguageModelHead: Sendable {
    /// Rows of the vocabulary per slice: 9 MB of f32 weights on SmolLM2, as fast as 8192
    /// rows and half the memory (CoMe-P and SLEB score every candidate through it).
    public static let vocabularySlice = 4096

    public let embedding: CheckpointTensor
    public let output: CheckpointTensor
    public let finalNorm: [Float]
    public let hidden: Int
    public let vocabulary: Int
    public let eps: Float
    /// Family facts (FamilyTraits): the final norm's weight offset, the embedding scale
    /// (√hidden for Gemma) and the final-logit soft cap.
    public let normOffset: Float
    public let embeddingScale: Float?
    public let logitSoftcap: Float?

    public init(checkpoint: Checkpoint) throws {
        func tensor(_ name: String) throws -> CheckpointTensor {
            guard let t = checkpoint.tensor(name) else {
                throw FormatError(.inconsistent, path: checkpoint.path, "missing tensor '\(name)'")
            }
            return t
        }
        embedding = try tensor("model.embed_tokens.weight")
        output = checkpoint.config.tieWordEmbeddings ? embedding : try tensor("lm_head.weight")
        let norm = try tensor("model.norm.weight")
        finalNorm = norm.decodeF32()
        hidden = checkpoint.config.hiddenSize
        vocabulary = output.shape[0]
        eps = Float(checkpoint.config.rmsNormEps)
        let traits = checkpoint.family.traits
        normOffset = traits.normWeightOffset
        embeddingScale = traits.scalesEmbeddings ? Float(Double(hidden).squareRoot()) : nil
        logitSoftcap = checkpoint.config.finalLogitSoftcapping.map { Float($0) }
    }

    /// out = the final RMSNorm of `rows` rows of x (in place when out == x).
    public func normalize(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rows: Int) {
        finalNorm.withUnsafeBufferPointer {
            Kernels.rmsNorm(x, $0.baseAddress!, out, rows: rows, n: hidden, eps: eps, offset: normOffset)
        }
    }

    /// Applies the final soft cap, if the family has one, to `count` logits.
    public func capLogits(_ logits: UnsafeMutablePointer<Float>, count: Int) {
        if let cap = logitSoftcap { Kernels.softcap(logits, count: count, cap: cap) }
    }

    /// Rows of the embedding table for `tokens`, written to `out` ([tokens × hidden]).
    public func embed(_ tokens: ArraySlice<Int>, into out: UnsafeMutablePointer<Float>) {
        for (i, t) in tokens.enumerated() {
            embedding.decodeRows(t..<(t + 1), into: out + i * hidden)
            if let scale = embeddingScale {
                for j in 0..<hidden { out[i * hidden + j] *= scale }
            }
        }
        embedding.release()
    }

    /// Negative log-likelihood of `targets[r]` under the logits of row r of `hidden`
    /// (the last layer's output, before the final norm). A target of -1 is not scored (0).
    ///
    /// Only scored rows go through the head: llama.cpp's protocol scores half of each
    /// window, and the head is a fifth of a small model's FLOPs.
    public func negativeLogLikelihood(_ x: UnsafePointer<Float>, rows: Int, targets: [Int]) -> [Double] {
        let started = Profile.now()
        defer { Profile.add(.head, since: started) }
        let scored = targets.indices.filter { targets[$0] >= 0 }
        var nll = [Double](repeating: 0, count: rows)
        guard !scored.isEmpty else { return nll }
        let n = scored.count
        let normed = UnsafeMutablePointer<Float>.allocate(capacity: n * hidden)
        defer { normed.deallocate() }
        for (i, r) in scored.enumerated() { (normed + i * hidden).update(from: x + r * hidden, count: hidden) }
        normalize(normed, into: normed, rows: n)
        // An online log-sum-exp over the vocabulary slices, per scored row.
        var maxLogit = [Float](repeating: -.infinity, count: n)
        var sumExp = [Double](repeating: 0, count: n)
        var targetLogit = [Float](repeating: 0, count: n)
        maxLogit.withUnsafeMutableBufferPointer { maxLogit in
            sumExp.withUnsafeMutableBufferPointer { sumExp in
                targetLogit.withUnsafeMutableBufferPointer { targetLogit in
                    forEachSlice(normed, rows: n) { logits, vocab in
                        // Rows are independent: split them over threads (the exps dominate).
                        Kernels.parallelChunks(n, minimum: 8) { chunk in
                            for i in chunk {
                                let row = logits + i * vocab.count
                                let m = max(maxLogit[i], VectorMath.maximum(row, count: vocab.count))
                                let carried = maxLogit[i] == -.infinity ? 0 : sumExp[i] * Double(exp(maxLogit[i] - m))
                                sumExp[i] = carried + VectorMath.sumExp(row, count: vocab.count, shift: m)
                                maxLogit[i] = m
                                let t = targets[scored[i]]
                                if vocab.contains(t) { targetLogit[i] = row[t - vocab.lowerBound] }
                            }
                        }
                    }
                }
            }
        }
        for (i, r) in scored.enumerated() {
            nll[r] = Double(maxLogit[i]) + log(sumExp[i]) - Double(targetLogit[i])
        }
        return nll
    }

    /// Full logits [rows × vocabulary] of `x` (the last layer's output).
    public func logits(_ x: UnsafePointer<Float>, rows: Int) -> [Float] {
        let started = Profile.now()
        defer { Profile.add(.head, since: started) }
        let normed = UnsafeMutablePointer<Float>.allocate(capacity: rows * hidden)
        defer { normed.deallocate() }
        normalize(x, into: normed, rows: rows)
        var out = [Float](repeating: 0, count: rows * vocabulary)
        out.withUnsafeMutableBufferPointer { all in
            forEachSlice(normed, rows: rows) { logits, vocab in
                for r in 0..<rows {
                    (all.baseAddress! + r * vocabulary + vocab.lowerBound).update(from: logits + r * vocab.count, count: vocab.count)
                }
            }
        }
        return out
    }

    /// Calls `body` with [rows × slice] logits for each slice of the vocabulary.
    private func forEachSlice(_ normed: UnsafePointer<Float>, rows: Int,
                              _ body: (UnsafePointer<Float>, Range<Int>) -> Void) {
        let slice = min(Self.vocabularySlice, vocabulary)
        let weights = UnsafeMutablePointer<Float>.allocate(capacity: slice * hidden)
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: rows * slice)
        defer { weights.deallocate(); logits.deallocate() }
        var start = 0
        while start < vocabulary {
            let vocab = start..<min(start + slice, vocabulary)
            output.decodeRows(vocab, into: weights)
            output.release(rows: vocab)
            BLAS.matmulTransposed(normed, weights, logits, m: rows, n: vocab.count, k: hidden)
            capLogits(logits, count: rows * vocab.count)
            body(logits, vocab)
            start = vocab.upperBound
        }
        output.release()
    }
}

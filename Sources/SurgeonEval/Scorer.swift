import Foundation
import SurgeonModel

/// lm-eval's `loglikelihood` for the requests of one item: the summed log-probability of
/// the continuation tokens, and whether each was the greedy choice.
public struct ChoiceScore: Sendable, Codable {
    public let logLikelihood: Double
    public let greedy: Bool
    public let continuationTokens: Int
    /// log p of each continuation token (for peers that normalise differently, e.g. llama.cpp).
    public let tokenLogProbs: [Double]
}

/// Tokenizes requests the way lm-eval's HFLM does and scores them on an `EvalModel`,
/// running the part shared by all choices once when prefix reuse is on.
public final class Scorer {
    public let model: EvalModel
    public let tokenizer: Tokenizer
    public var prefixReuse: Bool
    /// Prepend BOS to every context (lm-eval v0.4's HFLM does not by default).
    public var addBos = false
    /// Token counts: what a plain run would feed, and what was actually fed.
    public private(set) var requestTokens = 0, forwardedTokens = 0

    public init(model: EvalModel, tokenizer: Tokenizer, prefixReuse: Bool = true) {
        self.model = model
        self.tokenizer = tokenizer
        self.prefixReuse = prefixReuse
    }

    /// lm-eval `_encode_pair`: trailing spaces of the context move to the continuation; the
    /// pair is encoded whole and the continuation is what follows the context's own tokens.
    public func encodePair(_ request: Request) -> (context: [Int], continuation: [Int]) {
        Self.encodePair(request, tokenizer: tokenizer, addBos: addBos)
    }

    public static func encodePair(_ request: Request, tokenizer: Tokenizer, addBos: Bool) -> (context: [Int], continuation: [Int]) {
        var context = request.context, continuation = request.continuation
        let trimmed = context.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        if trimmed.count < context.count {
            continuation = String(context.dropFirst(trimmed.count)) + continuation
            context = trimmed
        }
        let bos = addBos ? [tokenizer.bosId].compactMap { $0 } : []
        if context.isEmpty {
            // lm-eval scores a context-free continuation after the end-of-text token.
            return ([tokenizer.eosId ?? 0], tokenizer.encode(continuation))
        }
        let whole = bos + tokenizer.encode(context + continuation)
        let contextIds = bos + tokenizer.encode(context)
        return (contextIds, Array(whole.dropFirst(contextIds.count)))
    }

    public func score(_ requests: [Request]) throws -> [ChoiceScore] {
        // Model input per choice: (context + continuation)[-(max+1):][:-1]; the last
        // `continuation.count` positions predict the continuation.
        var inputs: [[Int]] = [], targets: [[Int]] = []
        for r in requests {
            let (ctx, cont) = encodePair(r)
            guard !cont.isEmpty else { throw EvalError.emptyRequest(task: r.continuation, item: 0) }
            let all = Array((ctx + cont).suffix(model.maxLength + 1))
            inputs.append(Array(all.dropLast()))
            targets.append(cont)
        }
        let starts = zip(inputs, targets).map { $0.count - $1.count }  // first scored position
        requestTokens += inputs.reduce(0) { $0 + $1.count }

        // Shared prefix: the common start of every input, but no further than each choice's
        // first scored position + 1 (that position's logits come from the prefix's last row).
        var shared = 0
        if prefixReuse {
            shared = inputs.dropFirst().reduce(inputs[0].count) { n, input in
                zip(inputs[0].prefix(n), input).prefix { $0 == $1 }.count
            }
            shared = min(shared, starts.min()! + 1)
        }
        let prefix = shared > 0 ? model.prefix(Array(inputs[0].prefix(shared))) : nil
        let segments = inputs.map { Array($0.dropFirst(shared)) }
        forwardedTokens += shared + segments.reduce(0) { $0 + $1.count }
        let hidden = model.run(segments, after: prefix)

        // Gather the hidden row of every scored position, then one head product for all.
        let width = model.transformer.shape.hidden
        var rows: [Float] = [], flatTargets: [Int] = []
        var segmentStart = 0
        for (i, input) in inputs.enumerated() {
            for position in starts[i]..<input.count {
                if let prefix, position == shared - 1 {
                    rows += prefix.lastHidden
                } else {
                    let r = segmentStart + position - shared
                    rows += hidden[(r * width)..<((r + 1) * width)]
                }
            }
            flatTargets += targets[i]
            segmentStart += segments[i].count
        }
        let scored = model.logProbabilities(rows, targets: flatTargets)
        var offset = 0
        return targets.map { t in
            let part = scored[offset..<(offset + t.count)]
            offset += t.count
            return ChoiceScore(logLikelihood: part.reduce(0) { $0 + $1.logProb }, greedy: part.allSatisfy(\.greedy),
                               continuationTokens: t.count, tokenLogProbs: part.map(\.logProb))
        }
    }
}

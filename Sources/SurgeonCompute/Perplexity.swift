import Foundation
import SurgeonModel

/// Perplexity of a model on a token stream, in non-overlapping windows of `context` tokens.
public enum Perplexity {
    public enum ScoringProtocol: String, Sendable, CaseIterable {
        /// The CoMe paper's code: loss on every token after the first of each window.
        case come
        /// `llama-perplexity`: BOS replaces the first token of each chunk (when the
        /// vocabulary adds BOS), loss on the second half of each chunk only.
        case llamaCpp = "llama.cpp"
    }

    public struct Options: Sendable {
        public var context = 512
        public var maxWindows: Int?
        public var scoring: ScoringProtocol = .come
        /// Windows run through the layers together (one weight load per layer per batch).
        public var batchWindows = 16
        public var memoryBudget = 2 << 30
        public init() {}
    }

    public struct Result: Sendable, Codable {
        public let perplexity: Double
        public let meanNLL: Double
        public let windows: Int
        public let scoredTokens: Int
        public let totalTokens: Int
        public let seconds: Double
        /// Tokens run through the model per second (all window tokens, scored or not).
        public var tokensPerSecond: Double { Double(windows * context) / seconds }
        public let context: Int
        public let scoring: String
    }

    /// The windows and, for each window position, the id it must predict (-1: not scored).
    public static func windows(_ ids: [Int], options: Options, bosId: Int?, addsBos: Bool)
        -> (inputs: [[Int]], targets: [[Int]]) {
        let n = options.context
        var count = ids.count / n
        if let limit = options.maxWindows { count = min(count, limit) }
        var inputs: [[Int]] = [], targets: [[Int]] = []
        for w in 0..<count {
            var window = Array(ids[(w * n)..<((w + 1) * n)])
            var target = [Int](repeating: -1, count: n)
            switch options.scoring {
            case .come:
                for j in 0..<(n - 1) { target[j] = window[j + 1] }
            case .llamaCpp:
                for j in (n / 2)..<(n - 1) { target[j] = window[j + 1] }
                if addsBos, let bos = bosId { window[0] = bos }
            }
            inputs.append(window)
            targets.append(target)
        }
        return (inputs, targets)
    }

    public static func evaluate(_ executor: StreamingExecutor, ids: [Int], options: Options, bosId: Int?, addsBos: Bool,
                                progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        let start = Date()
        let (inputs, targets) = windows(ids, options: options, bosId: bosId, addsBos: addsBos)
        var nll = 0.0, scored = 0
        var done = 0
        for batchStart in stride(from: 0, to: inputs.count, by: options.batchWindows) {
            let batch = batchStart..<min(batchStart + options.batchWindows, inputs.count)
            let states = try executor.embed(Array(inputs[batch]))
            try executor.run(states, layers: 0..<executor.layerCount)
            let (sum, count) = try executor.negativeLogLikelihood(states, targets: Array(targets[batch]))
            nll += sum
            scored += count
            done += batch.count
            progress?(done, inputs.count)
        }
        let mean = scored > 0 ? nll / Double(scored) : .nan
        return Result(perplexity: exp(mean), meanNLL: mean, windows: inputs.count, scoredTokens: scored,
                      totalTokens: ids.count, seconds: Date().timeIntervalSince(start), context: options.context,
                      scoring: options.scoring.rawValue)
    }
}

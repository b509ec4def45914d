import Foundation

/// A metric's value over the items, with lm-eval's standard error (sample standard
/// deviation / sqrt(n)); perplexity has none here (lm-eval bootstraps it).
public struct MetricValue: Sendable, Codable {
    public let value: Double
    public let stderr: Double?
}

public struct TaskResult: Sendable, Codable {
    public let task: String
    public let items: Int
    public let fewshot: Int
    public let mainMetric: String
    public let metrics: [String: MetricValue]
    public let seconds: Double
    /// Tokens lm-eval would feed (every choice with its context) and tokens actually fed.
    public let requestTokens: Int
    public let forwardedTokens: Int
    public var main: Double { metrics[mainMetric]?.value ?? .nan }
}

/// Per-item outcome, kept so metrics are computed from the same numbers the tests see.
public struct ItemOutcome: Sendable, Codable {
    public let scores: [ChoiceScore]
    public let gold: Int
    public let acc: Bool
    public let accNorm: Bool
}

public enum Evaluator {
    /// acc: argmax of ll; acc_norm: argmax of ll / len(choice) (ties go to the first, as numpy's argmax).
    public static func outcome(_ scores: [ChoiceScore], gold: Int, lengths: [Int]) -> ItemOutcome {
        func argmax(_ xs: [Double]) -> Int { xs.indices.reduce(0) { xs[$1] > xs[$0] ? $1 : $0 } }
        let ll = scores.map(\.logLikelihood)
        let norm = zip(ll, lengths).map { $0 / Double(max($1, 1)) }
        return ItemOutcome(scores: scores, gold: gold, acc: argmax(ll) == gold, accNorm: argmax(norm) == gold)
    }

    public static func run(_ task: EvalTask, items: [EvalItem], fewshot: Int, scorer: Scorer,
                           progress: ((Int, Int) -> Void)? = nil) throws -> (TaskResult, [ItemOutcome]) {
        let start = Date()
        let requestBefore = scorer.requestTokens, forwardedBefore = scorer.forwardedTokens
        var outcomes: [ItemOutcome] = []
        for (i, item) in items.enumerated() {
            let scores: [ChoiceScore]
            do { scores = try scorer.score(item.requests) } catch EvalError.emptyRequest {
                throw EvalError.emptyRequest(task: task.rawValue, item: i)
            }
            if task == .lambada {
                outcomes.append(ItemOutcome(scores: scores, gold: 0, acc: scores[0].greedy, accNorm: scores[0].greedy))
            } else {
                outcomes.append(outcome(scores, gold: item.gold, lengths: item.choiceLengths))
            }
            progress?(i + 1, items.count)
        }
        var metrics: [String: MetricValue] = [:]
        for name in task.metrics {
            switch name {
            case "acc": metrics[name] = meanWithError(outcomes.map { $0.acc ? 1 : 0 })
            case "acc_norm": metrics[name] = meanWithError(outcomes.map { $0.accNorm ? 1 : 0 })
            case "perplexity":
                // lm-eval: exp(-mean of each item's summed log-likelihood).
                let mean = outcomes.map { $0.scores[0].logLikelihood }.reduce(0, +) / Double(max(outcomes.count, 1))
                metrics[name] = MetricValue(value: exp(-mean), stderr: nil)
            default: break
            }
        }
        let result = TaskResult(task: task.rawValue, items: items.count, fewshot: fewshot, mainMetric: task.mainMetric,
                                metrics: metrics, seconds: Date().timeIntervalSince(start),
                                requestTokens: scorer.requestTokens - requestBefore,
                                forwardedTokens: scorer.forwardedTokens - forwardedBefore)
        return (result, outcomes)
    }

    /// Mean and sample std / sqrt(n) (lm-eval's mean_stderr).
    public static func meanWithError(_ xs: [Double]) -> MetricValue {
        let n = Double(xs.count)
        guard n > 0 else { return MetricValue(value: .nan, stderr: nil) }
        let mean = xs.reduce(0, +) / n
        guard n > 1 else { return MetricValue(value: mean, stderr: nil) }
        let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        return MetricValue(value: mean, stderr: (variance / n).squareRoot())
    }

    /// Mean of the tasks' main metrics (LAMBADA counts with its accuracy).
    public static func average(_ results: [TaskResult]) -> Double {
        results.isEmpty ? .nan : results.map(\.main).reduce(0, +) / Double(results.count)
    }
}

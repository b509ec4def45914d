/// One scoring request as lm-eval builds it: ll(context, continuation).
public struct Request: Sendable, Codable {
    public let context: String
    public let continuation: String
    public init(context: String, continuation: String) {
        self.context = context
        self.continuation = continuation
    }
}

/// One question: a request per choice (one for LAMBADA) and the gold index.
public struct EvalItem: Sendable {
    public var requests: [Request]
    public let gold: Int
    /// Python `len` of each choice without the target delimiter (acc_norm's divisor).
    public let choiceLengths: [Int]
    /// The item as a solved few-shot example: its gold context, " ", its gold answer.
    public let solved: String
    /// MMLU subject, nil elsewhere.
    public let subject: String?

    public init(requests: [Request], gold: Int, choices: [String], solved: String, subject: String? = nil) {
        self.requests = requests
        self.gold = gold
        choiceLengths = choices.map { $0.unicodeScalars.count }
        self.solved = solved
        self.subject = subject
    }
}

/// The tasks `eval` knows, by lm-eval name (lambada is lm-eval's lambada_openai).
public enum EvalTask: String, CaseIterable, Sendable, Codable {
    case arcEasy = "arc_easy", arcChallenge = "arc_challenge", hellaswag, openbookqa, piqa, winogrande, boolq,
         lambada, mmlu

    /// The metric layer-pruning papers usually report (SOURCES.md); the average uses it.
    public var mainMetric: String {
        switch self {
        case .hellaswag, .arcChallenge, .openbookqa: return "acc_norm"
        default: return "acc"
        }
    }

    /// Metrics reported: acc_norm only where lm-eval's task reports it.
    public var metrics: [String] {
        switch self {
        case .arcEasy, .arcChallenge, .hellaswag, .openbookqa, .piqa: return ["acc", "acc_norm"]
        case .winogrande, .boolq, .mmlu: return ["acc"]
        case .lambada: return ["acc", "perplexity"]
        }
    }

    /// lm-eval's default shots: 5 for MMLU, 0 elsewhere.
    public var defaultFewshot: Int { self == .mmlu ? 5 : 0 }

    /// Loads up to `limit` items (per subject for MMLU, as lm-eval applies --limit to each
    /// MMLU subtask) with `fewshot` solved examples prepended to every context.
    public func load(_ source: DataSource, limit: Int?, fewshot: Int, seed: UInt64) throws -> [EvalItem] {
        if self == .mmlu { return try MMLU.load(source, limit: limit, fewshot: fewshot) }
        let all: [EvalItem]
        switch self {
        case .arcEasy: all = try ARC.load(source, file: "arc_easy/arc_easy.llmfoundry.jsonl")
        case .arcChallenge: all = try ARC.load(source, file: "arc_challenge/arc_challenge.llmfoundry.jsonl")
        case .openbookqa: all = try OpenBookQA.load(source)
        case .piqa: all = try PIQA.load(source)
        case .winogrande: all = try Winogrande.load(source)
        case .boolq: all = try BoolQ.load(source)
        case .lambada: all = try Lambada.load(source)
        case .hellaswag: all = try HellaSwag.load(source)
        case .mmlu: all = []
        }
        let count = min(limit ?? all.count, all.count)
        guard fewshot > 0 else { return Array(all[..<count]) }
        // No training split is shipped, so examples are drawn from the same split, never the
        // item itself (lm-eval's fallback when a task has only a test split).
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            var others = Array(0..<all.count).filter { $0 != i }
            rng.shuffle(&others)
            let prefix = others.prefix(fewshot).map { all[$0].solved }.joined(separator: "\n\n") + "\n\n"
            var item = all[i]
            item.requests = item.requests.map { Request(context: prefix + $0.context, continuation: $0.continuation) }
            return item
        }
    }
}

/// A small seeded generator, so few-shot draws are the same on every platform and run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func shuffle(_ a: inout [Int]) { a.shuffle(using: &self) }
}

/// Helpers shared by the loaders.
enum Rows {
    /// Non-empty lines of a JSONL file decoded as `T`, with 1-based line numbers in errors.
    static func jsonl<T: Decodable>(_ source: DataSource, _ file: String, as: T.Type) throws -> (rows: [T], path: String) {
        let (text, path) = try source.text(file)
        let decoder = JSONDecoder()
        var rows: [T] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy(\.isWhitespace) {
            do { rows.append(try decoder.decode(T.self, from: Data(line.utf8))) } catch {
                throw EvalError.malformed(file: path, line: i + 1, reason: "not a \(T.self) row: \(shortReason(error))")
            }
        }
        return (rows, path)
    }

    static func shortReason(_ error: Error) -> String {
        if case DecodingError.keyNotFound(let key, _) = error { return "missing key '\(key.stringValue)'" }
        if case DecodingError.typeMismatch(let type, let context) = error {
            return "expected \(type) at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        }
        return "invalid JSON"
    }

    /// A multiple-choice item with continuation " " + choice for every choice.
    static func multipleChoice(context: String, choices: [String], gold: Int, subject: String? = nil) -> EvalItem {
        EvalItem(requests: choices.map { Request(context: context, continuation: " " + $0) }, gold: gold,
                 choices: choices, solved: context + " " + choices[gold], subject: subject)
    }

    static func check(_ gold: Int, _ count: Int, _ path: String, _ line: Int) throws {
        guard gold >= 0, gold < count else {
            throw EvalError.malformed(file: path, line: line, reason: "gold \(gold) outside 0..<\(count)")
        }
    }
}

import Foundation

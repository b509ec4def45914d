import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SurgeonEval
import SurgeonModel

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Zero-/few-shot accuracy on standard tasks, scored as lm-evaluation-harness v0.4 does.",
        discussion: """
        Each choice is scored by the summed log-probability of its continuation given its \
        context (lm-eval's loglikelihood, same tokenization of the pair). acc takes the best \
        choice; acc_norm divides by the choice's length in characters first. LAMBADA counts an \
        item right when every target token is the greedy one and also reports perplexity; MMLU \
        uses lm-eval's prompt, 5-shot from the dev split by default (--num-fewshot). Standard \
        errors are sample std / sqrt(n). The average is over each task's main metric (acc_norm \
        for hellaswag, arc_challenge and openbookqa; acc elsewhere).

        The task data ships inside the tool (zstd copies, sources and licences in \
        Sources/SurgeonEval/Resources); --data DIR reads another folder with the same layout. \
        --limit N takes the first N items of each task (of each MMLU subject, as lm-eval \
        does). The context shared by all choices of an item is run once and each \
        continuation runs on its KV cache. With several models (or --compare), they are \
        printed side by side with the retained performance of each against the first.

        Examples:
          ckpt-surgeon eval SmolLM2-135M-Instruct.Q4_1.gguf --tasks arc_easy,hellaswag --limit 200
          ckpt-surgeon eval SmolLM2-135M-Instruct.Q4_1.gguf --tasks mmlu --limit 5 --json
          ckpt-surgeon eval SmolLM2-135M-Instruct.Q4_1.gguf smollm2-21 --limit 100 --mmlu-limit 1
          ckpt-surgeon eval model.gguf --tasks piqa --show-requests 2
        """)

    @Argument(help: "Models (HF folder, .safetensors or .gguf); the first is the reference for retained performance.")
    var models: [String]

    @Option(parsing: .singleValue, help: "Another model to compare with the first (repeatable).")
    var compare: [String] = []

    @Option(help: "Comma-separated tasks: \(EvalTask.allCases.map(\.rawValue).joined(separator: ",")).")
    var tasks: String = EvalTask.allCases.map(\.rawValue).joined(separator: ",")

    @Option(help: "First N items of each task (of each MMLU subject).")
    var limit: Int?

    @Option(help: "First N questions of each MMLU subject (default: --limit).")
    var mmluLimit: Int?

    @Option(help: "Solved examples before each item (default: 5 for mmlu, 0 elsewhere).")
    var numFewshot: Int?

    @Option(help: "Seed for drawing few-shot examples (tasks other than mmlu).")
    var seed: UInt64 = 1234

    @Option(help: "Folder with the task files in the original layout (default: the shipped copy).")
    var data: String?

    @Flag(help: "Prepend BOS to each context (lm-eval's HF backend does not by default).")
    var bos = false

    @Flag(help: "Print results as JSON.")
    var json = false

    @Option(help: "Print the first N items' requests and token ids of each task (of each MMLU subject), then stop.")
    var showRequests: Int?

    @Flag(help: ArgumentHelp("Include every item's per-choice log-likelihoods in --json output.", visibility: .hidden))
    var perItem = false

    @Flag(help: ArgumentHelp("Run every choice from scratch instead of reusing the shared context's KV cache (for benchmarks).",
                             visibility: .hidden))
    var noPrefixReuse = false

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let mmluLimit, mmluLimit < 1 { throw ValidationError("--mmlu-limit must be at least 1") }
        if let numFewshot, numFewshot < 0 { throw ValidationError("--num-fewshot must be 0 or more") }
    }

    func selectedTasks() throws -> [EvalTask] {
        try tasks.split(separator: ",").map { name in
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard let task = EvalTask(rawValue: trimmed == "lambada_openai" ? "lambada" : trimmed) else {
                throw EvalError.unknownTask(trimmed)
            }
            return task
        }
    }

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        MallocPolicy.keepLargeBuffers()
        let selected = try selectedTasks()
        let source = try data.map { DataSource(folder: $0) } ?? DataSource.bundled()
        var loaded: [(EvalTask, [EvalItem], Int)] = []
        for task in selected {
            let shots = numFewshot ?? task.defaultFewshot
            let taskLimit = showRequests ?? (task == .mmlu ? mmluLimit ?? limit : limit)
            loaded.append((task, try task.load(source, limit: taskLimit, fewshot: shots, seed: seed), shots))
        }
        if let showRequests {
            try printRequests(loaded, count: showRequests)
            return
        }
        var reports: [ModelReport] = []
        for path in models + compare {
            reports.append(try evaluate(path, loaded))
        }
        if json {
            try printJSON(EvalReport(models: reports, retained: reports.count > 1 ? retained(reports) : nil))
        } else {
            printTable(reports)
        }
    }

    func evaluate(_ path: String, _ loaded: [(EvalTask, [EvalItem], Int)]) throws -> ModelReport {
        let checkpoint = try Checkpoint.open(path)
        try checkpoint.validate()
        let tokenizer = try TokenizerLoader.load(for: checkpoint)
        let scorer = Scorer(model: try EvalModel(checkpoint: checkpoint), tokenizer: tokenizer, prefixReuse: !noPrefixReuse)
        scorer.addBos = bos
        var results: [TaskResult] = [], perItemOutcomes: [String: [ItemOutcome]] = [:]
        let name = URL(fileURLWithPath: path).lastPathComponent
        for (task, items, shots) in loaded {
            let bar = ProgressBar(label: "eval \(name) \(task.rawValue)", unit: "items")
            let (result, outcomes) = try Evaluator.run(task, items: items, fewshot: shots, scorer: scorer, progress: bar.update)
            bar.finish()
            results.append(result)
            if perItem { perItemOutcomes[task.rawValue] = outcomes }
        }
        let report = ModelReport(model: path, prefixReuse: !noPrefixReuse, tasks: results,
                                 average: Evaluator.average(results), outcomes: perItem ? perItemOutcomes : nil)
        FileHandle.standardError.write(Data(String(
            format: "eval %@: %d items in %.1f s (%.2f items/s, %.0f request tokens/s, %.0f forwarded tokens/s)\n",
            name, report.items, report.seconds, report.itemsPerSecond, report.requestTokensPerSecond,
            report.forwardedTokensPerSecond).utf8))
        return report
    }

    func retained(_ reports: [ModelReport]) -> [RetainedRow] {
        let base = reports[0]
        return reports.dropFirst().map { r in
            var perTask: [String: Double] = [:]
            for (a, b) in zip(base.tasks, r.tasks) { perTask[a.task] = b.main / a.main }
            return RetainedRow(model: r.model, tasks: perTask, average: r.average / base.average)
        }
    }

    func printRequests(_ loaded: [(EvalTask, [EvalItem], Int)], count: Int) throws {
        let tokenizer = try TokenizerLoader.load(for: try Checkpoint.open(models[0]))
        var out: [RequestDump] = []
        for (task, items, _) in loaded {
            // MMLU was already cut to `count` per subject by the loader (--limit's meaning there).
            for (i, item) in (task == .mmlu ? items : Array(items.prefix(count))).enumerated() {
                let ids = item.requests.map { Scorer.encodePair($0, tokenizer: tokenizer, addBos: bos) }
                out.append(RequestDump(task: task.rawValue, index: i, gold: item.gold, subject: item.subject,
                                       requests: item.requests, choiceLengths: item.choiceLengths,
                                       contextIds: ids.map(\.context), continuationIds: ids.map(\.continuation)))
            }
        }
        if json {
            try printJSON(out)
        } else {
            for d in out {
                print("== \(d.task) #\(d.index) gold \(d.gold)")
                for r in d.requests { print("context: \(r.context.debugDescription)\ncontinuation: \(r.continuation.debugDescription)") }
            }
        }
    }

    func printTable(_ reports: [ModelReport]) {
        let names = reports.map { URL(fileURLWithPath: $0.model).lastPathComponent }
        let width = max(10, names.map(\.count).max()! + 2)
        if reports.count == 1 {
            print(pad("task", 15) + pad("shots", 7) + pad("items", 7) + pad("metric", 12) + pad("value", 10) + "stderr")
            for t in reports[0].tasks {
                for (name, m) in t.metrics.sorted(by: { $0.key < $1.key }) {
                    let mark = name == t.mainMetric ? "*" : ""
                    print(pad(t.task, 15) + pad("\(t.fewshot)", 7) + pad("\(t.items)", 7) + pad(name + mark, 12)
                          + pad(String(format: "%.4f", m.value), 10) + (m.stderr.map { String(format: "± %.4f", $0) } ?? ""))
                }
            }
            print(pad("average*", 41) + String(format: "%.4f", reports[0].average))
            print("(* main metric, averaged)")
            return
        }
        var header = pad("task", 15) + pad("metric", 12)
        for n in names { header += pad(n, width) }
        for n in names.dropFirst() { header += pad("retained " + n, width + 9) }
        print(header.trimmingTrailingSpaces)
        for (i, t) in reports[0].tasks.enumerated() {
            for name in t.metrics.keys.sorted() {
                let mark = name == t.mainMetric ? "*" : ""
                var line = pad(t.task, 15) + pad(name + mark, 12)
                for r in reports {
                    let m = r.tasks[i].metrics[name]!
                    line += pad(String(format: "%.4f", m.value) + (m.stderr.map { String(format: "±%.3f", $0) } ?? ""), width)
                }
                if name == t.mainMetric {
                    for r in reports.dropFirst() {
                        line += pad(String(format: "%.1f%%", 100 * r.tasks[i].main / t.main), width + 9)
                    }
                }
                print(line.trimmingTrailingSpaces)
            }
        }
        var line = pad("average*", 27)
        for r in reports { line += pad(String(format: "%.4f", r.average), width) }
        for r in reports.dropFirst() { line += pad(String(format: "%.1f%%", 100 * r.average / reports[0].average), width + 9) }
        print(line.trimmingTrailingSpaces)
        print("(* main metric: averaged, and retained = model / first model)")
    }
}

extension String {
    var trimmingTrailingSpaces: String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

struct ModelReport: Encodable {
    let model: String
    let prefixReuse: Bool
    let tasks: [TaskResult]
    let average: Double
    let outcomes: [String: [ItemOutcome]]?
    var items: Int { tasks.reduce(0) { $0 + $1.items } }
    var seconds: Double { tasks.reduce(0) { $0 + $1.seconds } }
    var itemsPerSecond: Double { Double(items) / seconds }
    var requestTokensPerSecond: Double { Double(tasks.reduce(0) { $0 + $1.requestTokens }) / seconds }
    var forwardedTokensPerSecond: Double { Double(tasks.reduce(0) { $0 + $1.forwardedTokens }) / seconds }

    enum CodingKeys: String, CodingKey {
        case model, prefixReuse, tasks, average, outcomes, items, seconds, itemsPerSecond, requestTokensPerSecond,
             forwardedTokensPerSecond
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(prefixReuse, forKey: .prefixReuse)
        try c.encode(tasks, forKey: .tasks)
        try c.encode(average, forKey: .average)
        try c.encodeIfPresent(outcomes, forKey: .outcomes)
        try c.encode(items, forKey: .items)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(itemsPerSecond, forKey: .itemsPerSecond)
        try c.encode(requestTokensPerSecond, forKey: .requestTokensPerSecond)
        try c.encode(forwardedTokensPerSecond, forKey: .forwardedTokensPerSecond)
    }
}

struct RetainedRow: Encodable {
    let model: String
    let tasks: [String: Double]
    let average: Double
}

struct EvalReport: Encodable {
    let models: [ModelReport]
    let retained: [RetainedRow]?
}

struct RequestDump: Encodable {
    let task: String
    let index: Int
    let gold: Int
    let subject: String?
    let requests: [Request]
    let choiceLengths: [Int]
    let contextIds: [[Int]]
    let continuationIds: [[Int]]
}

/// WinoGrande with lm-eval's partial scoring: the context differs per option (sentence up
/// to "_" with the option filled in), the continuation " " + rest is shared, and only the
/// continuation is scored.
enum Winogrande {
    struct Row: Decodable { let context_options: [String]; let continuation: String; let gold: Int }

    static func load(_ source: DataSource) throws -> [EvalItem] {
        let (rows, path) = try Rows.jsonl(source, "winogrande/winogrande.llmfoundry.jsonl", as: Row.self)
        return try rows.enumerated().map { i, row in
            try Rows.check(row.gold, row.context_options.count, path, i + 1)
            let continuation = " " + row.continuation
            return EvalItem(requests: row.context_options.map { Request(context: $0, continuation: continuation) },
                            gold: row.gold, choices: row.context_options,
                            solved: row.context_options[row.gold] + continuation)
        }
    }
}

/// LAMBADA (OpenAI's detokenized test): ll(context, " " + last word); acc when every target
/// token is the greedy choice.
enum Lambada {
    struct Row: Decodable { let context: String; let continuation: String }

    static func load(_ source: DataSource) throws -> [EvalItem] {
        let (rows, _) = try Rows.jsonl(source, "lambada/lambada_openai.llmfoundry.jsonl", as: Row.self)
        return rows.map { row in
            EvalItem(requests: [Request(context: row.context, continuation: " " + row.continuation)], gold: 0,
                     choices: [row.continuation], solved: row.context + " " + row.continuation)
        }
    }
}

/// ARC-Easy / ARC-Challenge from llm-foundry's re-export: `{"query":"Question: q","choices":[4],"gold"}`.
/// lm-eval's prompt is "Question: q\nAnswer:", continuation " " + choice.
enum ARC {
    struct Row: Decodable { let query: String; let choices: [String]; let gold: Int }

    static func load(_ source: DataSource, file: String) throws -> [EvalItem] {
        let (rows, path) = try Rows.jsonl(source, file, as: Row.self)
        return try rows.enumerated().map { i, row in
            try Rows.check(row.gold, row.choices.count, path, i + 1)
            let (choices, gold) = dedup(row.choices, gold: row.gold)
            return Rows.multipleChoice(context: row.query + "\nAnswer:", choices: choices, gold: gold)
        }
    }

    /// llm-foundry padded 3-option items to 4 by repeating a choice: keep each text's first
    /// occurrence and find the gold answer again by its text.
    static func dedup(_ choices: [String], gold: Int) -> ([String], Int) {
        var kept: [String] = []
        for c in choices where !kept.contains(c) { kept.append(c) }
        return (kept, kept.firstIndex(of: choices[gold])!)
    }
}

/// OpenBookQA: the question stem as-is (no "Question:"), continuation " " + choice.
enum OpenBookQA {
    static func load(_ source: DataSource) throws -> [EvalItem] {
        let (rows, path) = try Rows.jsonl(source, "openbookqa/openbook_qa.llmfoundry.jsonl", as: ARC.Row.self)
        return try rows.enumerated().map { i, row in
            try Rows.check(row.gold, row.choices.count, path, i + 1)
            return Rows.multipleChoice(context: row.query, choices: row.choices, gold: row.gold)
        }
    }
}

/// BoolQ: llm-foundry's query is "Passage: p\nQuestion: q?"; lm-eval's prompt is
/// "p\nQuestion: q?\nAnswer:" with continuations " no" / " yes".
enum BoolQ {
    static func load(_ source: DataSource) throws -> [EvalItem] {
        let (rows, path) = try Rows.jsonl(source, "boolq/boolq.llmfoundry.jsonl", as: ARC.Row.self)
        return try rows.enumerated().map { i, row in
            try Rows.check(row.gold, row.choices.count, path, i + 1)
            guard row.query.hasPrefix("Passage: ") else {
                throw EvalError.malformed(file: path, line: i + 1, reason: "query does not start with 'Passage: '")
            }
            return Rows.multipleChoice(context: String(row.query.dropFirst("Passage: ".count)) + "\nAnswer:",
                                       choices: row.choices, gold: row.gold)
        }
    }
}

/// PIQA from the official release: valid.jsonl `{"goal","sol1","sol2"}` and valid-labels.lst
/// (0/1 per line). Prompt "Question: goal\nAnswer:", continuation " " + sol.
enum PIQA {
    struct Row: Decodable { let goal: String; let sol1: String; let sol2: String }

    static func load(_ source: DataSource) throws -> [EvalItem] {
        let (rows, path) = try Rows.jsonl(source, "piqa/valid.jsonl", as: Row.self)
        let (labelText, labelPath) = try source.text("piqa/valid-labels.lst")
        let labels = labelText.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard labels.count == rows.count else {
            throw EvalError.malformed(file: labelPath, line: labels.count,
                                      reason: "\(labels.count) labels for \(rows.count) rows of \(path)")
        }
        return try zip(rows, labels).enumerated().map { i, pair in
            guard let gold = Int(pair.1), gold == 0 || gold == 1 else {
                throw EvalError.malformed(file: labelPath, line: i + 1, reason: "label '\(pair.1)' is not 0 or 1")
            }
            return Rows.multipleChoice(context: "Question: \(pair.0.goal)\nAnswer:",
                                       choices: [pair.0.sol1, pair.0.sol2], gold: gold)
        }
    }
}

import Foundation

/// MMLU (57 subjects) from CSVs with header question,choice0..3,answer (0-3). lm-eval's
/// prompt: a description line, `shots` dev rows in file order (lm-eval's first_n sampler)
/// each followed by " <letter>\n\n", then the question; continuations " A" … " D".
enum MMLU {
    static let letters = ["A", "B", "C", "D"]

    struct Row { let question: String; let choices: [String]; let answer: Int }

    static func load(_ source: DataSource, limit: Int?, fewshot: Int) throws -> [EvalItem] {
        let subjects = try source.list("mmlu/test").filter { $0.hasSuffix("_test.csv") }
            .map { String($0.dropLast("_test.csv".count)) }
        guard !subjects.isEmpty else { throw EvalError.missingFile(source.root + "/mmlu/test/*_test.csv") }
        var items: [EvalItem] = []
        for subject in subjects {
            var rows = try read(source, "mmlu/test/\(subject)_test.csv")
            if let limit { rows = Array(rows.prefix(limit)) }
            let shots = fewshot > 0 ? Array(try read(source, "mmlu/dev/\(subject)_dev.csv").prefix(fewshot)) : []
            let header = "The following are multiple choice questions (with answers) about "
                + subject.replacingOccurrences(of: "_", with: " ") + ".\n\n"
            let examples = shots.map { block($0) + " " + letters[$0.answer] + "\n\n" }.joined()
            for row in rows {
                let context = header + examples + block(row)
                items.append(EvalItem(requests: letters.map { Request(context: context, continuation: " " + $0) },
                                      gold: row.answer, choices: letters,
                                      solved: block(row) + " " + letters[row.answer], subject: subject))
            }
        }
        return items
    }

    /// "question.strip()\nA. c0\nB. c1\nC. c2\nD. c3\nAnswer:"
    static func block(_ r: Row) -> String {
        r.question.trimmingCharacters(in: .whitespacesAndNewlines) + "\n"
            + zip(letters, r.choices).map { "\($0). \($1)\n" }.joined() + "Answer:"
    }

    static func read(_ source: DataSource, _ file: String) throws -> [Row] {
        let (text, path) = try source.text(file)
        let records = try CSV.parse(text, path: path)
        guard let header = records.first, header.fields == ["question", "choice0", "choice1", "choice2", "choice3", "answer"] else {
            throw EvalError.malformed(file: path, line: 1, reason: "header is not question,choice0..choice3,answer")
        }
        return try records.dropFirst().map { record in
            guard record.fields.count == 6, let answer = Int(record.fields[5]), (0..<4).contains(answer) else {
                throw EvalError.malformed(file: path, line: record.line,
                                          reason: "expected 6 fields ending in an answer 0-3, got \(record.fields.count)")
            }
            return Row(question: record.fields[0], choices: Array(record.fields[1...4]), answer: answer)
        }
    }
}

/// RFC 4180 CSV: quoted fields may hold commas, doubled quotes and newlines.
enum CSV {
    struct Record { let fields: [String]; let line: Int }

    static func parse(_ text: String, path: String) throws -> [Record] {
        var records: [Record] = [], fields: [String] = [], field: [Unicode.Scalar] = []
        var quoted = false, line = 1, recordLine = 1, sawAny = false
        var it = Array(text.unicodeScalars)[...]
        func endField() { fields.append(String(String.UnicodeScalarView(field))); field = [] }
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" { field.append("\""); it.removeFirst() } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"" where field.isEmpty: quoted = true; sawAny = true
            case ",": endField(); sawAny = true
            case "\r": continue
            case "\n":
                if sawAny || !field.isEmpty { endField(); records.append(Record(fields: fields, line: recordLine)) }
                fields = []; sawAny = false
                line += 1; recordLine = line
            default: field.append(c); sawAny = true
            }
        }
        if quoted { throw EvalError.malformed(file: path, line: recordLine, reason: "unterminated quoted field") }
        if sawAny || !field.isEmpty { endField(); records.append(Record(fields: fields, line: recordLine)) }
        return records
    }
}

import Foundation

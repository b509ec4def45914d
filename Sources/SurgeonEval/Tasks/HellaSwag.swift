import Foundation

/// HellaSwag validation in klosax's text form: 6 lines per item (activity label + ": " +
/// context, gold 0-3, four endings). Two fix-ups bring it back to lm-eval's strings
/// (SOURCES.md): ctx_b was left uncapitalised, and 18 lines keep "[...]" tags.
enum HellaSwag {
    static let file = "hellaswag/hellaswag_val_full.txt"

    static func load(_ source: DataSource) throws -> [EvalItem] {
        let (text, path) = try source.text(file)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard lines.count % 6 == 0 else {
            throw EvalError.malformed(file: path, line: lines.count, reason: "\(lines.count) lines, not 6 per item")
        }
        return try stride(from: 0, to: lines.count, by: 6).map { start in
            guard let gold = Int(lines[start + 1]), (0..<4).contains(gold) else {
                throw EvalError.malformed(file: path, line: start + 2, reason: "gold '\(lines[start + 1])' is not 0-3")
            }
            let endings = lines[(start + 2)..<(start + 6)].map(removeTags)
            return Rows.multipleChoice(context: removeTags(capitalizeLastFragment(lines[start])),
                                       choices: endings, gold: gold)
        }
    }

    /// lm-eval builds ctx_a + " " + ctx_b.capitalize(); here ctx_b is the text after the
    /// last ". ", so a lowercase start there gets Python's str.capitalize() (first letter up,
    /// the rest down).
    static func capitalizeLastFragment(_ s: String) -> String {
        guard let range = s.range(of: ". ", options: .backwards) else { return s }
        let fragment = s[range.upperBound...]
        guard let first = fragment.unicodeScalars.first, CharacterSet.lowercaseLetters.contains(first) else { return s }
        return s[..<range.upperBound] + fragment.prefix(1).uppercased() + fragment.dropFirst().lowercased()
    }

    /// re.sub(r"\[.*?\]", "", s): shortest bracketed runs, no nesting, on one line.
    static func removeTags(_ s: String) -> String {
        guard s.contains("[") else { return s }
        var out = "", i = s.startIndex
        while i < s.endIndex {
            if s[i] == "[", let close = s[i...].firstIndex(of: "]") {
                i = s.index(after: close)
            } else {
                out.append(s[i])
                i = s.index(after: i)
            }
        }
        return out
    }
}

/// The regex splits of byte-level BPE tokenizers, as hand-written scanners.
///
/// Each scanner reproduces one pattern alternative by alternative (first match wins, as
/// in a regex alternation), including the `\s+(?!\S)` backtracking that leaves the last
/// space of a run to start the next word:
///
/// - gpt-2:  `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - llama3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// - qwen2:  llama3 with `\p{N}` instead of `\p{N}{1,3}`
/// - smollm: every digit on its own first (`Digits(individual_digits)`), then gpt-2.
enum PreTokenizerSplit {
    enum Class: UInt8 { case letter, number, space, newline, other }

    static func classify(_ s: Unicode.Scalar) -> Class {
        let v = s.value
        if v < 128 {
            switch v {
            case 0x0A, 0x0D: return .newline
            case 0x09, 0x0B, 0x0C, 0x20: return .space
            case 0x30...0x39: return .number
            case 0x41...0x5A, 0x61...0x7A: return .letter
            default: return .other
            }
        }
        if s.properties.isWhitespace { return .space }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Splits `scalars[range]` into pre-tokens (ranges), appending to `out`.
    static func split(_ kind: PreTokenizerKind, _ scalars: [Unicode.Scalar], _ range: Range<Int>, into out: inout [Range<Int>]) {
        let classes = scalars[range].map(classify)
        let base = range.lowerBound
        switch kind {
        case .gpt2:
            gpt2(scalars, classes, base, 0..<classes.count, &out)
        case .smollm:
            // Digits (Rust's `char::is_numeric`: Nd, Nl, No) are isolated first; the text
            // between them goes through gpt-2.
            var start = 0
            for i in 0..<classes.count where classes[i] == .number {
                if start < i { gpt2(scalars, classes, base, start..<i, &out) }
                out.append((base + i)..<(base + i + 1))
                start = i + 1
            }
            if start < classes.count { gpt2(scalars, classes, base, start..<classes.count, &out) }
        case .llama3: llama3(scalars, classes, base, maxDigits: 3, &out)
        case .qwen2: llama3(scalars, classes, base, maxDigits: 1, &out)
        }
    }

    private static func isSpace(_ c: Class) -> Bool { c == .space || c == .newline }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at i; returns the length matched (0 if none).
    private static func contraction(_ scalars: [Unicode.Scalar], _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int {
        guard scalars[i] == "'", i + 1 < end else { return 0 }
        func lower(_ k: Int) -> Unicode.Scalar? {
            guard k < end else { return nil }
            let s = scalars[k]
            return caseInsensitive && s.value >= 65 && s.value <= 90 ? Unicode.Scalar(s.value + 32) : s
        }
        switch lower(i + 1) {
        case "s", "t", "m", "d": return 2
        case "r": return lower(i + 2) == "e" ? 3 : 0
        case "v": return lower(i + 2) == "e" ? 3 : 0
        case "l": return lower(i + 2) == "l" ? 3 : 0
        default: return 0
        }
    }

    private static func run(_ classes: [Class], from i: Int, _ end: Int, while test: (Class) -> Bool) -> Int {
        var j = i
        while j < end && test(classes[j]) { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at a whitespace position: the run, less its last character when a
    /// non-space follows and the run is longer than one.
    private static func whitespace(_ classes: [Class], _ i: Int, _ end: Int) -> Int {
        let j = run(classes, from: i, end, while: isSpace)
        if j < end && j - i > 1 { return j - 1 }
        return j
    }

    private static func gpt2(_ scalars: [Unicode.Scalar], _ classes: [Class], _ base: Int, _ range: Range<Int>,
                             _ out: inout [Range<Int>]) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            var j: Int
            let n = contraction(scalars, base + i, base + end, caseInsensitive: false)
            if n > 0 {
                j = i + n
            } else {
                let k = scalars[base + i] == " " && i + 1 < end ? i + 1 : i
                switch classes[k] {
                case .letter: j = run(classes, from: k, end) { $0 == .letter }
                case .number: j = run(classes, from: k, end) { $0 == .number }
                case .other: j = run(classes, from: k, end) { $0 == .other }
                case .space, .newline: j = whitespace(classes, i, end)
                }
            }
            out.append((base + i)..<(base + j))
            i = j
        }
    }

    private static func llama3(_ scalars: [Unicode.Scalar], _ classes: [Class], _ base: Int, maxDigits: Int,
                               _ out: inout [Range<Int>]) {
        var i = 0
        let end = classes.count
        while i < end {
            var j = i
            let c = classes[i]
            let n = contraction(scalars, base + i, base + end, caseInsensitive: true)
            if n > 0 {
                j = i + n
            } else if c == .letter || (c != .newline && c != .letter && c != .number && i + 1 < end && classes[i + 1] == .letter) {
                // [^\r\n\p{L}\p{N}]?\p{L}+
                let k = c == .letter ? i : i + 1
                j = run(classes, from: k, end) { $0 == .letter }
            } else if c == .number {
                j = i
                while j < end && j - i < maxDigits && classes[j] == .number { j += 1 }
            } else if let k = punctuation(scalars, classes, base, i, end) {
                j = k
            } else {
                // \s*[\r\n]+ : the longest whitespace prefix that ends in a newline run.
                let spaceEnd = run(classes, from: i, end, while: isSpace)
                var lastNewline = -1
                for k in i..<spaceEnd where classes[k] == .newline { lastNewline = k }
                if lastNewline >= 0 {
                    j = lastNewline + 1
                } else {
                    j = whitespace(classes, i, end)
                }
            }
            out.append((base + i)..<(base + j))
            i = j
        }
    }

    /// ` ?[^\s\p{L}\p{N}]+[\r\n]*` at i, or nil.
    private static func punctuation(_ scalars: [Unicode.Scalar], _ classes: [Class], _ base: Int, _ i: Int, _ end: Int) -> Int? {
        let k = scalars[base + i] == " " && i + 1 < end ? i + 1 : i
        guard classes[k] == .other else { return nil }
        let j = run(classes, from: k, end) { $0 == .other }
        return run(classes, from: j, end) { $0 == .newline }
    }
}

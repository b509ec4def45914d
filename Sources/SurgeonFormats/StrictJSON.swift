/// A small, strict JSON parser for file headers.
///
/// Foundation's parser keeps the last of two duplicate keys without a word, and returns
/// integers as doubles; a safetensors header needs both checked. Objects keep their key
/// order, integers keep their text so that overflow is detected, and depth is bounded.
public indirect enum JSONValue: Equatable, Sendable {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.array(x), .array(y)): x == y
        case let (.string(x), .string(y)): x == y
        case let (.number(x), .number(y)): x == y
        case let (.bool(x), .bool(y)): x == y
        case (.null, .null): true
        default: false
        }
    }

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var array: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var object: [(key: String, value: JSONValue)]? { if case .object(let o) = self { o } else { nil } }

    public enum IntegerResult: Equatable { case value(Int), notInteger, overflow }

    /// The value as a whole number: `.overflow` when it does not fit in Int.
    public var integer: IntegerResult {
        guard case .number(let text) = self, !text.contains(where: { ".eE".contains($0) }) else {
            return .notInteger
        }
        if let v = Int(text) { return .value(v) }
        return .overflow
    }

    /// What kind of value this is, for error messages ("found a number").
    public var kindDescription: String {
        switch self {
        case .object: "an object"
        case .array: "a list"
        case .string: "a string"
        case .number(let text): "the number \(text)"
        case .bool(let b): "\(b)"
        case .null: "null"
        }
    }

    public subscript(key: String) -> JSONValue? {
        object?.first(where: { $0.key == key })?.value
    }
}

public struct JSONParseError: Error, CustomStringConvertible {
    public let description: String
}

public struct StrictJSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private let maxDepth = 64

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        var parser = StrictJSONParser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.parseValue(depth: 0)
        parser.skipSpace()
        guard parser.i == bytes.count else { throw parser.fail("unexpected data after the JSON value") }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private func fail(_ message: String) -> JSONParseError {
        JSONParseError(description: "invalid JSON at byte \(i): \(message)")
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 { i += 1 }
    }

    private mutating func expect(_ literal: StaticString) throws {
        let n = literal.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("unexpected end") }
        for k in 0..<n where bytes[i + k] != literal.utf8Start[k] { throw fail("unexpected character") }
        i += n
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < maxDepth else { throw fail("nested too deeply") }
        guard let c = peek else { throw fail("unexpected end") }
        switch c {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default:
            if c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) { return .number(try parseNumber()) }
            throw fail("unexpected character")
        }
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        i += 1
        var members: [(key: String, value: JSONValue)] = []
        var seen = Set<String>()
        skipSpace()
        if peek == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard peek == UInt8(ascii: "\"") else { throw fail("expected a key") }
            let key = try parseString()
            guard seen.insert(key).inserted else {
                throw JSONParseError(description: "duplicate key \"\(key)\"")
            }
            skipSpace()
            guard peek == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipSpace()
            members.append((key, try parseValue(depth: depth + 1)))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return .object(members)
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try parseValue(depth: depth + 1))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): i += 1; return .array(items)
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func parseNumber() throws -> String {
        let start = i
        if peek == UInt8(ascii: "-") { i += 1 }
        var digits = 0
        while let c = peek, (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: ".") || c == UInt8(ascii: "e")
            || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
            i += 1
            digits += 1
        }
        guard digits > 0 else { throw fail("bad number") }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
    }

    private mutating func parseString() throws -> String {
        i += 1
        var utf8: [UInt8] = []
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { utf8.append(c); continue }
            guard let e = peek else { throw fail("unterminated escape") }
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(e)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0c)
            case UInt8(ascii: "n"): utf8.append(0x0a)
            case UInt8(ascii: "r"): utf8.append(0x0d)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"): utf8.append(contentsOf: try parseUnicodeEscape())
            default: throw fail("bad escape")
            }
        }
        guard let s = String(validating: utf8, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return s
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            i += 1
            guard let digit = Character(UnicodeScalar(c)).hexDigitValue else { throw fail("bad \\u escape") }
            v = v << 4 | UInt32(digit)
        }
        return v
    }

    private mutating func parseUnicodeEscape() throws -> [UInt8] {
        var code = try hex4()
        if (0xd800..<0xdc00).contains(code) {
            guard i + 2 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                throw fail("lone surrogate")
            }
            i += 2
            let low = try hex4()
            guard (0xdc00..<0xe000).contains(low) else { throw fail("bad surrogate pair") }
            code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
        }
        guard let scalar = Unicode.Scalar(code) else { throw fail("invalid code point") }
        return Array(String(Character(scalar)).utf8)
    }
}

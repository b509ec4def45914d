/// Everything that can be wrong with a file we read or write.
///
/// Each case names the file, so that the CLI can print one line that tells the user
/// which file is bad and why, without a stack trace.
public struct FormatError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        case io            // open, stat, mmap, read, write, rename failed
        case truncated     // the file ends before a structure it announces
        case invalidHeader // structure present but malformed
        case unsupported   // valid but outside what we handle (dtype, version)
        case inconsistent  // disagrees with another file (config vs tensors, index vs shards)
    }

    public let kind: Kind
    public let path: String
    public let problem: String

    public init(_ kind: Kind, path: String, _ problem: String) {
        self.kind = kind
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }

    static func truncated(_ path: String, _ what: String) -> FormatError {
        FormatError(.truncated, path: path, "truncated: file ends inside \(what)")
    }
}

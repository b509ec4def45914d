/// Problems with eval data or arguments, each naming the file or value at fault so the
/// CLI can print it as one line.
public enum EvalError: Error, CustomStringConvertible {
    /// A task file is not where the data folder says it should be.
    case missingFile(String)
    /// A row of a task file does not have the shape the task expects.
    case malformed(file: String, line: Int, reason: String)
    /// zstd or bzip2 could not decode a file.
    case undecodable(file: String, reason: String)
    case unknownTask(String)
    /// An item whose context and continuation tokenize to nothing scorable.
    case emptyRequest(task: String, item: Int)

    public var description: String {
        switch self {
        case .missingFile(let path): return "\(path): eval data file not found"
        case .malformed(let file, let line, let reason): return "\(file):\(line): \(reason)"
        case .undecodable(let file, let reason): return "\(file): cannot decode (\(reason))"
        case .unknownTask(let name):
            return "unknown task '\(name)' (known: \(EvalTask.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .emptyRequest(let task, let item): return "\(task) item \(item): empty continuation after tokenization"
        }
    }
}

/// Reports bytes written so far out of a total; the CLI draws it on stderr.
public typealias ProgressHandler = @Sendable (_ done: Int, _ total: Int) -> Void

import SurgeonFormats

extension Checkpoint {
    /// What keeps this checkpoint from being a well-formed model of its config: missing
    /// tensors, shapes that disagree with the config, non-float weights. Empty when sound.
    public func integrityProblems() -> [String] {
        var problems: [String] = []
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let expected = TensorLayout.expectedTensors(config, family: family)
        for spec in expected {
            guard let t = byName[spec.name] else {
                problems.append("missing tensor '\(spec.name)'")
                continue
            }
            if t.shape != spec.shape {
                problems.append("tensor '\(spec.name)' has shape \(t.shape) but the config implies \(spec.shape)")
            } else if !t.dtype.isFloatingPoint {
                problems.append("tensor '\(spec.name)' has non-float dtype \(t.dtype.rawValue)")
            }
        }
        return problems
    }

    /// Tensors present that the architecture does not use (reported, not fatal).
    public func unexpectedTensorNames() -> [String] {
        let expected = Set(TensorLayout.expectedTensors(config, family: family).map(\.name))
        return tensors.map(\.name).filter { !expected.contains($0) }
    }

    /// Throws the first integrity problem, naming the checkpoint (or its tokenizer.json,
    /// which a command may only need at its end: a broken one fails before any work).
    public func validate() throws {
        if let folder { try TokenizerFiles.checkTokenizerJSON(folder: folder, embeddingRows: embeddingRows) }
        let problems = integrityProblems()
        guard let first = problems.first else { return }
        let more = problems.count > 1 ? " (and \(problems.count - 1) more problems)" : ""
        throw FormatError(.inconsistent, path: path, first + more)
    }
}

/// Surgery requests that cannot be carried out on the model at hand.
public enum SurgeryError: Error, CustomStringConvertible {
    /// Recorded steps (a manifest being resumed) do not fit the model they are replayed on.
    case inconsistentSteps(String)
    /// The method cannot reach the requested depth on this model.
    case unsupported(String)
    /// A refit could not be solved (heal).
    case healing(String)

    public var description: String {
        switch self {
        case .inconsistentSteps(let problem): "cannot replay the recorded steps: \(problem)"
        case .unsupported(let problem): problem
        case .healing(let problem): "cannot heal \(problem)"
        }
    }
}

import Foundation
import SurgeonModel

/// A way of making a model shallower, as `prune --method NAME` runs it. Every method sits
/// behind this protocol and in `PruningMethods.all`: the CLI's dispatch, the manifest's
/// method record and the `--resume` check all come from here.
public protocol PruningMethod: Sendable {
    /// The name `--method` takes and the manifest records.
    var name: String { get }
    /// Whether it runs the model on calibration text (the manifest then records the set).
    var calibrates: Bool { get }
    /// Whether it leaves merged layers (healing refits those) rather than gaps (healing
    /// refits the layer before each).
    var merges: Bool { get }
    /// Whether an interrupted run continues from its saved steps (`--resume`).
    var resumable: Bool { get }
    /// Checks the settings and fills in this method's part of the pruner's options.
    func configure(_ options: inout LayerPruner.Options, _ settings: PruningSettings) throws
    /// Prunes until `settings.targetLayers` remain; returns what it did.
    func prune(_ pruner: LayerPruner, _ settings: PruningSettings) throws -> PruningOutcome
    /// The manifest's record of a run with these options.
    func record(_ options: LayerPruner.Options, _ settings: PruningSettings) -> MethodRecord
}

/// What a method did, for the line `prune` prints.
public struct PruningOutcome: Sendable {
    /// E.g. "removed layers [3, 4] (lowest BI)".
    public let summary: String
    /// The cost, where the method reports one (layer forwards).
    public let cost: String?

    /// "SUMMARY → OUTPUT (COST)", or "SUMMARY → OUTPUT: N layers".
    public func line(output: String, layers: Int) -> String {
        cost.map { "\(summary) → \(output) (\($0))" } ?? "\(summary) → \(output): \(layers) layers"
    }
}

/// What a run asks of a method besides the pruner's options.
public struct PruningSettings {
    public var targetLayers: Int
    /// CoMe-P: ratios tried are i/n for i = 0…n.
    public var granularity = 20
    public var laco = LaCoParameters()
    /// Progress lines (stderr).
    public var log: (String) -> Void = { _ in }
    /// Called after each step (a merge, or a SLEB removal) with the step count, to save it.
    public var afterStep: (Int) throws -> Void = { _ in }

    public init(targetLayers: Int) { self.targetLayers = targetLayers }
}

public enum PruningMethods {
    /// Every method, in the order the help lists them.
    public static let all: [any PruningMethod] = [
        CoMeMethod(posterior: false), CoMeMethod(posterior: true),
        ShortGPTMethod(), ReverseMethod(), MagnitudeMethod(protectEnds: false), MagnitudeMethod(protectEnds: true),
        SLEBMethod(), LaCoMethod(), MKAMethod(),
    ]

    public static func named(_ name: String) -> (any PruningMethod)? {
        all.first { $0.name == name }
    }
}

/// CoMe (Alg. 1) and CoMe-P (Alg. 2: the first layer's ratio searched by calibration
/// perplexity over 2-layer windows).
struct CoMeMethod: PruningMethod {
    let posterior: Bool
    var name: String { posterior ? "come-p" : "come" }
    var calibrates: Bool { true }
    var merges: Bool { true }
    var resumable: Bool { true }

    func configure(_ options: inout LayerPruner.Options, _ settings: PruningSettings) throws {
        guard posterior else { return }
        guard options.mergeItem == 2 else { throw SurgeryError.unsupported("--method come-p merges 2-layer windows (--merge-item 2)") }
        guard settings.granularity >= 1 else { throw SurgeryError.unsupported("--granularity must be at least 1") }
        options.posteriorGranularity = settings.granularity
    }

    func prune(_ pruner: LayerPruner, _ settings: PruningSettings) throws -> PruningOutcome {
        let layers = pruner.checkpoint.config.numHiddenLayers, forwardsBefore = pruner.layerForwards
        try pruner.prune(to: settings.targetLayers, progress: settings.log,
                         afterStep: { _ in try settings.afterStep(pruner.steps.count) })
        let forwards = pruner.layerForwards - forwardsBefore
        let recompute = (settings.targetLayers + 1...layers).reduce(0, +)
        let what = posterior ? "\(forwards) layer forwards incl. the ratio search"
            : "\(forwards) layer forwards; \(recompute) without resuming"
        return PruningOutcome(summary: "pruned \(layers) → \(pruner.stack.count) layers in \(pruner.steps.count) merges", cost: what)
    }

    func record(_ o: LayerPruner.Options, _ settings: PruningSettings) -> MethodRecord {
        MethodRecord(name: name, targetLayers: settings.targetLayers, mergeItem: o.mergeItem, p: o.p, rho: o.rho,
                     ratios: o.ratios, norms: o.norms.rawValue, skipMetric: o.skipMetric.rawValue,
                     withoutRepeat: o.withoutRepeat, resume: o.resume, granularity: o.posteriorGranularity)
    }
}

/// The baselines record only their name and target (LaCo its parameters too) and do not
/// resume.
protocol BaselineMethod: PruningMethod {}

extension BaselineMethod {
    var merges: Bool { false }
    var resumable: Bool { false }
    func configure(_ options: inout LayerPruner.Options, _ settings: PruningSettings) throws {}
    func record(_ options: LayerPruner.Options, _ settings: PruningSettings) -> MethodRecord {
        MethodRecord(name: name, targetLayers: settings.targetLayers)
    }
}

struct ShortGPTMethod: BaselineMethod {
    var name: String { "shortgpt" }
    var calibrates: Bool { true }
    func prune(_ pruner: LayerPruner, _ settings: PruningSettings) throws -> PruningOutcome {
        PruningOutcome(summary: "removed layers \(try pruner.removeLowestBI(to: settings.targetLayers)) (lowest BI)", cost: nil)
    }
}

struct ReverseMethod: BaselineMethod {
    var name: String { "reverse" }
    var calibrates: Bool { false }
    func prune(_ pruner: LayerPruner, _ settings: PruningSettings) throws -> PruningOutcome {
        PruningOutcome(summary: "removed layers \(pruner.removeLast(to: settings.targetLayers)) (the last ones)", cost: nil)
    }
}

struct MagnitudeMethod: BaselineMethod {
    let protectEnds: Bool
    var name: String { protectEnds ? "magnitude+" : "magnitude" }
    var calibrates: Bool { false }
    func prune(_ pruner: LayerPruner, _ settings: PruningSettings) throws -> PruningOutcome {
        PruningOutcome(summary: "removed layers \(try pruner.removeLowestMagnitude(to: settings.targetLayers, protectEnds: protectEnds)) (smallest Σ|w|)", cost: nil)
    }
}

struct SLEBMethod: BaselineMethod {
    var name: String { "sleb" }
    var calibrates: Bool { true }
    func prune(_ pruner: LayerPruner, _ settings: PruningSettings) throws -> PruningOutcome {
        let removed = try pruner.removeBySLEB(to: settings.targetLayers, progress: settings.log, afterStep: settings.afterStep)
        return PruningOutcome(summary: "removed layers \(removed) (SLEB, in that order)", cost: nil)
    }
}

struct LaCoMethod: BaselineMethod {
    var name: String { "laco" }
    var calibrates: Bool { true }
    var merges: Bool { true }
    func configure(_ options: inout LayerPruner.Options, _ settings: PruningSettings) throws {
        guard settings.laco.group >= 2, settings.laco.interval >= 1 else {
            throw SurgeryError.unsupported("--laco-group must be at least 2 and --laco-interval at least 1")
        }
    }
    func prune(_ pruner: LayerPruner, _ settings: PruningSettings) throws -> PruningOutcome {
        let groups = try pruner.mergeByLaCo(to: settings.targetLayers, parameters: settings.laco, progress: settings.log)
        return PruningOutcome(summary: "merged layers \(groups.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", ")) (LaCo)", cost: nil)
    }
    func record(_ options: LayerPruner.Options, _ settings: PruningSettings) -> MethodRecord {
        MethodRecord(name: name, targetLayers: settings.targetLayers, laco: settings.laco)
    }
}

struct MKAMethod: BaselineMethod {
    var name: String { "mka" }
    var calibrates: Bool { false }
    var merges: Bool { true }
    func prune(_ pruner: LayerPruner, _ settings: PruningSettings) throws -> PruningOutcome {
        let groups = try pruner.mergeByMKA(to: settings.targetLayers)
        return PruningOutcome(summary: "fused layers \(groups.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", ")) (MKA)", cost: nil)
    }
}

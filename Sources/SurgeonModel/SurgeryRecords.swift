/// What `surgery.json` records of a surgery: plain values, so that the writers (Emit)
/// read them without the compute stack that produced them.

/// One merge of a CoMe run, as the manifest records it.
public struct MergeStep: Sendable, Codable {
    public init(windowCurrent: [Int], windowOriginal: [[Int]], sbi: Double, bi: [Double], ratios: [Double], kept: [KeptUnits], mergedIndex: Int, candidates: [RatioCandidate]?) {
        self.windowCurrent = windowCurrent
        self.windowOriginal = windowOriginal
        self.sbi = sbi
        self.bi = bi
        self.ratios = ratios
        self.kept = kept
        self.mergedIndex = mergedIndex
        self.candidates = candidates
    }

    /// Current layer indices of the window when it was merged.
    public let windowCurrent: [Int]
    /// The original layers each window layer stood for.
    public let windowOriginal: [[Int]]
    public let sbi: Double
    public let bi: [Double]
    public let ratios: [Double]
    public let kept: [KeptUnits]
    /// Index of the merged layer right after this step.
    public let mergedIndex: Int
    /// CoMe-P: every ratio tried and the calibration perplexity it gave.
    public var candidates: [RatioCandidate]?
}

/// A CoMe-P candidate: the first layer's retention ratio r (the second keeps 1 − r) and
/// the calibration perplexity of the model merged with it.
public struct RatioCandidate: Sendable, Codable {
    public init(ratio: Double, perplexity: Double) {
        self.ratio = ratio
        self.perplexity = perplexity
    }

    public let ratio: Double
    public let perplexity: Double
}

/// Which units of which source layer a merged layer kept.
public struct KeptUnits: Sendable, Codable, Equatable {
    public init(ffnChannels: [Int], kvGroups: [Int]) {
        self.ffnChannels = ffnChannels
        self.kvGroups = kvGroups
    }

    /// Intermediate channels (rows of gate/up, columns of down), ascending.
    public var ffnChannels: [Int]
    /// KV groups (a KV head with its G query heads and their o_proj columns), ascending.
    public var kvGroups: [Int]
}

/// The method and its parameters, as `surgery.json` records them.
public struct MethodRecord: Codable, Sendable, Equatable {
    public init(name: String, targetLayers: Int? = nil, mergeItem: Int? = nil, p: Double? = nil, rho: Double? = nil,
                ratios: [Double]? = nil, norms: String? = nil, skipMetric: String? = nil, withoutRepeat: Bool? = nil,
                resume: Bool? = nil, granularity: Int? = nil, laco: LaCoParameters? = nil) {
        self.name = name
        self.targetLayers = targetLayers
        self.mergeItem = mergeItem
        self.p = p
        self.rho = rho
        self.ratios = ratios
        self.norms = norms
        self.skipMetric = skipMetric
        self.withoutRepeat = withoutRepeat
        self.resume = resume
        self.granularity = granularity
        self.laco = laco
    }

    public var name: String
    public var targetLayers: Int?
    public var mergeItem: Int?
    public var p: Double?
    public var rho: Double?
    public var ratios: [Double]?
    public var norms: String?
    public var skipMetric: String?
    public var withoutRepeat: Bool?
    public var resume: Bool?
    /// CoMe-P's search granularity n (ratios i/n).
    public var granularity: Int?
    public var laco: LaCoParameters?

    /// Whether a run recorded as `self` makes the same choices as one recorded as `other`
    /// up to any depth: everything but the target depth, and resuming at merge points,
    /// which gives the same result as recomputing.
    public func choosesLike(_ other: MethodRecord) -> Bool {
        var a = self, b = other
        (a.targetLayers, a.resume, b.targetLayers, b.resume) = (nil, nil, nil, nil)
        return a == b
    }
}

/// LaCo's parameters (Yang et al. 2024): merge groups of `group` layers, from the top of
/// the model down to `lowestLayer`, keeping a merge when the pruned model's last-layer
/// states stay within cosine `threshold` of the original's; after a merge the search jumps
/// down `interval` layers.
public struct LaCoParameters: Sendable, Codable, Equatable {
    public var group = 3
    public var threshold = 0.65
    public var interval = 2
    public var lowestLayer = 1
    /// When a sweep ends above the target depth, the threshold drops by this and the
    /// sweep restarts (the target depth is ours; LaCo itself stops where T leaves it).
    public var relaxStep = 0.05
    public init() {}
}

/// One refitted layer, as the manifest records it.
public struct LayerRefit: Sendable, Codable {
    public init(layer: Int, original: [Int], target: Int, mseBefore: Double, mseAfter: Double, ridge: Double) {
        self.layer = layer
        self.original = original
        self.target = target
        self.mseBefore = mseBefore
        self.mseAfter = mseAfter
        self.ridge = ridge
    }

    /// The output layer refitted, and the original layers it stands for ([first, last]).
    public var layer: Int
    public var original: [Int]
    /// The teacher layer whose output the refit matches.
    public var target: Int
    /// Mean squared error of the layer's output against the teacher's, per element, over
    /// the calibration tokens, with the old and the new `down_proj`.
    public var mseBefore: Double
    public var mseAfter: Double
    /// The relative ridge used (larger than asked only if the system was singular).
    public var ridge: Double
}

/// The calibration text a surgery ran on, as `surgery.json` records it.
public struct CalibrationRecord: Codable, Sendable {
    public init(corpus: String, corpusXxh3: String, nsamples: Int, seqlen: Int, seed: UInt64, corpusTokens: Int) {
        self.corpus = corpus
        self.corpusXxh3 = corpusXxh3
        self.nsamples = nsamples
        self.seqlen = seqlen
        self.seed = seed
        self.corpusTokens = corpusTokens
    }

    public var corpus: String
    public var corpusXxh3: String
    public var nsamples: Int
    public var seqlen: Int
    public var seed: UInt64
    public var corpusTokens: Int
}

/// How one distillation pair trained, as the manifest records it.
public struct PairTraining: Sendable, Codable {
    public init(a: Int, b: Int, learningRate: Double, steps: Int, tokens: Int, lossFirst: Double, lossLast: Double) {
        self.a = a
        self.b = b
        self.learningRate = learningRate
        self.steps = steps
        self.tokens = tokens
        self.lossFirst = lossFirst
        self.lossLast = lossLast
    }

    /// Teacher layer a, student layer b (`distillation_pairs`).
    public var a: Int
    public var b: Int
    /// The peak learning rate of its cosine schedule (sp: the one rate all pairs share).
    public var learningRate: Double
    /// Optimiser steps and training tokens spent on it (sp: the whole run's).
    public var steps: Int
    public var tokens: Int
    /// The pair's loss, mean over its first and over its last optimiser step's tokens.
    public var lossFirst: Double
    public var lossLast: Double
}

/// One point of the loss curve: the loss (averaged over pairs in sp) of the optimiser step
/// that ended after `tokens` training tokens, for `pair` (mp) or all pairs (sp: nil).
public struct LossPoint: Sendable, Codable, Equatable {
    public init(pair: Int?, step: Int, tokens: Int, loss: Double) {
        self.pair = pair
        self.step = step
        self.tokens = tokens
        self.loss = loss
    }

    public var pair: Int?
    public var step: Int
    public var tokens: Int
    public var loss: Double
}

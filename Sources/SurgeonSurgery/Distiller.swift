import Foundation
import SurgeonCompute
import SurgeonFormats
import SurgeonModel

/// Hierarchical distillation of a pruned model (SPEC §7, the paper's Alg. 3 and 4).
///
/// Pairs (a, b) map teacher layer a, the last of a merged range, to student layer b, the
/// layer standing for it. The loss of a pair is `FeatureLoss` between the teacher's state
/// after layer a and the student's after layer b, averaged over tokens. Only the pair
/// layers b train, with AdamW and a cosine schedule; every other layer stays frozen.
///
/// - `sp` trains every b at once on the loss averaged over pairs; gradients flow back
///   through the frozen layers between them. The teacher's states at every a are computed
///   once per window and spilled to disk, as are the student's states entering the first b.
/// - `mp` trains one pair at a time, shallow to deep, each with its own rate. Teacher and
///   student advance in lockstep through streaming executors (as `Healer` does), so a
///   pair's step runs one layer forward and back: its input is the student's state after
///   every earlier (already trained) layer, computed once per window.
///
/// A micro-batch is one window; `batch` windows' gradients are summed per step.
public struct Distiller {
    public enum Mode: String, Sendable, Codable, CaseIterable { case sp, mp }

    public struct Options: Sendable {
        public var mode: Mode = .sp
        public var loss: FeatureLoss = .kl
        /// sp: the peak rate; mp: the first pair's (the others follow `pairRates`).
        public var learningRate = 1e-4
        public var batch = 4
        public var weightDecay: Float = 0.01
        /// Checkpoint after every this many optimiser steps (nil: never).
        public var saveEvery: Int?
        /// Recompute each layer's activations in the backward instead of keeping them (sp).
        public var recompute = false
        /// Hidden states above this stay on disk (spill files).
        public var memoryBudget = 0
        public init() {}
    }

    /// The paper's CoMe-mp rates for LLaMA-2-7b's seven pairs, shallow to deep (App. B.2).
    public static let paperPairRates = [5e-4, 2.5e-4, 1e-4, 7.5e-5, 5e-5, 2.5e-5, 1e-5]

    /// The paper's decaying schedule rescaled to `count` pairs (log-linear interpolation of
    /// its seven rates at evenly spaced positions), scaled so that the first is `first`.
    public static func pairRates(count: Int, first: Double) -> [Double] {
        let paper = paperPairRates, last = Double(paper.count - 1)
        return (0..<count).map { k in
            let position = count == 1 ? 0 : Double(k) * last / Double(count - 1)
            let i = min(Int(position), paper.count - 2), f = position - Double(i)
            return first / paper[0] * exp((1 - f) * log(paper[i]) + f * log(paper[i + 1]))
        }
    }

    /// Where a run is: what a checkpoint holds and a resumed run starts from.
    public struct State: Sendable {
        /// mp: the pair being trained (pairs before it are done); sp: 0.
        public var phase = 0
        /// Optimiser steps done in this phase.
        public var step = 0
        /// The current weights of every pair layer touched so far, by student layer.
        public var trained: [Int: DecoderLayerWeights] = [:]
        /// The optimisers of the phase's layers.
        public var optimizers: [Int: AdamW] = [:]
        /// Every step's loss so far, and the records of the finished pairs (mp).
        public var curve: [LossPoint] = []
        public var finished: [PairTraining] = []
        /// The loss of each pair trained in this phase (sp: all) at the phase's first step.
        public var firstLosses: [Double] = []
        public init() {}
    }

    public let teacher: Checkpoint
    public let student: Checkpoint
    public let pairs: [(a: Int, b: Int)]
    public let options: Options
    private let shape: LayerShape
    private let rope: RotaryEmbedding
    private let workspace = LayerWorkspace(), backward = BackwardWorkspace()

    public init(teacher: Checkpoint, student: Checkpoint, pairs: [(a: Int, b: Int)], options: Options) {
        self.teacher = teacher
        self.student = student
        self.pairs = pairs.sorted { $0.b < $1.b }
        self.options = options
        shape = LayerShape(student.config)
        rope = RotaryEmbedding(checkpoint: student)
    }

    /// Peak rate of each pair: one shared rate (sp), or the decaying schedule (mp).
    public var learningRates: [Double] {
        options.mode == .sp ? [options.learningRate] : Self.pairRates(count: pairs.count, first: options.learningRate)
    }

    /// Why `state` (read from a checkpoint) cannot be where a run over `data` stands, or nil.
    public func problem(resuming state: State, data: DistillationData) -> String? {
        let layers = Set(pairs.map(\.b)), steps = stepsPerPass(data)
        let phases = options.mode == .sp ? 1 : pairs.count
        guard state.phase < phases, state.step >= 1, state.step <= steps else {
            return "position (pair \(state.phase), step \(state.step)) is outside this run's \(phases) × \(steps) steps"
        }
        guard Set(state.trained.keys).isSubset(of: layers), Set(state.optimizers.keys).isSubset(of: layers) else {
            return "it trains layers that are not this student's pair layers"
        }
        let expected = options.mode == .sp ? pairs.count : 1
        guard state.firstLosses.count == expected, state.finished.count == (options.mode == .sp ? 0 : state.phase) else {
            return "its loss records do not fit its position"
        }
        return nil
    }

    /// Optimiser steps of one pass over `data`.
    public func stepsPerPass(_ data: DistillationData) -> Int { (data.order.count + options.batch - 1) / options.batch }

    /// What a run did: each pair's record, and where this process's time went.
    public struct Report: Sendable {
        public var pairs: [PairTraining]
        /// Seconds and tokens of the optimiser steps (forward, backward, update).
        public var trainingSeconds: Double
        public var trainingTokens: Int
        /// Everything: the teacher's and the student's passes too.
        public var seconds: Double
    }

    /// Trains from `state` to the end; `save` is called with the state every `saveEvery`
    /// steps.
    public func run(_ data: DistillationData, state: inout State, save: (State) throws -> Void,
                    log: @escaping (String) -> Void) throws -> Report {
        precondition(!pairs.isEmpty)
        let started = Date()
        let clock = Progress(total: data.tokens * (options.mode == .mp ? pairs.count : 1), log: log)
        let records = switch options.mode {
        case .sp: try runSinglePass(data, state: &state, save: save, clock: clock)
        case .mp: try runPairByPair(data, state: &state, save: save, clock: clock)
        }
        return Report(pairs: records, trainingSeconds: clock.trainingSeconds, trainingTokens: clock.trainingTokens,
                      seconds: Date().timeIntervalSince(started))
    }

    // MARK: sp

    private func runSinglePass(_ data: DistillationData, state: inout State, save: (State) throws -> Void,
                               clock: Progress) throws -> [PairTraining] {
        let span = pairs.first!.b...pairs.last!.b, lastA = pairs.map(\.a).max()!
        let pairOf = Dictionary(uniqueKeysWithValues: pairs.enumerated().map { ($1.b, $0) })
        let teacherRun = try executor(teacher)
        let teacherStates = try teacherRun.embed(data.windows)
        var targets = [HiddenStates?](repeating: nil, count: pairs.count)
        clock.note("teacher: layers 0–\(lastA) over \(data.windows.count) windows, states at \(pairs.map(\.a)) cached")
        try teacherRun.run(teacherStates, layers: 0..<(lastA + 1), boundary: { layer, states in
            for (k, p) in pairs.enumerated() where p.a == layer {
                targets[k] = try states.copy(memoryBudget: options.memoryBudget)
            }
        }, progress: { clock.note("teacher layer \($0)/\(lastA)") })
        let studentRun = try executor(student)
        let inputs = try studentRun.embed(data.windows)
        try studentRun.run(inputs, layers: 0..<span.lowerBound)
        for p in pairs where state.trained[p.b] == nil {
            state.trained[p.b] = try DecoderLayerWeights.load(from: student, layer: p.b)
        }
        for p in pairs where state.optimizers[p.b] == nil {
            state.optimizers[p.b] = AdamW(like: state.trained[p.b]!, weightDecay: options.weightDecay)
        }

        let steps = stepsPerPass(data), tables = rope.tables(count: data.seqlen)
        let tapes = (0..<(options.recompute ? 1 : span.count)).map { _ in LayerTape() }
        let rows = data.seqlen, width = shape.hidden
        var pairGradients = [[Float]](repeating: [Float](repeating: 0, count: rows * width), count: pairs.count)
        var lastLosses = [Double](repeating: .nan, count: pairs.count)
        clock.begin(done: min(state.step * options.batch, data.order.count) * rows)
        while state.step < steps {
            let stepStarted = Date()
            let batch = windows(step: state.step, of: data)
            var gradients = state.trained.mapValues { Optional(DecoderLayerWeights.zeros(like: $0)) }
            var losses = [Double](repeating: 0, count: pairs.count)
            for window in batch {
                var x = try inputs.withChunk(window) { Array(UnsafeBufferPointer(start: $0, count: rows * width)) }
                var savedInputs: [[Float]] = []
                // Forward through the span, each pair's loss (and its gradient) at its layer b.
                for (j, layer) in span.enumerated() {
                    let w = try state.trained[layer] ?? DecoderLayerWeights.load(from: student, layer: layer)
                    if options.recompute { savedInputs.append(x) }
                    x.withUnsafeMutableBufferPointer {
                        DecoderLayer.forward(w, shape: shape, rope: rope, ropeTables: tables, x: $0.baseAddress!,
                                             lengths: [rows], layer: layer, workspace: workspace,
                                             tape: options.recompute ? nil : tapes[j])
                    }
                    if let k = pairOf[layer] {
                        losses[k] += try targets[k]!.withChunk(window) { t in
                            options.loss.evaluate(student: x, teacher: t, rows: rows, width: width,
                                                  gradient: &pairGradients[k],
                                                  scale: 1 / Float(pairs.count * batch.count))
                        } / Double(batch.count)
                    }
                }
                // Backward from the deepest pair to the first, adding each pair's gradient at b.
                var d = [Float](repeating: 0, count: rows * width)
                for (j, layer) in span.enumerated().reversed() {
                    if let k = pairOf[layer] {
                        for i in d.indices { d[i] += pairGradients[k][i] }
                        pairGradients[k].withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                    }
                    let w = try state.trained[layer] ?? DecoderLayerWeights.load(from: student, layer: layer)
                    let tape = tapes[options.recompute ? 0 : j]
                    if options.recompute {
                        savedInputs[j].withUnsafeMutableBufferPointer {
                            DecoderLayer.forward(w, shape: shape, rope: rope, ropeTables: tables, x: $0.baseAddress!,
                                                 lengths: [rows], layer: layer, workspace: workspace, tape: tape)
                        }
                    }
                    var none: DecoderLayerWeights? = nil
                    d.withUnsafeMutableBufferPointer { d in
                        if pairOf[layer] != nil {
                            DecoderLayer.backward(w, shape: shape, rope: rope, ropeTables: tables, tape: tape,
                                                  dx: d.baseAddress!, gradients: &gradients[layer]!, layer: layer,
                                                  workspace: backward)
                        } else {
                            DecoderLayer.backward(w, shape: shape, rope: rope, ropeTables: tables, tape: tape,
                                                  dx: d.baseAddress!, gradients: &none, layer: layer, workspace: backward)
                        }
                    }
                }
            }
            let lr = Float(cosineRate(peak: options.learningRate, step: state.step, steps: steps))
            for p in pairs {
                state.optimizers[p.b]!.step(&state.trained[p.b]!, gradients: gradients[p.b]!!, lr: lr)
            }
            if state.step == 0 { state.firstLosses = losses }
            lastLosses = losses
            let mean = losses.reduce(0, +) / Double(pairs.count)
            state.step += 1
            state.curve.append(LossPoint(pair: nil, step: state.step, tokens: clock.done + batch.count * rows, loss: mean))
            clock.step(tokens: batch.count * rows, seconds: Date().timeIntervalSince(stepStarted),
                       String(format: "sp step %d/%d, loss %.5g", state.step, steps, mean))
            if let every = options.saveEvery, state.step % every == 0, state.step < steps { try save(state) }
        }
        return pairs.enumerated().map { k, p in
            PairTraining(a: p.a, b: p.b, learningRate: options.learningRate, steps: steps, tokens: data.tokens,
                         lossFirst: state.firstLosses[k], lossLast: lastLosses[k])
        }
    }

    // MARK: mp

    private func runPairByPair(_ data: DistillationData, state: inout State, save: (State) throws -> Void,
                               clock: Progress) throws -> [PairTraining] {
        let teacherRun = try executor(teacher), studentRun = try executor(student)
        let teacherStates = try teacherRun.embed(data.windows), studentStates = try studentRun.embed(data.windows)
        var teacherDone = 0, studentDone = 0
        let rates = learningRates, steps = stepsPerPass(data)
        let tables = rope.tables(count: data.seqlen), tape = LayerTape()
        let rows = data.seqlen, width = shape.hidden
        for (k, p) in pairs.enumerated() {
            try teacherRun.run(teacherStates, layers: teacherDone..<(p.a + 1),
                               progress: { clock.note("teacher layer \($0)/\(p.a)") })
            teacherDone = p.a + 1
            let trained = state.trained
            try studentRun.run(studentStates, layers: studentDone..<p.b,
                               weights: { try trained[$0] ?? DecoderLayerWeights.load(from: student, layer: $0) })
            if k >= state.phase {
                if k > state.phase { (state.phase, state.step, state.optimizers) = (k, 0, [:]) }
                if state.trained[p.b] == nil { state.trained[p.b] = try DecoderLayerWeights.load(from: student, layer: p.b) }
                if state.optimizers[p.b] == nil {
                    state.optimizers[p.b] = AdamW(like: state.trained[p.b]!, weightDecay: options.weightDecay)
                }
                clock.begin(done: min(k * data.order.count + state.step * options.batch, (k + 1) * data.order.count) * rows)
                var lastLoss = Double.nan
                while state.step < steps {
                    let stepStarted = Date()
                    let batch = windows(step: state.step, of: data)
                    var gradients: DecoderLayerWeights? = .zeros(like: state.trained[p.b]!)
                    var loss = 0.0
                    for window in batch {
                        var x = try studentStates.withChunk(window) { Array(UnsafeBufferPointer(start: $0, count: rows * width)) }
                        var d = [Float](repeating: 0, count: rows * width)
                        x.withUnsafeMutableBufferPointer {
                            DecoderLayer.forward(state.trained[p.b]!, shape: shape, rope: rope, ropeTables: tables,
                                                 x: $0.baseAddress!, lengths: [rows], layer: p.b, workspace: workspace, tape: tape)
                        }
                        loss += try teacherStates.withChunk(window) { t in
                            options.loss.evaluate(student: x, teacher: t, rows: rows, width: width, gradient: &d,
                                                  scale: 1 / Float(batch.count))
                        } / Double(batch.count)
                        d.withUnsafeMutableBufferPointer {
                            DecoderLayer.backward(state.trained[p.b]!, shape: shape, rope: rope, ropeTables: tables, tape: tape,
                                                  dx: $0.baseAddress!, gradients: &gradients, layer: p.b, workspace: backward)
                        }
                    }
                    let lr = Float(cosineRate(peak: rates[k], step: state.step, steps: steps))
                    state.optimizers[p.b]!.step(&state.trained[p.b]!, gradients: gradients!, lr: lr)
                    if state.step == 0 { state.firstLosses = [loss] }
                    lastLoss = loss
                    state.step += 1
                    state.curve.append(LossPoint(pair: k, step: state.step, tokens: clock.done + batch.count * rows, loss: loss))
                    clock.step(tokens: batch.count * rows, seconds: Date().timeIntervalSince(stepStarted),
                               String(format: "mp pair %d/%d (teacher %d → student %d) step %d/%d, loss %.5g",
                                      k + 1, pairs.count, p.a, p.b, state.step, steps, loss))
                    if let every = options.saveEvery, state.step % every == 0, state.step < steps { try save(state) }
                }
                state.finished.append(PairTraining(a: p.a, b: p.b, learningRate: rates[k], steps: steps, tokens: data.tokens,
                                                   lossFirst: state.firstLosses[0], lossLast: lastLoss))
            }
            let weights = state.trained[p.b]!
            try studentRun.run(studentStates, layers: p.b..<(p.b + 1), weights: { _ in weights })
            studentDone = p.b + 1
        }
        return state.finished
    }

    // MARK: Shared

    /// The windows of optimiser step `step`: the next `batch` of the training order.
    private func windows(step: Int, of data: DistillationData) -> [Int] {
        Array(data.order[(step * options.batch)..<min((step + 1) * options.batch, data.order.count)])
    }

    /// A streaming executor whose chunks are single windows, so any window's states can be read alone.
    private func executor(_ checkpoint: Checkpoint) throws -> StreamingExecutor {
        try StreamingExecutor(checkpoint: checkpoint, memoryBudget: options.memoryBudget, chunkTokens: 1, workspace: workspace)
    }

    /// Training tokens done, training rate and ETA, at most one line every two seconds.
    final class Progress {
        let total: Int
        var done = 0
        /// Time and tokens spent in optimiser steps by this process (not in teacher or student passes).
        private(set) var trainingSeconds = 0.0, trainingTokens = 0
        private let log: (String) -> Void
        private var startDone: Int?
        private var startTime = Date(), lastReport = Date.distantPast

        init(total: Int, log: @escaping (String) -> Void) {
            self.total = total
            self.log = log
        }

        func note(_ line: String) { log(line) }

        /// Training starts (or resumes, or moves to the next pair) with `done` tokens behind it.
        func begin(done: Int) {
            self.done = done
            if startDone == nil { (startDone, startTime) = (done, Date()) }
        }

        /// A step of `tokens` tokens that took `seconds` ended.
        func step(tokens: Int, seconds: Double, _ line: String) {
            done += tokens
            trainingTokens += tokens
            trainingSeconds += seconds
            let now = Date()
            guard now.timeIntervalSince(lastReport) >= 2 || done >= total else { return }
            lastReport = now
            // The ETA counts wall time since training began, teacher and student passes included.
            let wall = Double(done - (startDone ?? 0)) / max(now.timeIntervalSince(startTime), 1e-9)
            let eta = wall > 0 ? Double(total - done) / wall : 0
            log(String(format: "%@  [%d/%d tokens, %.0f tokens/s, eta %@]", line, done, total,
                       Double(trainingTokens) / max(trainingSeconds, 1e-9), Self.duration(eta)))
        }

        static func duration(_ seconds: Double) -> String {
            let s = Int(seconds.rounded())
            return s >= 3600 ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" : s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
        }
    }
}

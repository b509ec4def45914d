import COpenBLAS
import CPlatform
import Foundation
import SurgeonModel
import Synchronization

/// Process-wide compute settings: how many threads, and whether the next layer's weights
/// are decoded ahead. Set once by the CLI (`--threads`, `--no-prefetch`) before work starts.
public enum ComputeSettings {
    private static let threadCount = Atomic<Int>(defaultThreads)
    private static let prefetchFlag = Atomic<Bool>(true)

    /// OPENBLAS_NUM_THREADS when set, else every core this process may run on: its
    /// affinity mask, so that `taskset -c 0` gives 1 (Foundation counts every online core).
    public static let defaultThreads = max(1, Int(ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "")
        ?? Int(exactly: cplatform_available_cpus()).flatMap { $0 > 0 ? $0 : nil } ?? ProcessInfo.processInfo.activeProcessorCount)

    /// Threads for OpenBLAS and for our own parallel loops. They never run at the same
    /// time (our loops sit between sgemm calls), so both use the same count.
    public static var threads: Int {
        get { threadCount.load(ordering: .relaxed) }
        set {
            let n = max(1, newValue)
            threadCount.store(n, ordering: .relaxed)
            openblas_set_num_threads(Int32(n))
        }
    }

    /// Whether `StreamingExecutor` decodes layer i + 1 on a background thread while
    /// layer i computes (results are the same either way; only the wall time differs).
    public static var prefetch: Bool {
        get { prefetchFlag.load(ordering: .relaxed) }
        set { prefetchFlag.store(newValue, ordering: .relaxed) }
    }
}

/// Where a run's time goes: seconds per phase of the layer forwards, and the FLOPs of the
/// projections and of attention, summed over the process (`--profile` prints them, the
/// benchmarks compare the FLOPs with the sgemm rate).
public enum Profile {
    public enum Phase: Int, CaseIterable, Sendable {
        /// Weights decoded to f32 (from the checkpoint or a spilled layer); on the
        /// prefetch thread this overlaps the forwards.
        case decode
        /// Time the forwards waited for a prefetched layer.
        case decodeWait
        /// Decoder-layer forwards, all of it; the next three are parts of it.
        case forward
        case projections
        case attention
        /// The observers of the forwards (calibration statistics, healing's Gram sums).
        case statistics
        /// Spilled hidden states written and read back.
        case spill
        /// Layer merges (surgery), with parking the merged layer on disk.
        case merge
        /// Healing's least-squares solves.
        case refit
        /// Writing the output model.
        case write
        /// The output head: final norm, logits and their log-sum-exp (ppl, eval, generate).
        case head

        public var label: String {
            switch self {
            case .decode: "decode weights"
            case .decodeWait: "waiting for prefetch"
            case .forward: "layer forwards"
            case .projections: "projections (sgemm)"
            case .attention: "attention"
            case .statistics: "statistics"
            case .spill: "spill I/O"
            case .merge: "merges"
            case .refit: "refits (solves)"
            case .write: "writing the output"
            case .head: "output head (logits)"
            }
        }
    }

    public struct Totals: Sendable {
        public var seconds = [Double](repeating: 0, count: Phase.allCases.count)
        /// Useful FLOPs: projections 2·m·n·k, attention 4·head_dim per visible (query, key) pair.
        public var projectionFlops = 0.0, attentionFlops = 0.0
        public subscript(_ phase: Phase) -> Double { seconds[phase.rawValue] }
    }

    private static let totals = Mutex(Totals())

    public static var snapshot: Totals { totals.withLock { $0 } }

    public static func reset() { totals.withLock { $0 = Totals() } }

    @inline(__always)
    public static func measure<T>(_ phase: Phase, _ body: () throws -> T) rethrows -> T {
        let started = now()
        defer { add(phase, since: started) }
        return try body()
    }

    /// A timestamp for `add(_:since:)`, where a closure around the work would not read well.
    @inline(__always)
    public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    public static func add(_ phase: Phase, since started: UInt64) {
        let elapsed = Double(now() - started) / 1e9
        totals.withLock { $0.seconds[phase.rawValue] += elapsed }
    }

    static func count(projection flops: Double) { totals.withLock { $0.projectionFlops += flops } }
    static func count(attention flops: Double) { totals.withLock { $0.attentionFlops += flops } }

    /// The table `--profile` prints: each phase's seconds and share of `wall`, then the
    /// FLOPs and the rate they ran at.
    public static func report(wall: Double) -> String {
        let t = snapshot
        var lines = ["phase                        seconds   share"]
        func line(_ label: String, _ s: Double) {
            lines.append(String(format: "%@ %9.2f  %5.1f%%", label.padding(toLength: 27, withPad: " ", startingAt: 0),
                                s, 100 * s / max(wall, 1e-9)))
        }
        line(Phase.forward.label, t[.forward])
        line("  " + Phase.projections.label, t[.projections])
        line("  " + Phase.attention.label, t[.attention])
        line("  " + Phase.statistics.label, t[.statistics])
        line("  norms, RoPE, activations", t[.forward] - t[.projections] - t[.attention] - t[.statistics])
        line(Phase.decode.label + (ComputeSettings.prefetch ? " (background)" : ""), t[.decode])
        line(Phase.decodeWait.label, t[.decodeWait])
        let outsideForwards: [Phase] = [.head, .spill, .merge, .refit, .write]
        for phase in outsideForwards { line(phase.label, t[phase]) }
        let accounted = outsideForwards.reduce(t[.forward]) { $0 + t[$1] }
            + (ComputeSettings.prefetch ? t[.decodeWait] : t[.decode])
        line("everything else", wall - accounted)
        line("wall", wall)
        let flops = t.projectionFlops + t.attentionFlops
        lines.append(String(format: "FLOPs: %.1f G (projections %.1f G, attention %.1f G); %.1f GFLOP/s over the wall time, %d threads",
                            flops / 1e9, t.projectionFlops / 1e9, t.attentionFlops / 1e9, flops / max(wall, 1e-9) / 1e9,
                            ComputeSettings.threads))
        lines.append(String(format: "temporary files: at most %.1f MB at once in %@", Double(TemporaryFile.bytesInUse.peak) / 1e6,
                            TemporaryFile.directory))
        return lines.joined(separator: "\n")
    }
}

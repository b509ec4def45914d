import ArgumentParser
import Foundation
import SurgeonCompute

/// Options shared by every command that runs layer forwards.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Threads for the matrix products and the element-wise loops (default: every core this process may run on, or OPENBLAS_NUM_THREADS).")
    var threads: Int?

    @Flag(inversion: .prefixedNo,
          help: "Decode the next layer's weights on a background thread while the current layer computes (the results are identical either way).")
    var prefetch = true

    @Flag(help: "Print on stderr, at the end, where the time went (decode, projections, attention, statistics, the output head, spill I/O, merges, refits, writing) and the FLOPs done.")
    var profile = false

    func validate() throws {
        if let threads, !(1...4096).contains(threads) { throw ValidationError("--threads must be between 1 and 4096") }
    }

    /// Runs a command's work under these settings, then prints the profile if asked.
    func run(_ work: () throws -> Void) throws {
        ComputeSettings.threads = threads ?? ComputeSettings.defaultThreads
        ComputeSettings.prefetch = prefetch
        let started = Date()
        try work()
        if profile {
            FileHandle.standardError.write(Data((Profile.report(wall: Date().timeIntervalSince(started)) + "\n").utf8))
        }
    }
}

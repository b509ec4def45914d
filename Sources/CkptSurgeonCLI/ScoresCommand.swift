import ArgumentParser
import Foundation
import SurgeonModel
import SurgeonSurgery

struct ScoresCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scores",
        abstract: "Block Influence per layer and Skip-Block Influence per window, from calibration.",
        discussion: """
        One streaming pass over the calibration windows gathers, for every layer, BI = 1 − mean \
        cos(input, output) over all tokens, and for every window of --merge-item layers SBI = \
        1 − mean cos(input of its first layer, output of its last). Low SBI marks windows CoMe \
        would merge first. --skip-metric angular-last-token uses the upstream code's variant \
        (arccos(cos)/π on the last token of each sample). --sensitivities adds the channel \
        sensitivities and KV-group scores to the JSON.

        Examples:
          ckpt-surgeon scores SmolLM2-135M-Instruct.Q4_1.gguf --nsamples 8
          ckpt-surgeon scores ./smollm2-hf --json > scores.json
        """)

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @OptionGroup var calibration: CalibrationOptions

    @Option(help: "Layers per SBI window.")
    var mergeItem: Int = 2

    @Option(help: "cosine (the paper's SBI) or angular-last-token (upstream code).")
    var skipMetric: SkipMetric = .cosine

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Include per-channel sensitivities and KV-group scores in the JSON.")
    var sensitivities = false

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        let checkpoint = try Checkpoint.open(model)
        try checkpoint.validate()
        guard mergeItem >= 2, mergeItem <= checkpoint.config.numHiddenLayers else {
            throw InputError("--merge-item must be between 2 and the layer count \(checkpoint.config.numHiddenLayers)")
        }
        let calib = try calibration.load(for: checkpoint)
        var options = LayerPruner.Options()
        options.skipMetric = skipMetric
        options.memoryBudget = calibration.memoryBudgetBytes
        options.resume = false
        let pruner = try LayerPruner(checkpoint: checkpoint, calibration: calib, options: options)
        let bar = ProgressBar(label: "calibrate", unit: "layers")
        let stats = try pruner.calibrate(from: 0, windowSize: mergeItem, progress: bar.update)
        bar.finish()
        if json {
            var out = stats
            if !sensitivities {
                out.ffnSensitivity = []
                out.attentionSensitivity = []
                out.kvGroupScore = []
            }
            try printJSON(out)
            return
        }
        let maxBI = stats.bi.max() ?? 1, maxSBI = stats.sbi.max() ?? 1
        print("calibration: \(calib.nsamples) × \(calib.seqlen) tokens from \(calib.corpus)\n")
        print("layer  BI       " + pad("", 30) + "  SBI(layers l…l+\(mergeItem - 1))")
        for l in stats.bi.indices {
            let sbi = l < stats.sbi.count ? String(format: "%.5f ", stats.sbi[l]) + histogram(stats.sbi[l], maxSBI, 20) : ""
            let bi = String(format: "%.5f", stats.bi[l])
            print(pad(String(l), 5) + "  " + bi + "  " + pad(histogram(stats.bi[l], maxBI, 30), 30) + "  " + sbi)
        }
        if let best = stats.sbi.indices.min(by: { stats.sbi[$0] < stats.sbi[$1] }) {
            print("\nlowest SBI: layers \(best)…\(best + mergeItem - 1) (\(String(format: "%.5f", stats.sbi[best])))")
        }
    }

    private func histogram(_ value: Double, _ max: Double, _ width: Int) -> String {
        String(repeating: "█", count: Int((value / Swift.max(max, 1e-12) * Double(width)).rounded()))
    }
}

extension SkipMetric: ExpressibleByArgument {}

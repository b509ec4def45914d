import ArgumentParser
import Foundation
import SurgeonCompute
import SurgeonEmit
import SurgeonFormats
import SurgeonModel
import SurgeonSurgery

struct HealCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heal",
        abstract: "Recover what pruning lost: refit the pruned model's layers to the original, in closed form.",
        discussion: """
        STUDENT is an output of merge or prune with its manifest (surgery.json inside the folder, \
        or NAME.surgery.json beside a GGUF); TEACHER is the model that manifest was made from, \
        checked against the manifest's per-tensor hashes.

        Teacher and student run over the calibration windows in lockstep, one layer at a time. \
        For each chosen student layer b, standing for original layers first…last, the new \
        down_proj is the ridge least-squares solution mapping the student's own post-attention \
        stream h to the teacher's stream T after layer last:

            G = Σ AᵀA,  C = Σ Aᵀ(T − h),  (G + λ·mean(diag G)·I)·W = C,  down_proj ← Wᵀ

        where A is the down_proj input (the SwiGLU activations), summed in f64 over every \
        calibration token and solved by Cholesky (SPEC §9). The student runs from its own \
        input with every earlier refit applied. A down_proj bias, where the family has one, \
        is fitted as the intercept. Each layer's output MSE against the teacher, before and \
        after, is printed on stderr and recorded in the manifest's `healing` record.

        --layers merged (default) refits the layers standing for more than one original \
        layer; gaps also refits the layer before each run of deleted layers, fitted to the \
        teacher's stream after the run (for deletion methods); all refits every layer. \
        --ridge is λ; if the system is singular, λ grows tenfold until it solves, and says so.

        Examples:
          ckpt-surgeon heal SmolLM2-135M-Instruct.Q4_1.gguf smollm2-21 -o smollm2-21-healed
          ckpt-surgeon heal smollm2-hf shortgpt-21 --layers gaps -o shortgpt-21-healed.gguf
          ckpt-surgeon prune SmolLM2-135M-Instruct.Q4_1.gguf --target-layers 21 --heal -o smollm2-21-healed
        """)

    @Argument(help: "The original model (the student's manifest's source).")
    var teacher: String

    @Argument(help: "A merge or prune output (HF folder or .gguf) with its manifest.")
    var student: String

    @Option(help: "Layers to refit: merged, gaps or all.")
    var layers: HealSelection = .merged

    @OptionGroup var refit: RefitOptions
    @OptionGroup var calibration: CalibrationOptions
    @OptionGroup var out: SurgeryOutputOptions

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        let inputs = try SurgeryInputs(teacher: teacher, student: student, command: "heal", output: out.output)
        try out.checkBeforeWork()
        let (teacherModel, studentModel, manifest, provenance) = (inputs.teacher, inputs.student, inputs.manifest, inputs.provenance)
        guard !Healer.plan(provenance: provenance, teacherLayers: manifest.source.layers, selection: layers).isEmpty else {
            throw InputError("\(student): no layer to refit with --layers \(layers.rawValue) (none stands for more than one "
                             + "original layer; --layers gaps refits the layer before each deleted run)")
        }
        let calib = try calibration.load(for: teacherModel, defaults: Healer.defaultCorpora, samples: Healer.defaultSamples)
        var stack = LayerStack(layerCount: studentModel.config.numHiddenLayers)
        var healing = try refit.heal(teacher: teacherModel, student: studentModel, stack: &stack, provenance: provenance,
                                     selection: layers, calibration: calib, memoryBudget: calibration.memoryBudgetBytes)
        healing.student = SurgeryManifest.Student(path: student, output: manifest.output)

        var record = manifest
        record.schema = SurgeryManifest.schemaVersion
        record.tool = SurgeryManifest.Tool(version: CkptSurgeon.version, command: CommandLine.arguments)
        record.healing = healing
        var writer = SurgeryWriter(checkpoint: studentModel, stack: stack, format: out.format, dtype: out.dtype)
        writer.methodName = manifest.method.name
        writer.ggufSummary = record.ggufSummary
        try writer.writeShowingProgress(to: out.output, replace: out.force) { [record, out] hashes, files in
            var m = record
            m.output = SurgeryManifest.Output(format: out.format.rawValue, layers: stack.count, files: files, tensors: hashes)
            return m
        }
        print("healed \(healing.refits.count) layers of \(student) → \(out.output): \(RefitOptions.summary(healing.refits))")
    }
}

extension HealSelection: ExpressibleByArgument {}

/// How refits are solved, shared by heal and prune --heal.
struct RefitOptions: ParsableArguments {
    @Option(help: "Ridge λ, relative to the mean of diag(AᵀA); must be > 0.")
    var ridge: Double = 0.1

    func validate() throws {
        guard ridge > 0, ridge.isFinite else { throw ValidationError("--ridge must be a positive number") }
    }

    /// Refits the planned layers of `stack` and returns the manifest's healing record.
    func heal(teacher: Checkpoint, student: Checkpoint, stack: inout LayerStack, provenance: [ClosedRange<Int>],
              selection: HealSelection, calibration: CalibrationSet, memoryBudget: Int,
              workspace: LayerWorkspace = LayerWorkspace()) throws -> SurgeryManifest.Healing {
        var options = Healer.Options()
        options.selection = selection
        options.ridge = ridge
        options.memoryBudget = memoryBudget
        let healer = Healer(teacher: teacher, student: student, provenance: provenance, options: options,
                            workspace: workspace)
        let refits: [LayerRefit]
        do {
            refits = try healer.heal(&stack, calibration: calibration) {
                FileHandle.standardError.write(Data("heal: \($0)\n".utf8))
            }
        } catch let error as SurgeryError {
            throw InputError("\(student.path): \(error)")
        }
        return SurgeryManifest.Healing(ridge: ridge, layers: selection.rawValue,
                                       calibration: calibration.record,
                                       refits: refits, student: nil)
    }

    /// "output MSE 0.0312 → 0.0101 (mean over 9 layers)".
    static func summary(_ refits: [LayerRefit]) -> String {
        let n = Double(max(refits.count, 1))
        let before = refits.map(\.mseBefore).reduce(0, +) / n, after = refits.map(\.mseAfter).reduce(0, +) / n
        return String(format: "output MSE %.5g → %.5g (mean over %d layers)", before, after, refits.count)
    }
}

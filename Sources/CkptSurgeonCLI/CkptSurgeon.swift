import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

@main
struct CkptSurgeon: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "ckpt-surgeon",
        abstract: "Convert, inspect and prune LLM checkpoints on a CPU, without loading them whole.",
        discussion: """
        MODEL is a Hugging Face folder (config.json, *.safetensors, tokenizer.json), a \
        .safetensors file with config.json beside it, or a .gguf file. Inputs are memory-mapped \
        and never modified; outputs are written under a temporary name and renamed into place.

        Examples:
          ckpt-surgeon inspect SmolLM2-135M-Instruct.Q4_1.gguf
          ckpt-surgeon ppl SmolLM2-135M-Instruct.Q4_1.gguf --text wiki.test.raw --windows 40
          ckpt-surgeon prune SmolLM2-135M-Instruct.Q4_1.gguf --method come --target-layers 21 -o smollm2-21
          ckpt-surgeon verify smollm2-21
          ckpt-surgeon export smollm2-21 -o smollm2-21.f16.gguf --dtype f16
          ckpt-surgeon eval SmolLM2-135M-Instruct.Q4_1.gguf --compare smollm2-21 --limit 200
        """,
        version: version,
        subcommands: [InspectCommand.self, ConvertCommand.self, TokenizeCommand.self, PerplexityCommand.self,
                      GenerateCommand.self, LogitsCommand.self, GradientsCommand.self, ScoresCommand.self, MergeCommand.self,
                      PruneCommand.self, HealCommand.self, DistillCommand.self, VerifyCommand.self, ExportCommand.self, EvalCommand.self])

    static func main() {
        // A file-size limit should fail a write with EFBIG (reported, output removed),
        // not kill the process half-way through.
        signal(SIGXFSZ, SIG_IGN)
        main(nil)
    }
}

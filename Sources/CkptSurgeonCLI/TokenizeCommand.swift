import ArgumentParser
import Foundation
import SurgeonFormats
import SurgeonModel

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text with a model's tokenizer.",
        discussion: """
        MODEL is an HF folder (tokenizer.json) or a GGUF (its tokenizer.ggml.* metadata; a \
        vocab-only GGUF works). Ids are printed space-separated on one line, without BOS unless \
        --bos is given. --decode prints the text the ids decode back to instead.

        Examples:
          ckpt-surgeon tokenize SmolLM2-135M-Instruct.Q4_1.gguf --prompt "The capital of France is"
          ckpt-surgeon tokenize ./smollm2-hf --text wiki.test.raw --count
        """)

    @Argument(help: "HF folder or .gguf file.")
    var model: String

    @Option(help: "Text to tokenize.")
    var prompt: String?

    @Option(help: "File whose contents to tokenize (default: standard input).")
    var text: String?

    @Flag(help: "Prepend BOS when the tokenizer's config adds one.")
    var bos = false

    @Flag(help: "Print only the number of tokens.")
    var count = false

    @Flag(help: "Print the decoded text of the ids instead of the ids.")
    var decode = false

    @Flag(help: "Print {\"ids\": [...]} as JSON.")
    var json = false

    func run() throws {
        let tokenizer = try TokenizerLoader.load(path: model)
        let input = try readInput(prompt: prompt, file: text)
        let ids = bos ? tokenizer.encodeWithSpecials(input) : tokenizer.encode(input)
        if count {
            print(ids.count)
        } else if decode {
            print(tokenizer.decode(ids))
        } else if json {
            try printJSON(["ids": ids])
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
    }
}

/// `--prompt` text, a file's contents, or standard input.
func readInput(prompt: String?, file: String?) throws -> String {
    if let prompt { return prompt }
    if let file {
        guard let data = FilePath.contents(file) else {
            throw InputError("cannot read \(file)")
        }
        return String(decoding: data, as: UTF8.self)
    }
    return String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
}

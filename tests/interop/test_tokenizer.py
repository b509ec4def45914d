"""Our tokenizers against llama.cpp's test vectors and the `tokenizers` package."""
import json
import time

from tokenizers import Tokenizer

from conftest import SHARED, run, run_json

VECTORS = SHARED / "data/tokenizer-vectors"


def vector_pairs(name):
    texts = (VECTORS / f"{name}.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    outputs = (VECTORS / f"{name}.out").read_text().split("\n")
    return list(zip(texts, outputs))


def encode(model, text):
    proc = run("tokenize", model, "--json", input=text)
    return json.loads(proc.stdout)["ids"]


def check_vectors(model, name):
    pairs = vector_pairs(name)
    assert len(pairs) >= 46
    for text, expected in pairs:
        assert encode(model, text) == [int(i) for i in expected.split()], (name, text)


def test_llamacpp_vectors_gpt2():
    check_vectors(VECTORS / "ggml-vocab-gpt-2.gguf", "ggml-vocab-gpt-2.gguf")


def test_llamacpp_vectors_llama_spm():
    check_vectors(VECTORS / "ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-spm.gguf")


def test_smollm2_vectors_from_gguf_and_from_tokenizer_json(smollm2, smollm2_hf):
    check_vectors(smollm2, "smollm2-135m")
    check_vectors(smollm2_hf, "smollm2-135m")


def test_smollm2_ids_equal_tokenizers_on_whole_corpora(smollm2_hf):
    ref = Tokenizer.from_file(str(smollm2_hf / "tokenizer.json"))
    for path in [SHARED / "data/wikitext-2-raw/wiki.test.raw", SHARED / "data/tinyshakespeare/input.txt"]:
        ours = run_json("tokenize", smollm2_hf, "--text", path)["ids"]
        expected = ref.encode(path.read_text(encoding="utf-8"), add_special_tokens=False).ids
        assert len(ours) == len(expected) > 300_000, path
        assert ours == expected, path


def test_decode_inverts_encode(smollm2, tmp_path):
    text = "Hello, world! Ünïcödé 🚀 12345\n\n  indented"
    assert run("tokenize", smollm2, "--prompt", text, "--decode").stdout == text + "\n"

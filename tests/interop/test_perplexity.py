"""`ppl` against perplexity computed with the numpy oracle on ids from `tokenizers`."""
import math
import sys

import numpy as np
from tokenizers import Tokenizer

from conftest import REPO, SHARED, run_json

sys.path.insert(0, str(REPO / "tests"))
from oracle.numpy_forward import forward, load  # noqa: E402


def reference_ppl(folder, text, ctx, windows, protocol):
    config, weights = load(folder)
    ids = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    nll, count = 0.0, 0
    for w in range(min(len(ids) // ctx, windows)):
        window = ids[w * ctx:(w + 1) * ctx]
        logits = forward(config, weights, window)
        logp = logits - logits.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        first = 0 if protocol == "come" else ctx // 2
        for j in range(first, ctx - 1):
            nll -= logp[j, window[j + 1]]
            count += 1
    return math.exp(nll / count), count


def test_tiny_perplexity_both_protocols(tiny, tmp_path):
    text = (SHARED / "data/tinyshakespeare/input.txt").read_text()[:6000]
    path = tmp_path / "text.txt"
    path.write_text(text)
    for name in ["llama-mha", "qwen3"]:
        for protocol in ["come", "llama.cpp"]:
            ours = run_json("ppl", tiny / name, "--text", path, "--ctx", "64", "--windows", "6",
                            "--protocol", protocol, "--batch", "4")
            ref, count = reference_ppl(tiny / name, text, 64, 6, protocol)
            assert ours["scored_tokens"] == count
            assert abs(ours["perplexity"] - ref) <= 1e-4 * ref, (name, protocol, ours["perplexity"], ref)


def test_smollm2_perplexity_window_matches_numpy(smollm2_hf):
    text = (SHARED / "data/wikitext-2-raw/wiki.test.raw").read_text()[:8000]
    ours = run_json("ppl", smollm2_hf, "--text", SHARED / "data/wikitext-2-raw/wiki.test.raw", "--ctx", "512",
                    "--windows", "1")
    ref, count = reference_ppl(smollm2_hf, text, 512, 1, "come")
    assert ours["scored_tokens"] == count == 511
    assert abs(ours["perplexity"] - ref) <= 1e-4 * ref, (ours["perplexity"], ref)


def test_lone_safetensors_file_with_config_beside_it(tiny):
    """ppl takes a .safetensors file too (config.json and tokenizer.json beside it)."""
    text = SHARED / "data/tinyshakespeare/input.txt"
    folder = run_json("ppl", tiny / "qwen3", "--text", text, "--ctx", "32", "--windows", "2")
    single = run_json("ppl", tiny / "qwen3/model.safetensors", "--text", text, "--ctx", "32", "--windows", "2")
    assert folder["perplexity"] == single["perplexity"]

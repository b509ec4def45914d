"""Logits of our forward passes against the independent numpy implementation."""
import sys

import numpy as np

from conftest import REPO, TINY_MODELS, run, our_logits, assert_close

sys.path.insert(0, str(REPO / "tests"))
from oracle.numpy_forward import forward, load  # noqa: E402

PATHS = ["streaming", "whole", "cached"]


def test_tiny_models_match_numpy(tiny, tmp_path):
    rng = np.random.default_rng(0)
    for name in TINY_MODELS:
        config, weights = load(tiny / name)
        ids = rng.integers(0, config["vocab_size"], size=48).tolist()
        ref = forward(config, weights, ids)
        for path in PATHS:
            assert_close(our_logits(tiny / name, ids, path, tmp_path), ref, f"{name} {path}")


def test_gguf_input_matches_numpy(tiny, tmp_path):
    """The converter-style GGUF (permuted q/k) runs to the same logits as its HF source.
    That GGUF carries no llama3 rope scaling (gguf-py's writer skipped the rope_freqs
    tensor), so the reference runs without it too."""
    config, weights = load(tiny / "llama-gqa")
    config.pop("rope_scaling")
    ids = list(range(3, 40))
    ref = forward(config, weights, ids)
    assert_close(our_logits(tiny / "gguf/llama-gqa.f32.gguf", ids, "streaming", tmp_path), ref, "llama-gqa gguf")


def test_smollm2_matches_numpy(smollm2_hf, smollm2, tmp_path):
    config, weights = load(smollm2_hf)
    text_ids = run("tokenize", smollm2_hf, "--prompt",
                   "The tower is 324 metres tall, about the same height as an 81-storey building, and the "
                   "tallest structure in Paris. Its base is square, measuring 125 metres on each side. During its "
                   "construction, the Eiffel Tower surpassed the Washington Monument to become the tallest man-made "
                   "structure in the world.").stdout.split()
    ids = [int(i) for i in text_ids][:64]
    assert len(ids) == 64
    ref = forward(config, weights, ids)
    for path in PATHS:
        assert_close(our_logits(smollm2_hf, ids, path, tmp_path), ref, f"SmolLM2 {path}")
    # From the Q4_1 GGUF directly: the same weights (decoded exactly), so the same logits.
    assert_close(our_logits(smollm2, ids, "streaming", tmp_path), ref, "SmolLM2 gguf")


def test_streaming_and_whole_model_agree(smollm2_hf, tmp_path):
    ids = list(range(100, 160))
    a = our_logits(smollm2_hf, ids, "streaming", tmp_path)
    b = our_logits(smollm2_hf, ids, "whole", tmp_path)
    assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()


def test_generate_continues_with_paris(smollm2):
    out = run("generate", smollm2, "--prompt", "The capital of France is", "-n", "8").stdout
    assert out.startswith(" Paris"), out

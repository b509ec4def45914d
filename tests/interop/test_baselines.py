"""The baseline methods of `prune` against expectations computed independently with numpy
(tests/oracle): which layers each removes, and the weights the merging ones write."""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file

from conftest import REPO, run

sys.path.insert(0, str(REPO / "tests"))
from oracle.come_reference import calibration_statistics  # noqa: E402
from oracle.numpy_forward import calibration_perplexity, load  # noqa: E402


def windows(config, n=3, length=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, config["vocab_size"], size=(n, length)).tolist()


def prune(tiny, tmp_path, name, method, target, ws, *extra):
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps(ws))
    out = tmp_path / f"{name}-{method}"
    proc = run("prune", tiny / name, "--method", method, "--target-layers", target, "--calib-tokens", calib, "-o", out,
               *extra)
    manifest = json.loads((out / "surgery.json").read_text())
    kept = [entry["original"] for entry in manifest["layers"]]
    return out, kept, proc


def keep_layers(config, weights, keep):
    """(config, weights) of the model made of original layers `keep`, renumbered."""
    new_config = dict(config, num_hidden_layers=len(keep))
    new = {k: v for k, v in weights.items() if not k.startswith("model.layers.")}
    for i, old in enumerate(keep):
        prefix = f"model.layers.{old}."
        for k, v in weights.items():
            if k.startswith(prefix):
                new[f"model.layers.{i}." + k[len(prefix):]] = v
    return new_config, new


def layer_params(weights, layer):
    prefix = f"model.layers.{layer}."
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def test_removal_methods_pick_the_oracle_layers(tiny, tmp_path):
    config, weights = load(tiny / "llama-gqa")
    ws = windows(config)
    n = config["num_hidden_layers"]
    bi = calibration_statistics(config, weights, ws, max_window=2)["bi"]
    lowest_bi = sorted(range(n), key=lambda l: (bi[l], l))[:2]
    _, kept, _ = prune(tiny, tmp_path, "llama-gqa", "shortgpt", n - 2, ws)
    assert [a for a, _ in kept] == [l for l in range(n) if l not in lowest_bi]

    _, kept, _ = prune(tiny, tmp_path, "llama-gqa", "reverse", n - 2, ws)
    assert kept == [[l, l] for l in range(n - 2)]

    magnitude = [sum(float(np.abs(v).sum()) for v in layer_params(weights, l).values()) for l in range(n)]
    smallest = sorted(range(n), key=lambda l: (magnitude[l], l))[:1]
    _, kept, _ = prune(tiny, tmp_path, "llama-gqa", "magnitude", n - 1, ws)
    assert [a for a, _ in kept] == [l for l in range(n) if l not in smallest]

    proc = run("prune", tiny / "llama-gqa", "--method", "magnitude+", "--target-layers", 2, "-o", tmp_path / "m+",
               check=False)
    assert proc.returncode != 0 and "first 4 and last 2" in proc.stderr and not (tmp_path / "m+").exists()


def test_sleb_equals_an_exhaustive_search(tiny, tmp_path):
    """Two greedy steps on a 4-layer model, each step trying every layer with numpy."""
    config, weights = load(tiny / "llama-gqa")
    ws = windows(config)
    keep = list(range(config["num_hidden_layers"]))
    for _ in range(2):
        scores = [calibration_perplexity(*keep_layers(config, weights, [k for k in keep if k != l]), ws) for l in keep]
        keep.remove(keep[int(np.argmin(scores))])
    _, kept, proc = prune(tiny, tmp_path, "llama-gqa", "sleb", 2, ws)
    assert [a for a, _ in kept] == keep, (kept, keep, proc.stderr)


def test_laco_and_mka_write_the_weight_sums(tiny, tmp_path):
    config, weights = load(tiny / "llama-mha")  # f32, so the sums are stored exactly as f32
    ws = windows(config)
    n = config["num_hidden_layers"]
    # LaCo: one group of 2 (the target allows no more): W* = W_a + (W_b - W_a); norms of W_a.
    out, kept, _ = prune(tiny, tmp_path, "llama-mha", "laco", n - 1, ws, "--laco-threshold=-0.5")
    merged = [i for i, (a, b) in enumerate(kept) if b > a]
    assert len(merged) == 1
    i = merged[0]
    a, b = kept[i]
    tensors = load_file(str(out / "model.safetensors"))
    wa, wb = layer_params(weights, a), layer_params(weights, b)
    for suffix, value in wa.items():
        expected = value if "norm" in suffix else value + (wb[suffix] - value)
        assert np.allclose(tensors[f"model.layers.{i}.{suffix}"], expected, rtol=1e-6, atol=1e-7), suffix
    # MKA: the last two layers fused with e^0.5/(1+e^0.5) and the rest, norms included.
    out, kept, _ = prune(tiny, tmp_path, "llama-mha", "mka", n - 1, ws)
    assert kept[-1] == [n - 2, n - 1]
    alpha = math.exp(0.5) / (1 + math.exp(0.5))
    tensors = load_file(str(out / "model.safetensors"))
    wa, wb = layer_params(weights, n - 2), layer_params(weights, n - 1)
    for suffix, value in wa.items():
        expected = alpha * value + (1 - alpha) * wb[suffix]
        assert np.allclose(tensors[f"model.layers.{n - 2}.{suffix}"], expected, rtol=1e-5, atol=1e-6), suffix
    run("verify", out)


def test_laco_accepts_by_last_layer_similarity(tiny, tmp_path):
    """The merge LaCo keeps is the first, from the top, whose last-layer states stay above
    the threshold; with a threshold no merge reaches, it relaxes by 0.05 until one does."""
    config, weights = load(tiny / "llama-gqa")
    ws = windows(config)
    n = config["num_hidden_layers"]

    def last_states(cfg, w):
        from oracle.come_reference import layer_activations
        acts, _ = layer_activations(cfg, w, ws)
        return acts[-1]["output"]

    reference = last_states(config, weights)
    similarity = {}
    for start in range(1, n - 1):  # groups of 2 (target n - 1), from layer 1
        merged_w = dict(weights)
        wa, wb = layer_params(weights, start), layer_params(weights, start + 1)
        for suffix, value in wa.items():
            if "norm" not in suffix:
                merged_w[f"model.layers.{start}.{suffix}"] = value + (wb[suffix] - value)
        cfg, w = keep_layers(config, merged_w, [l for l in range(n) if l != start + 1])
        h = last_states(cfg, w)
        cos = (h * reference).sum(-1) / (np.linalg.norm(h, axis=-1) * np.linalg.norm(reference, axis=-1))
        similarity[start] = float(cos.mean())
    threshold = 0.65
    while True:
        chosen = next((s for s in sorted(similarity, reverse=True) if similarity[s] > threshold + 1e-9), None)
        if chosen is not None:
            break
        threshold -= 0.05
    _, kept, proc = prune(tiny, tmp_path, "llama-gqa", "laco", n - 1, ws, "--laco-group", 2)
    assert [chosen, chosen + 1] in kept, (similarity, kept, proc.stderr)

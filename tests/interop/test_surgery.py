"""CoMe surgery against the independent numpy reference (tests/oracle/come_reference.py)."""
import json
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import REPO, TINY_MODELS, run, run_json

sys.path.insert(0, str(REPO / "tests"))
from oracle.come_reference import (calibration_statistics, merge_layers, replace_layers,  # noqa: E402
                                   retention_ratios)
from oracle.numpy_forward import calibration_perplexity, load  # noqa: E402


def windows(config, n=4, length=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, config["vocab_size"], size=(n, length)).tolist()


def write_windows(tmp_path, ws):
    path = tmp_path / "calib.json"
    path.write_text(json.dumps(ws))
    return path


def close(a, b, rel=1e-4, abs_=1e-6):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.all(np.abs(a - b) <= abs_ + rel * np.abs(b))


def test_statistics_match_reference(tiny, tmp_path):
    for name in TINY_MODELS:
        config, weights = load(tiny / name)
        ws = windows(config)
        calib = write_windows(tmp_path, ws)
        ref = calibration_statistics(config, weights, ws, max_window=3)
        for size in [w for w in (2, 3) if w <= config["num_hidden_layers"]]:
            ours = run_json("scores", tiny / name, "--calib-tokens", calib, "--merge-item", size, "--sensitivities")
            assert close(ours["bi"], ref["bi"]), (name, ours["bi"], ref["bi"])
            assert close(ours["sbi"], ref["sbi"][size]), (name, size)
            for l in range(config["num_hidden_layers"]):
                assert close(ours["ffn_sensitivity"][l], ref["ffn_sensitivity"][l]), (name, l)
                assert close(ours["attention_sensitivity"][l], ref["attn_channel_sensitivity"][l]), (name, l)
                assert close(ours["kv_group_score"][l], ref["kv_group_score"][l]), (name, l)
            angular = run_json("scores", tiny / name, "--calib-tokens", calib, "--merge-item", size,
                               "--skip-metric", "angular-last-token")
            assert close(angular["sbi"], ref["sbi_angular_last_token"][size]), (name, size)


def merged_model(tiny, tmp_path, name, layers, ratios=None, extra=()):
    config, weights = load(tiny / name)
    ws = windows(config)
    calib = write_windows(tmp_path, ws)
    out = tmp_path / f"{name}-{'-'.join(map(str, layers))}-{ratios}-{'-'.join(extra)}"
    args = ["merge", tiny / name, "--layers", ",".join(map(str, layers)), "--calib-tokens", calib, "-o", out, *extra]
    if ratios:
        args += ["--ratios", ",".join(map(str, ratios))]
    run(*args)
    tensors = {}
    for f in sorted(out.glob("*.safetensors")):
        tensors.update({k: v.astype(np.float64) for k, v in load_file(f).items()})
    return config, weights, ws, out, tensors


def test_merges_match_reference(tiny, tmp_path):
    cases = [("llama-mha", [1, 2], [0.5, 0.5]), ("llama-mha", [0, 1, 2], [0.5, 0.3, 0.2]),
             ("llama-gqa", [1, 2], [0.5, 0.5]), ("llama-gqa", [1, 2, 3], None), ("llama-gqa", [2, 3], None),
             ("qwen2", [1, 2], [0.75, 0.25]), ("qwen2", [0, 1, 2], None), ("qwen3", [0, 1], [0.5, 0.5]),
             ("qwen3", [0, 1], None)]
    for name, layers, ratios in cases:
        config, weights, ws, out, tensors = merged_model(tiny, tmp_path, name, layers, ratios)
        manifest = json.loads((out / "surgery.json").read_text())
        ref_stats = calibration_statistics(config, weights, ws, max_window=3)
        if ratios is None:
            qwen = config["model_type"] in ("qwen2", "qwen3")
            ratios = retention_ratios([ref_stats["bi"][l] for l in layers], p=32 if qwen else 1, rho=0.85 if qwen else None)
        assert close(manifest["steps"][0]["ratios"], ratios, rel=1e-6), (name, layers)
        expected = merge_layers(config, weights, layers, ratios, ref_stats["ffn_sensitivity"], ref_stats["kv_group_score"])
        first = layers[0]
        # f16 models store the merged values in f16 too.
        tol = 1e-3 if config.get("torch_dtype") == "float16" else 1e-6
        for suffix, value in expected.items():
            ours = tensors[f"model.layers.{first}.{suffix}"]
            assert close(ours, value, rel=tol, abs_=tol), (name, layers, suffix)
        # Later layers are the originals, renumbered; the config has the new depth.
        n = config["num_hidden_layers"]
        for old in range(layers[-1] + 1, n):
            new = old - (len(layers) - 1)
            for key in [k for k in weights if k.startswith(f"model.layers.{old}.")]:
                assert np.array_equal(tensors[key.replace(f"layers.{old}.", f"layers.{new}.")], weights[key]), key
        assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == n - len(layers) + 1
        run("verify", out)


@pytest.mark.parametrize("name", ["llama-gqa", "gemma2", "phi3"])
def test_gqa_query_heads_keep_their_kv_heads(tiny, tmp_path, name):
    """For every ratio, each merged query head reads (through merged KV head j = h // G)
    the K/V of the same source layer and group it read before the merge."""
    config, weights = load(tiny / name)
    heads, kv, hidden = config["num_attention_heads"], config["num_key_value_heads"], config["hidden_size"]
    d = config.get("head_dim", hidden // heads)
    g = heads // kv
    if name == "phi3":
        weights = split_fused(weights, heads * d, kv * d)
    for r in [0.0, 0.25, 0.5, 0.75, 1.0]:
        _, _, _, _, tensors = merged_model(tiny, tmp_path, name, [1, 2], [r, 1 - r])
        fused = tensors.pop("model.layers.1.self_attn.qkv_proj.weight", None)
        if fused is not None:  # Phi-3: the q, k and v rows of the fused tensor
            for part, rows in zip("qkv", np.split(fused, [heads * d, heads * d + kv * d])):
                tensors[f"model.layers.1.self_attn.{part}_proj.weight"] = rows
        q = tensors["model.layers.1.self_attn.q_proj.weight"].reshape(heads, d, hidden)
        k = tensors["model.layers.1.self_attn.k_proj.weight"].reshape(kv, d, hidden)
        v = tensors["model.layers.1.self_attn.v_proj.weight"].reshape(kv, d, hidden)
        def find(matrix, count):
            for layer in (1, 2):
                src = weights[f"model.layers.{layer}.self_attn.{matrix}_proj.weight"].reshape(count, d, hidden)
                for i in range(count):
                    yield layer, i, src[i]
        for h in range(heads):
            (ql, qh), = [(l, i) for l, i, m in find("q", heads) if np.array_equal(m, q[h])]
            (kl, kg), = [(l, i) for l, i, m in find("k", kv) if np.array_equal(m, k[h // g])]
            (vl, vg), = [(l, i) for l, i, m in find("v", kv) if np.array_equal(m, v[h // g])]
            assert ql == kl == vl and qh // g == kg == vg, (r, h)
            assert qh % g == h % g, "query heads keep their order inside the group"


def split_fused(weights, q_rows, kv_rows):
    """Phi-3's qkv_proj as q/k/v_proj (the rows in that order)."""
    out = dict(weights)
    for name in [n for n in weights if n.endswith("qkv_proj.weight")]:
        p = name[: -len("qkv_proj.weight")]
        for part, rows in zip("qkv", np.split(out.pop(name), [q_rows, q_rows + kv_rows])):
            out[f"{p}{part}_proj.weight"] = rows
    return out


def test_ratio_one_keeps_the_first_layer(tiny, tmp_path):
    for name in TINY_MODELS:
        config, weights, _, _, tensors = merged_model(tiny, tmp_path, name, [0, 1], [1, 0])
        _, _, _, _, kept = merged_model(tiny, tmp_path, name, [0, 1], [1, 0], extra=("--norms", "keep-first"))
        for key in [k for k in weights if k.startswith("model.layers.0.")]:
            tol = 1e-3 if config.get("torch_dtype") == "float16" else 1e-7
            if "layernorm" in key:
                mean = (weights[key] + weights[key.replace("layers.0.", "layers.1.")]) / 2
                assert close(tensors[key], mean, rel=tol, abs_=tol), key
                assert np.array_equal(kept[key], weights[key]), key
            else:
                assert np.array_equal(tensors[key], weights[key]), (name, key)


def test_prune_resume_equals_recompute_and_verify_catches_a_flipped_byte(tiny, tmp_path):
    config, _ = load(tiny / "llama-gqa")
    calib = write_windows(tmp_path, windows(config, n=3, length=16))
    outs = []
    for flag in [[], ["--no-resume"]]:
        out = tmp_path / f"pruned{len(flag)}"
        proc = run("prune", tiny / "llama-gqa", "--target-layers", "2", "--calib-tokens", calib, "-o", out, *flag)
        outs.append((out, proc.stdout))
    a, b = (json.loads((o / "surgery.json").read_text()) for o, _ in outs)
    assert a["steps"] == b["steps"] and a["output"]["tensors"] == b["output"]["tensors"]
    assert a["layers"][-1]["original"][1] == 3 and len(a["layers"]) == 2
    forwards = [int(s.split("(")[1].split(" layer forwards")[0]) for _, s in outs]
    assert forwards[0] <= forwards[1], forwards
    # One flipped byte in any tensor is caught and named.
    shard = outs[0][0] / "model.safetensors"
    raw = bytearray(shard.read_bytes())
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    begin = header["model.layers.1.mlp.down_proj.weight"]["data_offsets"][0]
    raw[8 + int.from_bytes(raw[:8], "little") + begin + 3] ^= 0x10
    shard.write_bytes(bytes(raw))
    proc = run("verify", outs[0][0], check=False)
    assert proc.returncode == 1 and "model.layers.1.mlp.down_proj.weight" in proc.stdout


def test_come_p_scores_every_ratio_like_the_reference(tiny, tmp_path):
    """Alg. 2: each candidate r in {0, 1/4, ..., 1} is the reference merge with ratios
    [r, 1 - r], scored by calibration perplexity; the lowest one is kept."""
    for name in ["llama-gqa", "qwen2"]:
        config, weights = load(tiny / name)
        ws = windows(config, n=3, length=16)
        calib = write_windows(tmp_path, ws)
        out = tmp_path / f"{name}-come-p"
        run("prune", tiny / name, "--method", "come-p", "--granularity", 4, "--target-layers",
            config["num_hidden_layers"] - 1, "--calib-tokens", calib, "-o", out)
        step = json.loads((out / "surgery.json").read_text())["steps"][0]
        stats = calibration_statistics(config, weights, ws, max_window=2)
        first = int(np.argmin(stats["sbi"][2]))
        assert step["window_current"] == [first, first + 1]
        expected = []
        for r in [0, 0.25, 0.5, 0.75, 1]:
            merged = merge_layers(config, weights, [first, first + 1], [r, 1 - r], stats["ffn_sensitivity"],
                                  stats["kv_group_score"])
            expected.append(calibration_perplexity(*replace_layers(config, weights, [first, first + 1], merged), ws))
        ours = [c["perplexity"] for c in step["candidates"]]
        assert [c["ratio"] for c in step["candidates"]] == [0, 0.25, 0.5, 0.75, 1]
        assert close(ours, expected, rel=1e-4), (name, ours, expected)
        best = [0, 0.25, 0.5, 0.75, 1][int(np.argmin(expected))]
        assert close(step["ratios"], [best, 1 - best], rel=1e-9), (step["ratios"], best)


def test_saved_step_resumes_to_the_uninterrupted_result(tiny, tmp_path):
    config, _ = load(tiny / "llama-gqa")
    calib = write_windows(tmp_path, windows(config, n=3, length=16))
    common = ["--target-layers", 2, "--calib-tokens", calib]
    for method in ["come", "come-p"]:
        full, steps = tmp_path / f"{method}-full", tmp_path / f"{method}-steps"
        run("prune", tiny / "llama-gqa", "--method", method, *common, "--save-steps", steps, "-o", full)
        assert sorted(p.name for p in steps.iterdir()) == ["step-01", "step-02"]
        run("verify", steps / "step-01")
        assert json.loads((steps / "step-01/config.json").read_text())["num_hidden_layers"] == 3
        resumed = tmp_path / f"{method}-resumed"
        proc = run("prune", tiny / "llama-gqa", "--method", method, *common, "--resume", steps / "step-01/surgery.json",
                   "-o", resumed)
        assert "replayed 1 merges" in proc.stderr
        a, b = (json.loads((o / "surgery.json").read_text()) for o in (full, resumed))
        assert a["steps"] == b["steps"] and a["output"]["tensors"] == b["output"]["tensors"], method
    # A manifest from another method, or another input, is refused with one line.
    proc = run("prune", tiny / "llama-gqa", "--method", "come", *common, "--resume",
               tmp_path / "come-p-steps/step-01/surgery.json", "-o", tmp_path / "x", check=False)
    assert proc.returncode != 0 and "other method options" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run("prune", tiny / "llama-mha", "--method", "come", *common, "--resume",
               tmp_path / "come-steps/step-01/surgery.json", "-o", tmp_path / "y", check=False)
    assert proc.returncode != 0 and "another model" in proc.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # A tampered manifest (a kept channel that does not exist) is refused, not replayed.
    manifest = json.loads((tmp_path / "come-steps/step-01/surgery.json").read_text())
    manifest["steps"][0]["kept"][0]["ffn_channels"][0] = 10**6
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(manifest))
    proc = run("prune", tiny / "llama-gqa", "--method", "come", *common, "--resume", bad, "-o", tmp_path / "z", check=False)
    assert proc.returncode != 0 and str(bad) in proc.stderr and "kept units" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "z").exists()


def test_bad_surgery_arguments(tiny, tmp_path):
    for args, message in [(["merge", tiny / "qwen3", "--layers", "1,2", "-o", tmp_path / "x"], "out of range"),
                          (["merge", tiny / "qwen3", "--layers", "0,2", "-o", tmp_path / "x"], "adjacent"),
                          (["merge", tiny / "qwen3", "--layers", "0,1", "--ratios", "0.5,0.6", "-o", tmp_path / "x"], "sum"),
                          (["prune", tiny / "qwen3", "--target-layers", "5", "-o", tmp_path / "x"], "out of range")]:
        proc = run(*args, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists()


def test_inputs_unchanged_and_gguf_output(tiny, tmp_path):
    from test_bad_input import tree_digest
    config, _ = load(tiny / "llama-mha")
    calib = write_windows(tmp_path, windows(config, n=3, length=16))
    before = tree_digest(tiny)
    run("scores", tiny / "llama-mha", "--calib-tokens", calib)
    run("merge", tiny / "llama-mha", "--layers", "1,2", "--calib-tokens", calib, "-o", tmp_path / "hf")
    run("merge", tiny / "llama-mha", "--layers", "1,2", "--calib-tokens", calib, "-o", tmp_path / "m.gguf")
    run("prune", tiny / "qwen2", "--target-layers", "2", "--calib-tokens", calib, "-o", tmp_path / "p")
    assert tree_digest(tiny) == before
    assert "OK" in run("verify", tmp_path / "m.gguf").stdout
    assert (tmp_path / "m.surgery.json").exists()
    # The GGUF (q/k permuted, block count 2) runs to the same perplexity as the HF output.
    text = tmp_path / "t.txt"
    text.write_text((REPO.parent / "shared/data/tinyshakespeare/input.txt").read_text()[:4000])
    a = run_json("ppl", tmp_path / "hf", "--text", text, "--ctx", "32", "--windows", "4")
    b = run_json("ppl", tmp_path / "m.gguf", "--text", text, "--ctx", "32", "--windows", "4")
    assert abs(a["perplexity"] - b["perplexity"]) <= 1e-5 * a["perplexity"]


def test_smollm2_merge_runs_end_to_end(smollm2, tmp_path):
    out = tmp_path / "merged"
    run("merge", smollm2, "--layers", "26,27", "--nsamples", "2", "--seqlen", "64", "-o", out)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 29
    manifest = json.loads((out / "surgery.json").read_text())
    assert manifest["layers"][26]["original"] == [26, 27] and manifest["distillation_pairs"] == [{"a": 27, "b": 26}]
    assert len(manifest["source"]["tensors"]) == 272
    assert "OK" in run("verify", out).stdout
    assert run("generate", out, "--prompt", "The capital of France is", "-n", "4").stdout.strip()

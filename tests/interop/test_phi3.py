"""Phi-3 logits of our forward passes against the independent numpy reference
(tests/oracle/phi3_reference.py), on the tiny phi3 fixture.

Two inputs: 12 ids (12 <= original_max_position_embeddings 16, so short factors) and 40 ids
(40 > 16, long factors). The cached path feeds one token at a time, as generate does; for
Phi-3, transformers' generate re-runs the prefix when the sequence first grows past 16 tokens,
so its row j is the last row of a full forward over ids[:j + 1] (short factors up to row 15,
long from row 16 on) — the reference's incremental_logits.

The reference-only tests check that the fixture exercises what sets Phi-3 apart: the short
and long factors and the attention factor change the logits, and with them neutralized the
fused qkv_proj / gate_up_proj model is the Llama reference on the split weights."""
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import REPO, run, our_logits, assert_close, relative_change

sys.path.insert(0, str(REPO / "tests"))
from oracle import numpy_forward  # noqa: E402
from oracle.phi3_reference import (  # noqa: E402
    attention_factor, forward, incremental_logits, load, original_max_positions, uses_long_factor)

PATHS = ["streaming", "whole", "cached"]
N_SHORT, N_LONG = 12, 40


@pytest.fixture(scope="module")
def phi3(tiny):
    folder = tiny / "phi3"
    assert (folder / "config.json").exists(), "fixtures/tiny/phi3 missing: run scripts/fixtures/make_tiny_models.py"
    config, weights = load(folder)
    rng = np.random.default_rng(0)
    ids = {n: rng.integers(0, config["vocab_size"], size=n).tolist() for n in (N_SHORT, N_LONG)}
    return folder, config, weights, ids


@pytest.mark.parametrize("n", [N_SHORT, N_LONG])
def test_phi3_matches_numpy(phi3, tmp_path, n):
    folder, config, weights, all_ids = phi3
    ids = all_ids[n]
    assert uses_long_factor(config, n) == (n > original_max_positions(config))
    ref = forward(config, weights, ids)
    for path in ("streaming", "whole"):
        assert_close(our_logits(folder, ids, path, tmp_path), ref, f"phi3 {n} ids {path}")
    # one token at a time: each row sees the factors of the length so far
    ref_cached = incremental_logits(config, weights, ids)
    if n <= original_max_positions(config):
        assert np.abs(ref_cached - ref).max() <= 1e-12 * np.abs(ref).max()
    assert_close(our_logits(folder, ids, "cached", tmp_path), ref_cached, f"phi3 {n} ids cached")


def test_phi3_fixture_config(phi3):
    _, config, weights, _ = phi3
    assert config["model_type"] == "phi3" and config["architectures"] == ["Phi3ForCausalLM"]
    assert "head_dim" not in config and config["tie_word_embeddings"] is False
    assert config["sliding_window"] is None and config["hidden_act"] == "silu"
    assert config["original_max_position_embeddings"] < N_LONG and N_SHORT <= config["original_max_position_embeddings"]
    assert config["max_position_embeddings"] > config["original_max_position_embeddings"]
    scaling = config["rope_scaling"]
    assert scaling["type"] == "longrope" and set(scaling) == {"type", "short_factor", "long_factor"}
    d = config["hidden_size"] // config["num_attention_heads"]
    short, long = scaling["short_factor"], scaling["long_factor"]
    assert len(short) == len(long) == d // 2
    assert all(1.0 <= f <= 1.5 for f in short) and all(1.0 <= f <= 8.0 for f in long)
    assert len(set(short) | set(long)) == d  # all distinct
    assert "lm_head.weight" in weights
    assert not np.array_equal(weights["lm_head.weight"], weights["model.embed_tokens.weight"])
    q, kv = config["num_attention_heads"] * d, config["num_key_value_heads"] * d
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        assert weights[p + "self_attn.qkv_proj.weight"].shape == (q + 2 * kv, hidden)
        assert weights[p + "mlp.gate_up_proj.weight"].shape == (2 * inter, hidden)


def test_phi3_short_and_long_factors_differ(phi3):
    """The same 12 ids with the long factors (as if the forward spanned 40 positions) give
    clearly different logits, so the fixture tells the two factor sets apart."""
    _, config, weights, ids = phi3
    original = original_max_positions(config)
    short = forward(config, weights, ids[N_SHORT])
    long = forward(config, weights, ids[N_SHORT], positions_total=N_LONG)
    assert relative_change(long, short) > 1e-2
    # the switch is strict: a length of exactly original_max_position_embeddings keeps the
    # short factors, one more takes the long ones
    assert np.array_equal(forward(config, weights, ids[N_SHORT], positions_total=original), short)
    assert np.array_equal(forward(config, weights, ids[N_SHORT], positions_total=original + 1), long)
    # and the 40-id input is changed as much by being given the short factors instead
    ref = forward(config, weights, ids[N_LONG])
    assert relative_change(forward(config, weights, ids[N_LONG], positions_total=original), ref) > 1e-2
    # the cached path differs from the full forward on the 40 ids (rows 0..15 are short)
    inc = incremental_logits(config, weights, ids[N_LONG])
    assert relative_change(inc, ref) > 1e-2
    assert np.abs(inc[original:] - ref[original:]).max() <= 1e-12 * np.abs(ref).max()


def test_phi3_attention_factor_is_not_one_and_matters(phi3):
    _, config, weights, ids = phi3
    factor = config["max_position_embeddings"] / config["original_max_position_embeddings"]
    expected = np.sqrt(1 + np.log(factor) / np.log(config["original_max_position_embeddings"]))
    assert attention_factor(config) == pytest.approx(expected, rel=1e-15)
    assert abs(attention_factor(config) - 1.0) > 0.1
    flat = {**config, "rope_scaling": {**config["rope_scaling"], "attention_factor": 1.0}}
    assert attention_factor(flat) == 1.0
    for n in (N_SHORT, N_LONG):
        assert relative_change(forward(flat, weights, ids[n]), forward(config, weights, ids[n])) > 1e-2


def test_phi3_is_llama_on_split_weights(phi3):
    """With every short factor equal to c, Phi-3 is Llama with linear rope scaling c on the
    split qkv_proj / gate_up_proj, with q and k scaled by the attention factor (cos and sin
    carry it, so each score is multiplied by its square). Checks the fused layouts against
    tests/oracle/numpy_forward.py."""
    _, config, weights, ids = phi3
    c = 1.25
    d = config["hidden_size"] // config["num_attention_heads"]
    phi_cfg = {**config, "rope_scaling": {**config["rope_scaling"], "short_factor": [c] * (d // 2)}}
    a = attention_factor(phi_cfg)
    q, kv = config["num_attention_heads"] * d, config["num_key_value_heads"] * d
    inter = config["intermediate_size"]
    llama_w = {}
    for name, v in weights.items():
        if name.endswith("self_attn.qkv_proj.weight"):
            p = name[: -len("qkv_proj.weight")]
            llama_w[p + "q_proj.weight"] = v[:q] * a
            llama_w[p + "k_proj.weight"] = v[q:q + kv] * a
            llama_w[p + "v_proj.weight"] = v[q + kv:]
        elif name.endswith("mlp.gate_up_proj.weight"):
            p = name[: -len("gate_up_proj.weight")]
            llama_w[p + "gate_proj.weight"] = v[:inter]
            llama_w[p + "up_proj.weight"] = v[inter:]
        else:
            llama_w[name] = v
    llama_cfg = {k: v for k, v in config.items() if k != "rope_scaling"}
    llama_cfg.update(model_type="llama", head_dim=d, rope_scaling={"rope_type": "linear", "factor": c})
    ours = forward(phi_cfg, weights, ids[N_SHORT])
    theirs = numpy_forward.forward(llama_cfg, llama_w, ids[N_SHORT])
    assert np.abs(ours - theirs).max() <= 1e-12 * np.abs(theirs).max()


def split(config, weights):
    """Phi-3's fused tensors as the parts they stand for (LLaMA names)."""
    d = config["hidden_size"] // config["num_attention_heads"]
    q, kv, inter = config["num_attention_heads"] * d, config["num_key_value_heads"] * d, config["intermediate_size"]
    out = {}
    for name, v in weights.items():
        if name.endswith("self_attn.qkv_proj.weight"):
            p = name[: -len("qkv_proj.weight")]
            out.update({p + "q_proj.weight": v[:q], p + "k_proj.weight": v[q:q + kv], p + "v_proj.weight": v[q + kv:]})
        elif name.endswith("mlp.gate_up_proj.weight"):
            p = name[: -len("gate_up_proj.weight")]
            out.update({p + "gate_proj.weight": v[:inter], p + "up_proj.weight": v[inter:]})
        else:
            out[name] = v
    return out


def fuse(weights):
    """The inverse of `split`."""
    out = dict(weights)
    for name in [n for n in weights if n.endswith("self_attn.q_proj.weight")]:
        p = name[: -len("q_proj.weight")]
        out[p + "qkv_proj.weight"] = np.concatenate([out.pop(p + s) for s in ("q_proj.weight", "k_proj.weight", "v_proj.weight")])
    for name in [n for n in weights if n.endswith("mlp.gate_proj.weight")]:
        p = name[: -len("gate_proj.weight")]
        out[p + "gate_up_proj.weight"] = np.concatenate([out.pop(p + "gate_proj.weight"), out.pop(p + "up_proj.weight")])
    return out


def folder_tensors(out):
    t = {}
    for f in sorted(out.glob("*.safetensors")):
        t.update({k: v for k, v in load_file(f).items()})
    return t


def test_phi3_converts_fused_and_llama_cpp_agrees(phi3, tmp_path):
    """convert writes qkv_proj and gate_up_proj back fused and unchanged; the GGUF export
    (attn_qkv, fused ffn_up, longrope factor tensors and keys) gives llama.cpp's logits
    equal to ours, and reads back to them."""
    from gguf import GGUFReader
    from test_llama_cpp import llama

    folder, config, weights, ids = phi3
    out = tmp_path / "hf"
    run("convert", folder, "-o", out)
    src, back = folder_tensors(folder), folder_tensors(out)
    assert sorted(src) == sorted(back)
    for name in src:
        assert np.array_equal(src[name], back[name]), name
    # llama.cpp sets attributes on "</s>", "<unk>" and "<s>" of any model whose name says
    # phi3 and fails without them; the tiny vocabulary has none, so the export is named
    # after a neutral copy of the folder.
    import shutil
    neutral = tmp_path / "tiny-fused"
    shutil.copytree(folder, neutral)
    gguf = tmp_path / "fused.gguf"
    run("export", neutral, "-o", gguf, "--dtype", "f32")
    names = {t.name for t in GGUFReader(str(gguf)).tensors}
    assert {"blk.0.attn_qkv.weight", "blk.0.ffn_up.weight", "rope_factors_long.weight", "rope_factors_short.weight"} <= names
    assert "blk.0.ffn_gate.weight" not in names
    # llama.cpp picks the factor set by its context size (> the original 16 here: long),
    # transformers by the positions run; 40 positions use the long factors in both.
    long_ids = ids[N_LONG]
    lines = llama("llama-dump-logits", gguf, *long_ids).stdout.strip().splitlines()
    theirs = np.array([[float(x) for x in line.split()] for line in lines])
    ours = our_logits(folder, long_ids, "streaming", tmp_path)
    scale = np.abs(ours).max()
    err = np.abs(theirs - ours).max() / scale
    print(f"phi3: max |llama.cpp - ours| / max|logit| = {err:.2e}")
    assert err <= 1e-5, err
    for path in PATHS[:2]:
        assert np.abs(our_logits(gguf, long_ids, path, tmp_path) - ours).max() <= 1e-5 * scale


def test_phi3_surgery_follows_the_merge_rules(phi3, tmp_path):
    """merge on Phi-3 moves whole KV groups and FFN channels through the fused tensors (the
    numpy reference's rules on the split weights), writes them fused, and the merged model
    runs to the reference forward; prune --method come and shortgpt run and verify."""
    import json

    from oracle.come_reference import merge_layers, replace_layers

    folder, config, weights, ids = phi3
    ws = np.random.default_rng(1).integers(0, config["vocab_size"], size=(4, 24)).tolist()
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps(ws))
    out = tmp_path / "m12"
    run("merge", folder, "--layers", "1,2", "--ratios", "0.5,0.5", "--calib-tokens", calib, "-o", out)
    step = json.loads((out / "surgery.json").read_text())["steps"][0]
    n = config["num_hidden_layers"]
    ffn = [[0.0] * config["intermediate_size"] for _ in range(n)]
    kv = [[0.0] * config["num_key_value_heads"] for _ in range(n)]
    for layer, kept in zip([1, 2], step["kept"]):
        for i in kept["ffn_channels"]:
            ffn[layer][i] = 1.0
        for j in kept["kv_groups"]:
            kv[layer][j] = 1.0
    llama_config = dict(config, head_dim=config["hidden_size"] // config["num_attention_heads"])
    parts = split(config, weights)
    merged = merge_layers(llama_config, parts, [1, 2], step["ratios"], ffn, kv)
    ours = split(config, {k: v.astype(np.float64) for k, v in folder_tensors(out).items()})
    assert "model.layers.1.self_attn.qkv_proj.weight" in folder_tensors(out)
    for suffix, value in merged.items():
        assert np.allclose(ours[f"model.layers.1.{suffix}"], value, rtol=1e-6, atol=1e-6), suffix
    ref_config, ref_parts = replace_layers(config, parts, [1, 2], merged)
    for n_ids in (N_SHORT, N_LONG):
        assert_close(our_logits(out, ids[n_ids], "streaming", tmp_path),
                     forward(ref_config, fuse(ref_parts), ids[n_ids]), f"phi3 merged, {n_ids} ids")
    run("verify", out)
    for method in ("come", "shortgpt"):
        pruned = tmp_path / method
        run("prune", folder, "--method", method, "--target-layers", 2, "--calib-tokens", calib, "-o", pruned)
        run("verify", pruned)
        assert "model.layers.1.mlp.gate_up_proj.weight" in folder_tensors(pruned)


def test_phi3_heal_refits_and_writes_fused(phi3, tmp_path):
    """heal applies to Phi-3 (its MLP output joins the residual stream directly): the refit
    lowers the merged layer's output MSE and the healed model is written fused."""
    import json

    folder, config, weights, ids = phi3
    ws = np.random.default_rng(2).integers(0, config["vocab_size"], size=(8, 24)).tolist()
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps(ws))
    pruned, healed = tmp_path / "p2", tmp_path / "h2"
    run("prune", folder, "--method", "come", "--target-layers", 2, "--calib-tokens", calib, "-o", pruned)
    run("heal", folder, pruned, "--calib-tokens", calib, "-o", healed)
    refit = json.loads((healed / "surgery.json").read_text())["healing"]["refits"][0]
    assert refit["mse_after"] < refit["mse_before"], refit
    tensors = folder_tensors(healed)
    assert "model.layers.1.mlp.gate_up_proj.weight" in tensors and "model.layers.1.mlp.up_proj.weight" not in tensors
    run("verify", healed)

"""An independent numpy (float64) reference for CoMe: calibration statistics (BI, SBI,
channel sensitivity, KV-group scores), retention ratios, unit counts and the
concatenation merge of adjacent layers.

Written only from docs/SPEC.md sections 3-4 and the CoMe paper (Algorithm 1,
Appendix C); it shares no code with ckpt-surgeon's Swift implementation. The
per-layer math is the same as numpy_forward.forward (whose helpers it imports).

Conventions:
  * Layer indices are 0-based. "input" of layer l is H^(l-1) (the embeddings for
    l = 0), "output" is H^(l).
  * All statistics average over every calibration token with equal weight, except
    the angular-last-token SBI, which averages over windows (last token only).
"""
import math

import numpy as np

try:  # imported as part of the `oracle` package (tests/ on sys.path)
    from .numpy_forward import forward, inv_freq, load, rms_norm, rotate  # noqa: F401
except ImportError:  # run as a script: python tests/oracle/come_reference.py
    from numpy_forward import forward, inv_freq, load, rms_norm, rotate  # noqa: F401


# ----------------------------------------------------------------------------
# Shapes and per-layer weights


def dims(config):
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    return hidden, heads, kv_heads, head_dim


def layer_weights(weights, layer):
    """The tensors of model.layers.{layer}, keyed by HF name suffix."""
    prefix = f"model.layers.{layer}."
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def _rope_tables(config, t):
    angles = np.outer(np.arange(t, dtype=np.float64), inv_freq(config))
    cos = np.cos(np.concatenate([angles, angles], -1))[None]
    sin = np.sin(np.concatenate([angles, angles], -1))[None]
    return cos, sin


def layer_forward(config, lw, x):
    """One decoder layer on one window. lw: suffix -> tensor (see layer_weights).
    x: [t, hidden]. Returns dict with attn_out, mlp_mid and output.
    Same math as numpy_forward.forward's loop body."""
    t = x.shape[0]
    _, heads, kv_heads, head_dim = dims(config)
    eps = config["rms_norm_eps"]
    cos, sin = _rope_tables(config, t)
    mask = np.triu(np.full((t, t), -np.inf), 1)

    def lin(name, v):
        return v @ lw[name + ".weight"].T + lw.get(name + ".bias", 0)

    h = rms_norm(x, lw["input_layernorm.weight"], eps)
    q = lin("self_attn.q_proj", h).reshape(t, heads, head_dim).transpose(1, 0, 2)
    k = lin("self_attn.k_proj", h).reshape(t, kv_heads, head_dim).transpose(1, 0, 2)
    v = lin("self_attn.v_proj", h).reshape(t, kv_heads, head_dim).transpose(1, 0, 2)
    if "self_attn.q_norm.weight" in lw:
        q = rms_norm(q, lw["self_attn.q_norm.weight"], eps)
        k = rms_norm(k, lw["self_attn.k_norm.weight"], eps)
    q, k = rotate(q, cos, sin), rotate(k, cos, sin)
    k = np.repeat(k, heads // kv_heads, axis=0)  # query head h reads KV head h // G
    v = np.repeat(v, heads // kv_heads, axis=0)
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim) + mask
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    attn = (scores @ v).transpose(1, 0, 2).reshape(t, heads * head_dim)
    x = x + lin("self_attn.o_proj", attn)
    h = rms_norm(x, lw["post_attention_layernorm.weight"], eps)
    gate = lin("mlp.gate_proj", h)
    mid = gate / (1 + np.exp(-gate)) * lin("mlp.up_proj", h)
    x = x + lin("mlp.down_proj", mid)
    return {"attn_out": attn, "mlp_mid": mid, "output": x}


# ----------------------------------------------------------------------------
# 1. Activations


def layer_activations(config, weights, windows):
    """Run every window through the model, layer by layer.

    Returns (acts, window_len):
      acts: list over layers l of dicts with arrays whose rows are all tokens of all
            windows, window-major (rows [w*window_len, (w+1)*window_len) are window w):
            "input" [N, hidden], "attn_out" [N, heads*head_dim],
            "mlp_mid" [N, intermediate], "output" [N, hidden].
      window_len: tokens per window; the last token of window w is row
            (w+1)*window_len - 1 (see last_token_rows).
    """
    windows = [list(map(int, w)) for w in windows]
    if not windows:
        raise ValueError("no windows")
    window_len = len(windows[0])
    if any(len(w) != window_len for w in windows) or window_len == 0:
        raise ValueError("windows must be non-empty and of equal length")
    n_layers = config["num_hidden_layers"]
    per_layer = [{"input": [], "attn_out": [], "mlp_mid": [], "output": []} for _ in range(n_layers)]
    lws = [layer_weights(weights, l) for l in range(n_layers)]
    for ids in windows:
        x = weights["model.embed_tokens.weight"][ids]
        for l in range(n_layers):
            r = layer_forward(config, lws[l], x)
            per_layer[l]["input"].append(x)
            per_layer[l]["attn_out"].append(r["attn_out"])
            per_layer[l]["mlp_mid"].append(r["mlp_mid"])
            per_layer[l]["output"].append(r["output"])
            x = r["output"]
    acts = [{k: np.concatenate(v, axis=0) for k, v in d.items()} for d in per_layer]
    return acts, window_len


def last_token_rows(n_rows, window_len):
    return np.arange(window_len - 1, n_rows, window_len)


def final_logits(config, weights, hidden):
    """Final norm + LM head on hidden states (used to cross-check against forward())."""
    x = rms_norm(hidden, weights["model.norm.weight"], config["rms_norm_eps"])
    head = weights["model.embed_tokens.weight"] if config.get("tie_word_embeddings") else weights["lm_head.weight"]
    return x @ head.T


# ----------------------------------------------------------------------------
# 2. Calibration statistics


def _cos_rows(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def calibration_statistics(config, weights, windows, max_window=3):
    acts, window_len = layer_activations(config, weights, windows)
    n_layers = config["num_hidden_layers"]
    _, heads, kv_heads, head_dim = dims(config)
    group = heads // kv_heads
    n_rows = acts[0]["input"].shape[0]
    last = last_token_rows(n_rows, window_len)

    bi = [float(1.0 - _cos_rows(a["input"], a["output"]).mean()) for a in acts]

    sbi, sbi_ang = {}, {}
    for w in range(2, max_window + 1):
        if w > n_layers:
            continue
        sbi[w], sbi_ang[w] = [], []
        for l in range(n_layers - w + 1):
            a, b = acts[l]["input"], acts[l + w - 1]["output"]
            sbi[w].append(float(1.0 - _cos_rows(a, b).mean()))
            c = np.clip(_cos_rows(a[last], b[last]), -1.0, 1.0)
            sbi_ang[w].append(float((np.arccos(c) / math.pi).mean()))

    ffn, attn, kv = [], [], []
    for l in range(n_layers):
        lw = layer_weights(weights, l)
        w_down = lw["mlp.down_proj.weight"]  # [hidden, intermediate]
        ffn.append(np.abs(acts[l]["mlp_mid"]).mean(0) * np.abs(w_down).sum(0))
        w_o = lw["self_attn.o_proj.weight"]  # [hidden, heads*head_dim]
        s = np.abs(acts[l]["attn_out"]).mean(0) * np.abs(w_o).sum(0)
        attn.append(s)
        span = group * head_dim
        kv.append(np.array([s[g * span:(g + 1) * span].mean() for g in range(kv_heads)]))

    return {
        "bi": bi,
        "sbi": sbi,
        "sbi_angular_last_token": sbi_ang,
        "ffn_sensitivity": ffn,
        "attn_channel_sensitivity": attn,
        "kv_group_score": kv,
    }


# ----------------------------------------------------------------------------
# 3-5. Ratios, counts, selection


def _first_argmax(values):
    values = list(values)
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def retention_ratios(bi_values, p=1.0, rho=None):
    bi = [float(b) for b in bi_values]
    powered = [b ** p for b in bi]
    total = sum(powered)
    if not total > 0:
        raise ValueError(f"sum of BI^p is not positive: {powered}")
    r = [x / total for x in powered]
    if rho is not None and max(r) < rho:
        t_star = _first_argmax(bi)
        rest = sum(x for i, x in enumerate(r) if i != t_star)
        r = [rho if i == t_star else (1.0 - rho) * x / rest for i, x in enumerate(r)]
    return r


def unit_counts(ratios, units):
    big = _first_argmax(ratios)
    k = [0 if i == big else int(math.floor(r * units)) for i, r in enumerate(ratios)]
    k[big] = units - sum(k)
    if k[big] < 0 or any(x < 0 for x in k):
        raise ValueError(f"invalid unit counts {k} for ratios {ratios}")
    return k


def top_units(scores, k):
    scores = [float(s) for s in scores]
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])


# ----------------------------------------------------------------------------
# 6. Concatenation merge


def _per_layer(values, layers, n_layers, position):
    """values indexed by absolute layer index (list over all layers, or dict), or —
    accepted as well — a list aligned with `layers`."""
    if isinstance(values, dict):
        return values[layers[position]]
    if len(values) == n_layers:
        return values[layers[position]]
    if len(values) == len(layers):
        return values[position]
    raise ValueError("per-layer scores must cover all layers or exactly the merged ones")


def merge_plan(config, layers, ratios, ffn_sensitivity, kv_group_score):
    """Which units each merged layer keeps: (ffn_sel, kv_sel), lists aligned with layers
    of ascending index lists."""
    n_layers = config["num_hidden_layers"]
    _, _, kv_heads, _ = dims(config)
    intermediate = config["intermediate_size"]
    k_ffn = unit_counts(ratios, intermediate)
    k_kv = unit_counts(ratios, kv_heads)
    ffn_sel, kv_sel = [], []
    for pos in range(len(layers)):
        ffn_sel.append(top_units(_per_layer(ffn_sensitivity, layers, n_layers, pos), k_ffn[pos]))
        kv_sel.append(top_units(_per_layer(kv_group_score, layers, n_layers, pos), k_kv[pos]))
    return ffn_sel, kv_sel


KNOWN_SUFFIXES = {
    "input_layernorm.weight", "post_attention_layernorm.weight",
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias",
    "self_attn.v_proj.bias", "self_attn.o_proj.bias", "self_attn.q_norm.weight",
    "self_attn.k_norm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
    "mlp.down_proj.weight", "mlp.gate_proj.bias", "mlp.up_proj.bias", "mlp.down_proj.bias",
    # Gemma 2's extra norms (its post_attention_layernorm sits after attention).
    "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight",
}
# Hidden-size norms: averaged (or the first kept). Gemma's (1 + w) norms average alike,
# since mean(1 + w) = 1 + mean(w).
HIDDEN_NORMS = ("input_layernorm.weight", "post_attention_layernorm.weight",
                "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight")


def merge_layers(config, weights, layers, ratios, ffn_sensitivity, kv_group_score, norms="mean"):
    layers = list(layers)
    ratios = [float(r) for r in ratios]
    if len(ratios) != len(layers):
        raise ValueError("one ratio per merged layer")
    if norms not in ("mean", "keep-first"):
        raise ValueError(f"norms must be 'mean' or 'keep-first', not {norms!r}")
    _, heads, kv_heads, head_dim = dims(config)
    group = heads // kv_heads
    src = [layer_weights(weights, l) for l in layers]
    names = set(src[0])
    for lw in src:
        if set(lw) != names:
            raise ValueError("merged layers have different tensor sets")
        for n in lw:
            if lw[n].shape != src[0][n].shape:
                raise ValueError(f"merged layers differ in the shape of {n}")
    unknown = names - KNOWN_SUFFIXES
    if unknown:
        raise ValueError(f"unhandled tensors: {sorted(unknown)}")

    ffn_sel, kv_sel = merge_plan(config, layers, ratios, ffn_sensitivity, kv_group_score)

    # Row / column index lists per source layer.
    q_idx, kv_idx = [], []
    for sel in kv_sel:
        q_idx.append([i for g in sel for i in range(g * group * head_dim, (g + 1) * group * head_dim)])
        kv_idx.append([i for g in sel for i in range(g * head_dim, (g + 1) * head_dim)])

    def rows(name, idx_lists):
        return np.concatenate([lw[name][idx] for lw, idx in zip(src, idx_lists)], axis=0)

    def cols(name, idx_lists):
        return np.concatenate([lw[name][:, idx] for lw, idx in zip(src, idx_lists)], axis=1)

    def weighted(name):
        return sum(r * lw[name] for r, lw in zip(ratios, src))

    out = {}
    # Attention: KV groups.
    out["self_attn.q_proj.weight"] = rows("self_attn.q_proj.weight", q_idx)
    out["self_attn.k_proj.weight"] = rows("self_attn.k_proj.weight", kv_idx)
    out["self_attn.v_proj.weight"] = rows("self_attn.v_proj.weight", kv_idx)
    out["self_attn.o_proj.weight"] = cols("self_attn.o_proj.weight", q_idx)
    if "self_attn.q_proj.bias" in names:
        out["self_attn.q_proj.bias"] = rows("self_attn.q_proj.bias", q_idx)
    if "self_attn.k_proj.bias" in names:
        out["self_attn.k_proj.bias"] = rows("self_attn.k_proj.bias", kv_idx)
    if "self_attn.v_proj.bias" in names:
        out["self_attn.v_proj.bias"] = rows("self_attn.v_proj.bias", kv_idx)
    if "self_attn.o_proj.bias" in names:
        out["self_attn.o_proj.bias"] = weighted("self_attn.o_proj.bias")
    if "self_attn.q_norm.weight" in names:
        out["self_attn.q_norm.weight"] = weighted("self_attn.q_norm.weight")
    if "self_attn.k_norm.weight" in names:
        out["self_attn.k_norm.weight"] = weighted("self_attn.k_norm.weight")
    # FFN: intermediate channels.
    out["mlp.gate_proj.weight"] = rows("mlp.gate_proj.weight", ffn_sel)
    out["mlp.up_proj.weight"] = rows("mlp.up_proj.weight", ffn_sel)
    out["mlp.down_proj.weight"] = cols("mlp.down_proj.weight", ffn_sel)
    if "mlp.gate_proj.bias" in names:
        out["mlp.gate_proj.bias"] = rows("mlp.gate_proj.bias", ffn_sel)
    if "mlp.up_proj.bias" in names:
        out["mlp.up_proj.bias"] = rows("mlp.up_proj.bias", ffn_sel)
    if "mlp.down_proj.bias" in names:
        out["mlp.down_proj.bias"] = weighted("mlp.down_proj.bias")
    # Norms.
    for n in (n for n in HIDDEN_NORMS if n in names):
        if norms == "mean":
            out[n] = sum(lw[n] for lw in src) / len(src)
        else:
            out[n] = src[0][n].copy()
    assert set(out) == names, (set(out) ^ names)
    return out


def replace_layers(config, weights, layers, merged):
    """A new (config, weights) with the contiguous `layers` replaced by `merged`
    (suffix dict) and the following layers renumbered."""
    layers = list(layers)
    first, last = layers[0], layers[-1]
    assert layers == list(range(first, last + 1))
    removed = last - first
    new_w = {}
    for k, v in weights.items():
        if not k.startswith("model.layers."):
            new_w[k] = v
            continue
        idx = int(k.split(".")[2])
        suffix = k.split(".", 3)[3]
        if idx < first:
            new_w[k] = v
        elif idx > last:
            new_w[f"model.layers.{idx - removed}.{suffix}"] = v
    for suffix, v in merged.items():
        new_w[f"model.layers.{first}.{suffix}"] = v
    new_c = dict(config)
    new_c["num_hidden_layers"] = config["num_hidden_layers"] - removed
    return new_c, new_w


# ----------------------------------------------------------------------------
# 7. Self-check


def _windows(config, n=3, length=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, config["vocab_size"], size=length).tolist() for _ in range(n)]


def _report(name, ok, detail=""):
    print(f"  [{'PASS' if ok else 'FAIL'}] {name}{(' — ' + detail) if detail else ''}")
    return ok


def _check_gqa_pairing(config, weights, layers, ratios, ffn, kv):
    """For every merged query head, find (by content) which source layer / query head
    its q rows came from, and which source layer / KV head the K and V rows of the KV
    head it reads (merged index // G) came from; they must agree. Also the o_proj
    columns behind the query head must come from the same source head."""
    _, heads, kv_heads, head_dim = dims(config)
    group = heads // kv_heads
    merged = merge_layers(config, weights, layers, ratios, ffn, kv)
    src = [layer_weights(weights, l) for l in layers]

    def find(block, name, n_blocks, axis=0):
        hits = []
        for t, lw in enumerate(src):
            for b in range(n_blocks):
                sl = slice(b * head_dim, (b + 1) * head_dim)
                cand = lw[name][sl] if axis == 0 else lw[name][:, sl]
                if np.array_equal(cand, block):
                    hits.append((t, b))
        assert len(hits) == 1, f"{name}: ambiguous/no provenance {hits}"
        return hits[0]

    bad = []
    for h in range(heads):
        sl = slice(h * head_dim, (h + 1) * head_dim)
        j = h // group
        kl = slice(j * head_dim, (j + 1) * head_dim)
        t_q, src_q = find(merged["self_attn.q_proj.weight"][sl], "self_attn.q_proj.weight", heads)
        t_o, src_o = find(merged["self_attn.o_proj.weight"][:, sl], "self_attn.o_proj.weight", heads, axis=1)
        t_k, src_k = find(merged["self_attn.k_proj.weight"][kl], "self_attn.k_proj.weight", kv_heads)
        t_v, src_v = find(merged["self_attn.v_proj.weight"][kl], "self_attn.v_proj.weight", kv_heads)
        if not (t_q == t_o == t_k == t_v and src_q == src_o and src_q // group == src_k == src_v):
            bad.append((h, (t_q, src_q), (t_o, src_o), (t_k, src_k), (t_v, src_v)))
    return bad, merge_plan(config, layers, ratios, ffn, kv)


def _check_functional(config, weights, layers, ratios, ffn, kv, x):
    """Merged layer with norms='keep-first', fed x: its attention output for each merged
    query head must equal the source layer's output for the source head (when the source
    layer uses the same input norm), and likewise each FFN channel's mid activation.
    Only meaningful without q_norm/k_norm (these are mixed, not carried)."""
    _, heads, kv_heads, head_dim = dims(config)
    group = heads // kv_heads
    merged = merge_layers(config, weights, layers, ratios, ffn, kv, norms="keep-first")
    ffn_sel, kv_sel = merge_plan(config, layers, ratios, ffn, kv)
    got = layer_forward(config, merged, x)
    # Reference: the post-attention norm differs per source layer; compute attention
    # outputs with each source layer (input norm forced to layers[0]'s).
    ref_attn = []
    for t, l in enumerate(layers):
        lw = dict(layer_weights(weights, l))
        lw["input_layernorm.weight"] = layer_weights(weights, layers[0])["input_layernorm.weight"]
        ref_attn.append(layer_forward(config, lw, x)["attn_out"])
    pieces = []
    for t, sel in enumerate(kv_sel):
        for g in sel:
            pieces.append(ref_attn[t][:, g * group * head_dim:(g + 1) * group * head_dim])
    want = np.concatenate(pieces, axis=1)
    return float(np.abs(got["attn_out"] - want).max())


def main():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "fixtures" / "tiny"
    results = []
    for name in ["llama-mha", "llama-gqa", "qwen2", "qwen3"]:
        config, weights = load(root / name)
        hidden, heads, kv_heads, head_dim = dims(config)
        n_layers = config["num_hidden_layers"]
        windows = _windows(config)
        print(f"== {name}: L={n_layers} hidden={hidden} heads={heads} kv={kv_heads} "
              f"head_dim={head_dim} intermediate={config['intermediate_size']}")

        # Cross-check the layer-wise pass against numpy_forward.forward.
        acts, window_len = layer_activations(config, weights, windows)
        ours = final_logits(config, weights, acts[-1]["output"])
        ref = np.concatenate([forward(config, weights, w) for w in windows], axis=0)
        diff = float(np.abs(ours - ref).max())
        results.append(_report("layer_activations reproduces forward() logits", diff < 1e-10, f"max|Δ|={diff:.2e}"))

        stats = calibration_statistics(config, weights, windows)
        print("  BI:", " ".join(f"{b:.6f}" for b in stats["bi"]))
        for w, v in stats["sbi"].items():
            print(f"  SBI w={w}:", " ".join(f"{s:.6f}" for s in v))
        for w, v in stats["sbi_angular_last_token"].items():
            print(f"  SBI-angular-last w={w}:", " ".join(f"{s:.6f}" for s in v))
        for l in range(n_layers):
            f, a, g = stats["ffn_sensitivity"][l], stats["attn_channel_sensitivity"][l], stats["kv_group_score"][l]
            print(f"  layer {l}: ffn sens sum={f.sum():.6f} max={f.max():.6f} argmax={int(f.argmax())}; "
                  f"attn sens sum={a.sum():.6f}; kv_group_score=[{', '.join(f'{x:.6f}' for x in g)}]")
        bi_ok = all(0.0 <= b <= 2.0 for b in stats["bi"])
        sbi_ok = all(0.0 <= s <= 2.0 for v in stats["sbi"].values() for s in v)
        ang_ok = all(0.0 <= s <= 1.0 for v in stats["sbi_angular_last_token"].values() for s in v)
        results.append(_report("(c) BI in [0, 2]", bi_ok))
        results.append(_report("(c) SBI in [0, 2], angular SBI in [0, 1]", sbi_ok and ang_ok))
        # For w=2, also report the BI of the two layers alongside (no identity expected).
        if 2 in stats["sbi"]:
            for l, s in enumerate(stats["sbi"][2]):
                print(f"  SBI[{l}:{l + 1}]={s:.6f} vs BI[{l}]={stats['bi'][l]:.6f}, BI[{l + 1}]={stats['bi'][l + 1]:.6f}")

        # Pick the 2-layer window with smallest SBI, ratios from BI (p=1, rho=None).
        sbi2 = stats["sbi"][2]
        l0 = int(np.argmin(sbi2))
        layers = [l0, l0 + 1]
        ratios = retention_ratios([stats["bi"][l] for l in layers], p=1.0)
        ffn, kv = stats["ffn_sensitivity"], stats["kv_group_score"]
        k_ffn = unit_counts(ratios, config["intermediate_size"])
        k_kv = unit_counts(ratios, kv_heads)
        merged = merge_layers(config, weights, layers, ratios, ffn, kv)
        print(f"  merge {layers}: ratios={[round(r, 6) for r in ratios]} k_ffn={k_ffn} k_kv={k_kv}")
        ffn_sel, kv_sel = merge_plan(config, layers, ratios, ffn, kv)
        print(f"    kv groups kept: {kv_sel}; ffn channels kept (first 8 each): {[s[:8] for s in ffn_sel]}")
        orig = layer_weights(weights, layers[0])
        shapes_ok = all(merged[n].shape == orig[n].shape for n in orig) and set(merged) == set(orig)
        results.append(_report("merged layer has the same tensors and shapes", shapes_ok, ", ".join(sorted(merged))))
        new_c, new_w = replace_layers(config, weights, layers, merged)
        logits = np.concatenate([forward(new_c, new_w, w) for w in windows], axis=0)
        print(f"    merged model: {new_c['num_hidden_layers']} layers, logits finite={bool(np.isfinite(logits).all())}, "
              f"mean|logit - original|={float(np.abs(logits - ref).mean()):.6f}")
        for rho in (0.85, 0.97):
            rr = retention_ratios([stats["bi"][l] for l in layers], p=1.0, rho=rho)
            print(f"    ratios with rho={rho}: {[round(r, 6) for r in rr]} (sum {sum(rr):.15f})")

        # (a) ratios [1, 0] + keep-first == layer layers[0] exactly.
        ok_a = True
        for la in [[l, l + 1] for l in range(n_layers - 1)]:
            m = merge_layers(config, weights, la, [1.0, 0.0], ffn, kv, norms="keep-first")
            o = layer_weights(weights, la[0])
            ok_a &= set(m) == set(o) and all(np.array_equal(m[n], o[n]) for n in o)
        results.append(_report("(a) ratios [1,0] + keep-first returns layer layers[0] exactly", ok_a))

        # FFN provenance: merged channel j's gate row, up row and down column come from
        # the same (source layer, channel), in the documented order.
        expect = [(t, i) for t, sel in enumerate(ffn_sel) for i in sel]
        src_lw = [layer_weights(weights, l) for l in layers]
        ffn_ok = len(expect) == config["intermediate_size"] and all(
            np.array_equal(merged["mlp.gate_proj.weight"][j], src_lw[t]["mlp.gate_proj.weight"][i])
            and np.array_equal(merged["mlp.up_proj.weight"][j], src_lw[t]["mlp.up_proj.weight"][i])
            and np.array_equal(merged["mlp.down_proj.weight"][:, j], src_lw[t]["mlp.down_proj.weight"][:, i])
            for j, (t, i) in enumerate(expect))
        results.append(_report("FFN channels carry gate row, up row and down column together", ffn_ok))

        # Functional check of the attention pairing (no q_norm/k_norm mixing).
        if "self_attn.q_norm.weight" not in orig:
            x = acts[layers[0]]["input"][:window_len]
            worst = 0.0
            for rs in ([0.25, 0.75], [0.5, 0.5], [0.75, 0.25]):
                worst = max(worst, _check_functional(config, weights, layers, rs, ffn, kv, x))
            results.append(_report("merged attention heads compute their source heads' outputs",
                                   worst < 1e-10, f"max|Δ|={worst:.2e}"))

        # (b) GQA pairing.
        if name == "llama-gqa":
            ok_b = True
            rng = np.random.default_rng(1)
            score_sets = [("calibration", kv),
                          ("forced cross 1/0", [np.array([0.0, 1.0]), np.array([1.0, 0.0])] * (n_layers // 2)),
                          ("forced cross 0/1", [np.array([1.0, 0.0]), np.array([0.0, 1.0])] * (n_layers // 2)),
                          ("random", [rng.random(kv_heads) for _ in range(n_layers)])]
            for la in [[l, l + 1] for l in range(n_layers - 1)]:
                for label, kvs in score_sets:
                    for rs in ([0.25, 0.75], [0.5, 0.5], [0.75, 0.25]):
                        bad, (_, kv_sel_b) = _check_gqa_pairing(config, weights, la, rs, ffn, kvs)
                        if bad:
                            ok_b = False
                            print(f"    pairing broken: layers={la} ratios={rs} scores={label}: {bad}")
                        else:
                            print(f"    layers={la} ratios={rs} scores={label}: kv groups {kv_sel_b} -> all {heads} query heads paired")
            results.append(_report("(b) GQA: every merged query head reads its own source K/V", ok_b))
    print(f"\n{sum(results)}/{len(results)} checks passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

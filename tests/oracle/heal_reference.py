"""An independent numpy (float64) reference for healing, the closed-form refit of a
pruned model's down_proj (SPEC section 9).

Written from the spec only; it shares no code with ckpt-surgeon's Swift implementation
and solves with numpy.linalg.solve, not Cholesky. The per-layer math is
come_reference.layer_forward (which follows numpy_forward.forward).

For a student layer b standing for original layers [first, last] and a target teacher
layer t (last, or the layer before the next student layer's first original for gaps/all):
    out_b = h_b + A_b @ W_down.T (+ bias)
    G = sum A^T A,  C = sum A^T (T_t - h_b),  (G + lam * mean(diag G) * I) W = C,  W_down <- W.T
over all calibration tokens, the student run from its own input with every earlier refit
applied. A down_proj bias is the intercept (a column of ones, not shrunk by the ridge).
"""
import numpy as np

try:
    from .come_reference import layer_forward, layer_weights
except ImportError:
    from come_reference import layer_forward, layer_weights


def plan(provenance, teacher_layers, selection):
    """[(student layer, teacher target layer)] in order."""
    out = []
    for i, (first, last) in enumerate(provenance):
        next_first = provenance[i + 1][0] if i + 1 < len(provenance) else teacher_layers
        before_next = next_first - 1
        merged = last > first
        if selection == "merged" and merged:
            out.append((i, last))
        elif selection == "gaps" and (merged or before_next > last):
            out.append((i, before_next))
        elif selection == "all":
            out.append((i, before_next))
    return out


def teacher_streams(config, weights, windows):
    """streams[l]: the teacher's output after layer l, all windows' tokens stacked."""
    xs = [weights["model.embed_tokens.weight"][list(w)] for w in windows]
    streams = []
    for l in range(config["num_hidden_layers"]):
        lw = layer_weights(weights, l)
        xs = [layer_forward(config, lw, x)["output"] for x in xs]
        streams.append(np.concatenate(xs, axis=0))
    return streams


def heal(config, teacher, student_config, student, provenance, windows, selection="merged", ridge=0.1):
    """Refits the planned layers of `student`. Returns ({layer: {"down", "bias",
    "mse_before", "mse_after", "target"}}, healed student weights)."""
    streams = teacher_streams(config, teacher, windows)
    steps = dict(plan(provenance, config["num_hidden_layers"], selection))
    student = dict(student)
    xs = [student["model.embed_tokens.weight"][list(w)] for w in windows]
    results = {}
    for b in range(max(steps) + 1 if steps else 0):
        lw = layer_weights(student, b)
        runs = [layer_forward(student_config, lw, x) for x in xs]
        if b not in steps:
            xs = [r["output"] for r in runs]
            continue
        target = streams[steps[b]]
        down = lw["mlp.down_proj.weight"]
        bias = lw.get("mlp.down_proj.bias")
        a = np.concatenate([r["mlp_mid"] for r in runs], axis=0)
        out = np.concatenate([r["output"] for r in runs], axis=0)
        h = out - a @ down.T - (0 if bias is None else bias)
        f = a.shape[1]
        if bias is not None:
            a = np.concatenate([a, np.ones((a.shape[0], 1))], axis=1)
        g = a.T @ a
        c = a.T @ (target - h)
        reg = ridge * np.trace(g[:f, :f]) / f
        g[np.arange(f), np.arange(f)] += reg
        w = np.linalg.solve(g, c)
        new_down = w[:f].T
        new_bias = w[f] if bias is not None else None
        prefix = f"model.layers.{b}."
        student[prefix + "mlp.down_proj.weight"] = new_down
        if new_bias is not None:
            student[prefix + "mlp.down_proj.bias"] = new_bias
        lw = layer_weights(student, b)
        xs = [layer_forward(student_config, lw, x)["output"] for x in xs]
        after = np.concatenate(xs, axis=0)
        results[b] = {"down": new_down, "bias": new_bias, "target": steps[b],
                      "mse_before": float(((out - target) ** 2).mean()),
                      "mse_after": float(((after - target) ** 2).mean())}
    return results, student

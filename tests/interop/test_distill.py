"""`distill` (SPEC §7): its training steps against an independent numpy version (the layer
backward of tests/oracle/layer_backward.py, AdamW written from the paper's definition),
loss decrease, resume = uninterrupted, and bad inputs."""
import json
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from conftest import REPO, run

sys.path.insert(0, str(REPO / "tests"))
from oracle import layer_backward, numpy_forward  # noqa: E402
from oracle.come_reference import layer_weights  # noqa: E402

DEEP = "qwen2-deep"  # 6 layers; CoMe to 4 merges [1, 2] and [4, 5], leaving layer 3 frozen between
SEQLEN = 32
TEXT = (REPO / "Sources/SurgeonSurgery/Resources/c4-calibration.txt").read_text()[:60_000]


def student(tiny, tmp_path):
    out = tmp_path / "student"
    if not out.exists():
        run("prune", tiny / DEEP, "--method", "come", "--target-layers", 4, "--nsamples", 4, "--seqlen", 32, "-o", out)
    pairs = json.loads((out / "surgery.json").read_text())["distillation_pairs"]
    assert [(p["a"], p["b"]) for p in pairs] == [(2, 1), (5, 3)], pairs
    return out


def text_of_windows(tiny, tmp_path, windows):
    """A text file that tokenizes to exactly `windows` windows of SEQLEN tokens (and a few more
    tokens), and those windows' ids."""
    tok = Tokenizer.from_file(str(tiny / DEEP / "tokenizer.json"))
    chars = 20
    while len(tok.encode(TEXT[:chars], add_special_tokens=False).ids) < windows * SEQLEN + 4:
        chars += 5
    body = TEXT[:chars]
    ids = tok.encode(body, add_special_tokens=False).ids
    path = tmp_path / f"text-{windows}.txt"
    path.write_text(body)
    n = len(ids) // SEQLEN
    assert n == windows, (n, windows)
    return path, [ids[i * SEQLEN:(i + 1) * SEQLEN] for i in range(n)]


def distill(tiny, tmp_path, name, *args, check=True):
    out = tmp_path / name
    proc = run("distill", tiny / DEEP, student(tiny, tmp_path), "-o", out, "--seqlen", SEQLEN, *args, check=check)
    return out, proc


def layer_params(weights, layer, config, t):
    s = layer_backward.spec(config, layer, t)
    return s, layer_backward.split_params(s, layer_weights(weights, layer))


def run_layers(config, weights, layers, x, keep=None):
    """x through `layers` (model layer indices); returns the output and each layer's (spec, params, cache)."""
    tape = []
    for layer in layers:
        s, p = layer_params(weights, layer, config, x.shape[1])
        x, c = layer_backward.forward(s, p, x)
        tape.append((layer, s, p, c))
    return x, tape


def embed(config, weights, windows):
    return weights["model.embed_tokens.weight"][np.array(windows)]


def adamw_first_step(w, g, lr, wd=0.01, eps=1e-8):
    # m̂ = g, v̂ = g² after one step (bias correction), so the update is g / (|g| + ε).
    return w - lr * (g / (np.abs(g) + eps) + wd * w)


def check_step(before, after, grads, lr, what):
    for name, g in grads.items():
        w0 = before[name]
        expected = adamw_first_step(w0, g, lr)
        # Where |g| is tiny its sign is rounding noise; elsewhere the update is ±lr exactly.
        sure = np.abs(g) > 1e-3 * np.abs(g).max()
        # Within 1e-3 lr, plus the f32 spacing of the stored weight.
        slack = (np.abs(after[name] - expected) - 1.2e-7 * np.abs(w0))[sure]
        err = max(slack.max(), 0) / lr
        assert err < 1e-3, f"{what} {name}: |Δ - numpy| = {err:.3g} lr"
        # (k_proj's bias has no gradient but rounding: it shifts every score of a row alike.)
        large = np.abs(g) > 1e-6
        if large.any():
            assert np.abs(after[name] - w0)[large].min() > 0.9 * lr, f"{what} {name} did not move"


def teacher_states(config, weights, windows, layers):
    x, out = embed(config, weights, windows), {}
    for layer in range(max(layers) + 1):
        x, _ = run_layers(config, weights, [layer], x)
        if layer in layers:
            out[layer] = x
    return out


def test_one_sp_step_matches_numpy(tiny, tmp_path):
    """One optimiser step over 3 windows: both pair losses, backward through the frozen
    layer 2 between them, AdamW's first update at the peak rate."""
    text, windows = text_of_windows(tiny, tmp_path, 3)
    windows = windows[:3]
    lr = 1e-3
    out, _ = distill(tiny, tmp_path, "sp", "--mode", "sp", "--tokens", 3 * SEQLEN, "--batch", 3, "--lr", lr,
                     "--text", text)
    tconf, tw = numpy_forward.load(tiny / DEEP)
    sconf, sw = numpy_forward.load(student(tiny, tmp_path))
    targets = teacher_states(tconf, tw, windows, [2, 5])
    x = embed(sconf, sw, windows)
    x, _ = run_layers(sconf, sw, [0], x)
    h1, tape1 = run_layers(sconf, sw, [1], x)
    h2, tape2 = run_layers(sconf, sw, [2], h1)
    h3, tape3 = run_layers(sconf, sw, [3], h2)
    l1, g1 = layer_backward.loss("kl", h1, targets[2])
    l3, g3 = layer_backward.loss("kl", h3, targets[5])
    d, grads3 = layer_backward.backward(tape3[0][1], tape3[0][2], tape3[0][3], g3 / 2)
    d, _ = layer_backward.backward(tape2[0][1], tape2[0][2], tape2[0][3], d)
    _, grads1 = layer_backward.backward(tape1[0][1], tape1[0][2], tape1[0][3], d + g1 / 2)
    after = numpy_forward.load(out)[1]
    for layer, grads in [(1, grads1), (3, grads3)]:
        check_step(layer_weights(sw, layer), layer_weights(after, layer), grads, lr, f"sp layer {layer}")
    for layer in [0, 2]:
        for name, w in layer_weights(sw, layer).items():
            assert np.array_equal(layer_weights(after, layer)[name], w), f"frozen layer {layer} {name} changed"
    m = json.loads((out / "surgery.json").read_text())["distillation"]
    assert m["mode"] == "sp" and m["method"] == "come-sp" and m["learning_rates"] == [lr]
    assert abs(m["loss_curve"][0]["loss"] - (l1 + l3) / 2) < 1e-5 * (l1 + l3)


def test_one_mp_step_per_pair_matches_numpy(tiny, tmp_path):
    """mp: pair 1 steps on its own loss; pair 2 then trains from the student state after the
    updated layer 1, at the schedule's second rate (lr / 50 for two pairs)."""
    text, windows = text_of_windows(tiny, tmp_path, 2)
    windows = windows[:2]
    lr = 1e-3
    out, _ = distill(tiny, tmp_path, "mp", "--mode", "mp", "--tokens", 2 * SEQLEN, "--batch", 2, "--lr", lr,
                     "--text", text)
    tconf, tw = numpy_forward.load(tiny / DEEP)
    sconf, sw = numpy_forward.load(student(tiny, tmp_path))
    after = numpy_forward.load(out)[1]
    targets = teacher_states(tconf, tw, windows, [2, 5])
    x, _ = run_layers(sconf, sw, [0], embed(sconf, sw, windows))
    h1, tape1 = run_layers(sconf, sw, [1], x)
    _, g1 = layer_backward.loss("kl", h1, targets[2])
    _, grads1 = layer_backward.backward(tape1[0][1], tape1[0][2], tape1[0][3], g1)
    check_step(layer_weights(sw, 1), layer_weights(after, 1), grads1, lr, "mp pair 1")
    # Pair 2 runs on the student as trained so far (layer 1 from the output).
    trained = dict(sw)
    trained.update({k: v for k, v in after.items() if k.startswith("model.layers.1.")})
    h, _ = run_layers(sconf, trained, [1, 2], x)
    h3, tape3 = run_layers(sconf, trained, [3], h)
    _, g3 = layer_backward.loss("kl", h3, targets[5])
    _, grads3 = layer_backward.backward(tape3[0][1], tape3[0][2], tape3[0][3], g3)
    m = json.loads((out / "surgery.json").read_text())["distillation"]
    assert np.allclose(m["learning_rates"], [lr, lr * 1e-5 / 5e-4])
    check_step(layer_weights(sw, 3), layer_weights(after, 3), grads3, m["learning_rates"][1], "mp pair 2")


def test_loss_decreases_and_the_output_verifies_and_exports(tiny, tmp_path):
    """Full-batch steps (4 windows, 20 epochs of them, 4 per step), so each step's loss is
    the same objective: it must fall, for every pair."""
    text, _ = text_of_windows(tiny, tmp_path, 4)
    for mode in ["sp", "mp"]:
        out, proc = distill(tiny, tmp_path, mode, "--mode", mode, "--tokens", 20 * 4 * SEQLEN, "--epochs", 20,
                            "--batch", 4, "--lr", 1e-3, "--text", text)
        m = json.loads((out / "surgery.json").read_text())
        pairs = m["distillation"]["pairs"]
        curve = [p["loss"] for p in m["distillation"]["loss_curve"]]
        if mode == "sp":
            assert curve[-1] < 0.3 * curve[0], curve
            assert all(p["loss_last"] < 0.3 * p["loss_first"] for p in pairs), pairs
        else:
            # The second pair trains at the schedule's lr / 50.
            assert pairs[0]["loss_last"] < 0.3 * pairs[0]["loss_first"], pairs
            assert pairs[1]["loss_last"] < 0.95 * pairs[1]["loss_first"], pairs
        assert m["distillation"]["student"]["path"].endswith("student")
        assert "healing" not in m and m["distillation_pairs"] == [{"a": 2, "b": 1}, {"a": 5, "b": 3}]
        assert "tokens/s" in proc.stderr and "eta" in proc.stderr
        assert "OK" in run("verify", out).stdout
        run("export", out, "-o", tmp_path / f"{mode}.gguf")
        run("ppl", tmp_path / f"{mode}.gguf", "--text", text, "--ctx", 32, "--windows", 2)


def tensors(folder):
    return load_file(folder / "model.safetensors")


def test_resume_equals_uninterrupted(tiny, tmp_path):
    text, _ = text_of_windows(tiny, tmp_path, 12)
    for mode, every in [("sp", 4), ("mp", 4)]:
        common = ["--mode", mode, "--tokens", 12 * SEQLEN, "--batch", 2, "--lr", 2e-3, "--text", text]
        whole, _ = distill(tiny, tmp_path, f"{mode}-whole", *common, "--save-every", every,
                           "--checkpoint-dir", tmp_path / f"{mode}-ckpt")
        saved = sorted((tmp_path / f"{mode}-ckpt").glob("step-*.safetensors"))
        assert len(saved) == 1, saved  # only the latest is kept
        resumed, proc = distill(tiny, tmp_path, f"{mode}-resumed", *common, "--resume", saved[0])
        a, b = tensors(whole), tensors(resumed)
        assert a.keys() == b.keys()
        for name in a:
            assert np.array_equal(a[name], b[name]), f"{mode}: {name} differs after resume from {saved[0].name}"
        ma = json.loads((whole / "surgery.json").read_text())["distillation"]
        mb = json.loads((resumed / "surgery.json").read_text())["distillation"]
        assert ma["loss_curve"] == mb["loss_curve"] and ma["pairs"] == mb["pairs"]


def test_bad_distill_inputs_fail_with_one_line_and_write_nothing(tiny, tmp_path):
    text, _ = text_of_windows(tiny, tmp_path, 4)
    good = student(tiny, tmp_path)
    shortgpt = tmp_path / "shortgpt"
    run("prune", tiny / DEEP, "--method", "shortgpt", "--target-layers", 4, "--nsamples", 4, "--seqlen", 32, "-o", shortgpt)
    # A real checkpoint to corrupt.
    ckdir = tmp_path / "ck"
    distill(tiny, tmp_path, "for-ckpt", "--tokens", 4 * SEQLEN, "--batch", 1, "--text", text, "--save-every", 2,
            "--checkpoint-dir", ckdir)
    checkpoint = sorted(ckdir.glob("step-*.safetensors"))[0]
    flipped = tmp_path / "flipped.safetensors"
    data = bytearray(checkpoint.read_bytes())
    data[-5] ^= 0x40
    flipped.write_bytes(bytes(data))
    # A header edited to a step the run never reaches (the tensor bytes, which the XXH3
    # covers, untouched): refused by the position check.
    raw = checkpoint.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    state = json.loads(header["__metadata__"]["ckpt_surgeon.distill"])
    state["step"] = 999
    header["__metadata__"]["ckpt_surgeon.distill"] = json.dumps(state)
    edited_header = json.dumps(header).encode()
    edited = tmp_path / "edited.safetensors"
    edited.write_bytes(len(edited_header).to_bytes(8, "little") + edited_header + raw[8 + n:])
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(checkpoint.read_bytes()[:-100])
    other_teacher = tmp_path / "other-teacher"
    shutil.copytree(tiny / DEEP, other_teacher)
    w = bytearray((other_teacher / "model.safetensors").read_bytes())
    w[-3] ^= 0xFF
    (other_teacher / "model.safetensors").write_bytes(bytes(w))
    wiki_test = REPO.parent / "shared/data/wikitext-2-raw/wiki.test.raw"
    base = ["--text", text, "--seqlen", SEQLEN, "--tokens", 4 * SEQLEN]
    cases = [
        ("teacher is not the source", [other_teacher, good, *base], "not the model"),
        ("no distillation pairs", [tiny / DEEP, shortgpt, *base], "no distillation pairs"),
        ("more tokens than the text", [tiny / DEEP, good, "--text", text, "--seqlen", SEQLEN, "--tokens", 10 ** 6],
         "--epochs"),
        ("corrupt checkpoint", [tiny / DEEP, good, *base, "--batch", 1, "--resume", flipped], "corrupt"),
        ("checkpoint at an impossible step", [tiny / DEEP, good, *base, "--batch", 1, "--resume", edited], "outside"),
        ("truncated checkpoint", [tiny / DEEP, good, *base, "--batch", 1, "--resume", truncated], "distill checkpoint"),
        ("checkpoint of another run", [tiny / DEEP, good, *base, "--batch", 2, "--resume", checkpoint], "another"),
        ("the test split as text", [tiny / DEEP, good, "--text", wiki_test, "--seqlen", SEQLEN], "test split"),
        ("zero batch", [tiny / DEEP, good, *base, "--batch", 0], "--batch"),
    ]
    before = {p: p.read_bytes() for p in [good / "model.safetensors", tiny / DEEP / "model.safetensors"]}
    for what, args, message in cases:
        out = tmp_path / f"out-{what.replace(' ', '-')}"
        proc = run("distill", *args, "-o", out, check=False)
        assert proc.returncode != 0, what
        assert message in proc.stderr, (what, proc.stderr)
        lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.lstrip().startswith(("Usage", "See", "Help"))]
        assert len(lines) == 1, (what, proc.stderr)
        assert not out.exists(), what
    # With --epochs the same request repeats the text and runs.
    tokens = len(Tokenizer.from_file(str(tiny / DEEP / "tokenizer.json")).encode(text.read_text()).ids) // SEQLEN
    run("distill", tiny / DEEP, good, "--text", text, "--seqlen", SEQLEN, "--tokens", 2 * tokens * SEQLEN,
        "--epochs", 2, "--batch", 4, "-o", tmp_path / "two-epochs")
    assert all(p.read_bytes() == b for p, b in before.items()), "inputs unchanged"

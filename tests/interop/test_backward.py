"""The decoder-layer backward pass (`gradients`) against an independent numpy backward
(tests/oracle/layer_backward.py, itself checked against finite differences) and against
central finite differences of the numpy forward, on every family's tiny fixture."""
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import REPO, run

sys.path.insert(0, str(REPO / "tests"))
from oracle import layer_backward, numpy_forward  # noqa: E402
from oracle.come_reference import layer_weights  # noqa: E402

# (fixture, layer): Gemma 2's layer 0 is a sliding one (window 8 < 20 tokens); Phi-3's 20
# tokens pass its original context of 16, so the long rope factors are used.
CASES = [("llama-mha", 1), ("llama-gqa", 1), ("qwen2", 1), ("qwen3", 1), ("gemma2", 0), ("gemma2", 1), ("phi3", 1)]


def ours(tiny, fam, layer, x, target, tmp_path, loss="kl", through=1):
    states = tmp_path / "states.safetensors"
    save_file({"input": x.astype(np.float32), "target": target.astype(np.float32)}, states)
    out = tmp_path / "grads.safetensors"
    run("gradients", tiny / fam, "--layer", layer, "--through", through, "--states", states,
        "--loss", loss, "-o", out)
    return load_file(out)


def ref_gradients(config, weights, layer, x, target, loss):
    value, dx, grads, s, p = layer_backward.loss_and_gradients(config, layer_weights(weights, layer), layer,
                                                               x, target, loss)
    return value, dx, grads, s, p


def relative(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("loss", ["kl", "mse"])
@pytest.mark.parametrize("fam,layer", CASES)
def test_layer_gradients_match_numpy_and_finite_differences(tiny, tmp_path, fam, layer, loss):
    config, weights = numpy_forward.load(tiny / fam)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 20, config["hidden_size"])).astype(np.float32).astype(np.float64)
    target = rng.standard_normal(x.shape).astype(np.float32).astype(np.float64)
    g = ours(tiny, fam, layer, x, target, tmp_path, loss)
    value, dx, grads, s, p = ref_gradients(config, weights, layer, x, target, loss)
    assert abs(float(g["loss"][0]) - value) <= 1e-5 * abs(value)
    names = {k[2:] for k in g if k.startswith("d.") and k != "d.input"}
    assert names == set(grads), f"our tensors {sorted(names)} != the oracle's {sorted(grads)}"
    assert relative(g["d.input"].astype(np.float64), dx) < 1e-4, "d input"
    for name, ref in grads.items():
        mine = g["d." + name].astype(np.float64).reshape(ref.shape)
        assert relative(mine, ref) < 1e-4, f"{fam} layer {layer} {name}: {relative(mine, ref):.3g} vs numpy"
        idx = rng.choice(ref.size, size=min(6, ref.size), replace=False)
        fd = layer_backward.finite_differences(config, p, s, x, target, name, idx, loss)
        err = np.abs(mine.reshape(-1)[idx] - fd).max() / max(np.abs(fd).max(), 1e-30)
        assert err < 1e-3, f"{fam} layer {layer} {name}: {err:.3g} vs finite differences"


@pytest.mark.parametrize("fam", ["llama-gqa", "gemma2"])
def test_gradients_flow_through_frozen_layers(tiny, tmp_path, fam):
    """--through 3: the loss is taken after two more (frozen) layers; the first layer's
    gradients and d input equal the numpy chain's."""
    config, weights = numpy_forward.load(tiny / fam)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 24, config["hidden_size"])).astype(np.float32).astype(np.float64)
    target = rng.standard_normal(x.shape).astype(np.float32).astype(np.float64)
    g = ours(tiny, fam, 0, x, target, tmp_path, through=3)
    specs, params, caches, h = [], [], [], x
    for layer in range(3):
        s = layer_backward.spec(config, layer, x.shape[1])
        p = layer_backward.split_params(s, layer_weights(weights, layer))
        h, c = layer_backward.forward(s, p, h)
        specs.append(s), params.append(p), caches.append(c)
    value, d = layer_backward.loss("kl", h, target)
    for layer in reversed(range(3)):
        d, grads = layer_backward.backward(specs[layer], params[layer], caches[layer], d)
    assert abs(float(g["loss"][0]) - value) <= 1e-5 * abs(value)
    assert relative(g["d.input"].astype(np.float64), d) < 1e-4
    for name, ref in grads.items():
        assert relative(g["d." + name].astype(np.float64).reshape(ref.shape), ref) < 1e-4, name

"""UNet++ structure on tiny models (4 base filters, 32 px), saving, and the FLOP count."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from segsweep.errors import ConfigError
from segsweep.model.unetpp import build_unetpp, count_flops, float32_model, inference_model

TINY = {
    "depth": 2,
    "base_filters": 4,
    "dropout": 0.0,
    "batch_norm": False,
    "l2": 0.0,
    "deep_supervision": False,
    "in_channels": 1,
    "image_size": 32,
}


def tiny(**overrides) -> keras.Model:
    return build_unetpp(**{**TINY, **overrides})


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def conv_kernel_layers(model):
    return layers_of(model, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))


def n_blocks(depth):
    """Nodes X(i, j) with i + j <= depth."""
    return (depth + 1) * (depth + 2) // 2


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("deep_supervision", [False, True])
def test_outputs_and_heads(depth, deep_supervision):
    model = tiny(depth=depth, deep_supervision=deep_supervision, in_channels=3)
    heads = (
        [f"head_0_{j}" for j in range(1, depth + 1)] if deep_supervision else [f"head_0_{depth}"]
    )
    assert model.output_names == heads
    prediction = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    predictions = prediction if deep_supervision else [prediction]
    assert [p.shape for p in predictions] == [(2, 32, 32, 1)] * len(heads)
    assert all(((p >= 0) & (p <= 1)).all() for p in predictions)


def test_nested_structure_and_filters():
    model = tiny(depth=3)
    # X(0, 3) concatenates X(0, 0..2) and the upsampled X(1, 2): 4 inputs of 4 filters each.
    assert model.get_layer("x_0_3_concat").output.shape[-1] == 4 * 4
    assert model.get_layer("x_3_0_conv2").output.shape[1:] == (4, 4, 4 * 2**3)
    assert len(layers_of(model, keras.layers.Conv2DTranspose)) == n_blocks(3) - 4


def test_parameter_count_grows_with_depth():
    counts = [tiny(depth=depth).count_params() for depth in (1, 2, 3)]
    assert counts[0] < counts[1] < counts[2]


def test_one_l2_penalty_per_convolution_kernel():
    l2 = 1e-3
    model = tiny(depth=3, l2=l2, deep_supervision=True)
    kernels = [layer.kernel for layer in conv_kernel_layers(model)]
    assert len(model.losses) == len(kernels)
    expected = l2 * sum(float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert sum(float(loss) for loss in model.losses) == pytest.approx(expected, rel=1e-4)
    assert tiny(depth=3, l2=0.0).losses == []


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_dropout_after_every_convolution_iff_requested(dropout):
    model = tiny(dropout=dropout)
    dropouts = layers_of(model, keras.layers.Dropout)
    assert len(dropouts) == (2 * n_blocks(2) if dropout > 0 else 0)
    assert all(layer.rate == dropout for layer in dropouts)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_batch_norm_iff_requested(batch_norm):
    model = tiny(batch_norm=batch_norm, bn_momentum=0.8)
    norms = layers_of(model, keras.layers.BatchNormalization)
    assert len(norms) == (2 * n_blocks(2) if batch_norm else 0)
    assert all(layer.momentum == 0.8 for layer in norms)


def saved_modules(path):
    """Every 'module' named in a .keras file's config."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    found, stack = set(), [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.update([node["module"]] if isinstance(node.get("module"), str) else [])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def test_inference_model_saves_and_reloads_with_plain_keras(tmp_path):
    model = tiny(depth=2, batch_norm=True, dropout=0.2, l2=1e-4, deep_supervision=True)
    served = inference_model(model)
    assert len(served.outputs) == 1
    assert served.get_layer("head_0_2") is model.get_layer("head_0_2")

    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    expected = served.predict(x, verbose=0)
    assert expected == pytest.approx(model.predict(x, verbose=0)[-1])

    path = tmp_path / "served.keras"
    served.save(path)
    assert all(module.startswith("keras") for module in saved_modules(path))
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), expected)


def test_float32_model_of_a_mixed_precision_model_keeps_its_weights(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = inference_model(tiny(batch_norm=True, l2=1e-4, deep_supervision=True))
    finally:
        keras.config.set_dtype_policy("float32")
    assert "float16" in {layer.dtype_policy.compute_dtype for layer in mixed.layers}
    served = float32_model(mixed)
    assert {layer.dtype_policy.name for layer in served.layers} == {"float32"}
    for a, b in zip(served.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(1).random((2, 32, 32, 1)).astype("float32")
    low, full = mixed.predict(x, verbose=0), served.predict(x, verbose=0)
    assert full.dtype == np.float32 and np.abs(full - low).max() < 1e-2
    served.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert {layer.dtype_policy.name for layer in reloaded.layers} == {"float32"}


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        (
            {"depth": 9},
            "The 'depth' parameter of build_unetpp must be an int in [1, 6]. Got 9 instead.",
        ),
        ({"base_filters": 0}, "Got 0 instead."),
        ({"dropout": 1.0}, "Got 1.0 instead."),
        ({"l2": -1e-4}, "Got -0.0001 instead."),
        ({"in_channels": 0}, "Got 0 instead."),
        ({"image_size": 30}, "multiple of 2**depth = 4. Got 30 instead."),
        ({"batch_norm": "yes"}, "Got 'yes' instead."),
        ({"bn_momentum": 1.0}, "Got 1.0 instead."),
    ],
)
def test_bad_arguments_are_config_errors_that_show_the_value(overrides, shown):
    with pytest.raises(ConfigError) as excinfo:
        tiny(**overrides)
    assert shown in str(excinfo.value)


def flops_from_layer_shapes(model):
    """2·k·k·c_in·c_out per output pixel (per input pixel for transposed convolutions)."""
    total = 0
    for layer in conv_kernel_layers(model):
        kh, kw = layer.kernel_size
        c_in, c_out = layer.input.shape[-1], layer.filters
        transposed = isinstance(layer, keras.layers.Conv2DTranspose)
        h, w = (layer.input if transposed else layer.output).shape[1:3]
        total += 2 * kh * kw * c_in * c_out * h * w
    return total


@pytest.mark.parametrize("deep_supervision", [False, True])
def test_count_flops_matches_the_built_layers(deep_supervision):
    model = tiny(depth=3, in_channels=3, deep_supervision=deep_supervision)
    assert count_flops(
        depth=3, base_filters=4, image_size=32, in_channels=3, deep_supervision=deep_supervision
    ) == flops_from_layer_shapes(model)


def test_count_flops_of_the_reference_network():
    # Filters 32..512, 128 px, RGB: a benchmark measured fwd + bwd ≈ 44.6 GFLOP ≈ 3 × forward.
    forward = count_flops(depth=4, base_filters=32, image_size=128, in_channels=3)
    assert forward == 14_893_973_504
    assert forward == pytest.approx(44.6e9 / 3, rel=0.01)

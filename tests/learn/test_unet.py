"""Tests of the U-Net configuration and module (``intrepid.learn._unet``) and of the lazy torch import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from intrepid.errors import ModelError, ParameterError
from intrepid.learn import Activation, OutputActivation, UNetConfig, UpMode, build_unet, count_parameters

torch = pytest.importorskip("torch")


def _expected_parameters(cfg: UNetConfig) -> int:
    """Closed-form parameter count of the layout (3 x 3 convs, 2 x 2 transposed convs, 1 x 1 head)."""
    f = cfg.filters_per_level
    k2 = cfg.kernel_size**2
    total = 0

    def level(c_in: int, c_out: int, lvl: int) -> int:
        n = 0
        bn = cfg.uses_batch_norm(lvl)
        for i in range(cfg.convs_per_level):
            cin = c_in if i == 0 else c_out
            n += cin * c_out * k2 + (0 if bn else c_out)
            n += 2 * c_out if bn else 0  # batch-norm weight and bias
        return n

    c_in = cfg.in_channels
    for lvl in range(cfg.depth):
        total += level(c_in, f[lvl], lvl)
        c_in = f[lvl]
    for lvl in range(cfg.depth - 2, -1, -1):
        total += f[lvl + 1] * f[lvl] * 4 + f[lvl]  # transposed 2 x 2 conv with bias
        total += level(2 * f[lvl], f[lvl], lvl)
    total += f[0] * cfg.out_channels + cfg.out_channels
    return total


def test_filters_double_up_to_the_cap():
    assert UNetConfig().filters_per_level == (8, 16, 32, 64, 128)
    assert UNetConfig(initial_filters=16).filters_per_level == (16, 32, 64, 128, 128)
    assert UNetConfig(depth=3, initial_filters=4, max_filters=8).filters_per_level == (4, 8, 8)
    assert UNetConfig().size_multiple == 16


@pytest.mark.parametrize("filters", [8, 16])
def test_parameter_count_is_closed_form_and_small(filters):
    cfg = UNetConfig(initial_filters=filters)
    net = build_unet(cfg)
    assert count_parameters(net) == _expected_parameters(cfg)
    if filters == 8:
        # "a few MB" of float32 for the 8-filter network
        assert count_parameters(net) * 4 < 4_000_000


@pytest.mark.parametrize(
    "cfg",
    [
        UNetConfig(),
        UNetConfig(depth=3, initial_filters=4, up_mode=UpMode.BILINEAR, activation=Activation.LEAKY_RELU),
        UNetConfig(depth=1, initial_filters=2, batch_norm_from_level=None, activation=Activation.ELU),
        UNetConfig(depth=2, initial_filters=2, convs_per_level=1, kernel_size=5, out_channels=2),
    ],
)
def test_output_has_the_input_size(cfg):
    net = build_unet(cfg).eval()
    x = torch.randn(2, cfg.in_channels, 32, 48)
    with torch.no_grad():
        y = net(x)
    assert tuple(y.shape) == (2, cfg.out_channels, 32, 48)


def test_batch_norm_only_in_the_deeper_levels():
    def count_bn(cfg):
        return sum(isinstance(m, torch.nn.BatchNorm2d) for m in build_unet(cfg).modules())

    # levels 2, 3, 4 in the encoder and levels 2, 3 in the decoder, two convolutions each: 10
    assert count_bn(UNetConfig()) == 10
    assert count_bn(UNetConfig(batch_norm_from_level=0)) == 2 * (5 + 4)
    assert count_bn(UNetConfig(batch_norm_from_level=None)) == 0
    assert count_bn(UNetConfig(batch_norm_from_level=7)) == 0


def test_output_activation():
    cfg = UNetConfig(depth=2, initial_filters=2, output_activation=OutputActivation.RELU)
    with torch.no_grad():
        y = build_unet(cfg).eval()(torch.randn(3, 1, 16, 16))
    assert float(y.min()) >= 0.0
    cfg = UNetConfig(depth=2, initial_filters=2, output_activation=OutputActivation.SIGMOID)
    with torch.no_grad():
        y = build_unet(cfg).eval()(torch.randn(3, 1, 16, 16) * 100)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_config_round_trip():
    cfg = UNetConfig(
        depth=4,
        initial_filters=16,
        up_mode=UpMode.BILINEAR,
        batch_norm_from_level=None,
        output_activation=OutputActivation.SOFTPLUS,
    )
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 0}, "depth must be an integer >= 1, got 0"),
        ({"depth": 9}, "depth must be <= 8"),
        ({"initial_filters": 0}, "initial_filters must be an integer >= 1"),
        ({"initial_filters": 32, "max_filters": 16}, "max_filters must be >= initial_filters"),
        ({"kernel_size": 4}, "kernel_size must be an odd integer"),
        ({"batch_norm_from_level": -1}, "batch_norm_from_level must be an integer >= 0 or None"),
        ({"activation": "relu"}, "activation must be a Activation"),
        ({"up_mode": "transposed"}, "up_mode must be a UpMode"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        UNetConfig(**kwargs)


def test_from_dict_rejects_unknown_keys_and_values():
    with pytest.raises(ModelError, match="unknown U-Net architecture key"):
        UNetConfig.from_dict({"depth": 5, "dropout": 0.5})
    with pytest.raises(ModelError, match="invalid U-Net architecture"):
        UNetConfig.from_dict({"activation": "tanh"})


def test_build_unet_rejects_other_configs():
    with pytest.raises(ParameterError, match="config must be a UNetConfig"):
        build_unet({"depth": 5})  # type: ignore[arg-type]


def test_import_intrepid_and_help_do_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "import intrepid, intrepid.learn\n"
        "from intrepid.learn import UNetConfig, PreprocessConfig, ProtocolConfig, load_dataset\n"
        "from intrepid.learn import describe_model\n"
        "from intrepid.cli._main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    try:\n"
        "        main(['train', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr

"""MAC and parameter counting, the per-layer summary and `realfake models`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from realfake.cli import main
from realfake.models import build_model, count_macs, count_params, summarize


def test_macs_of_a_convolution_and_a_linear_layer() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, padding=1), nn.Flatten(), nn.Linear(8 * 32 * 32, 5)
    )
    # A 3×3 convolution does 3·9 MACs per output value, 8×32×32 of them; the Linear 8192 per output.
    assert count_macs(model, 32) == 8 * 32 * 32 * 3 * 9 + 8 * 32 * 32 * 5


def test_resnet18_cifar_macs_are_the_published_0_56_g() -> None:
    with torch.device("meta"):
        model = build_model("resnet18", 10, image_size=32)
    # ResNet-18 with a 3×3 stem on 32 px CIFAR: 0.56 GMACs (e.g. kuangliu/pytorch-cifar).
    assert count_macs(model, 32) / 1e9 == pytest.approx(0.556, abs=0.005)


def test_meta_and_real_models_count_the_same() -> None:
    torch.manual_seed(0)
    real = build_model("resnext29_32x4d", 2)
    with torch.device("meta"):
        meta = build_model("resnext29_32x4d", 2)
    assert count_macs(real, 32) == count_macs(meta, 32)
    assert count_params(real) == count_params(meta)


def test_summary_rows_have_shapes_and_sum_to_the_total() -> None:
    model = build_model("resnext29_2x64d", 2).train()
    summary = summarize(model, 32)
    rows = {row.name: row for row in summary.rows}
    assert rows["stem.0"].output_shape == (64, 32, 32)
    assert rows["stages.0"].output_shape == (256, 32, 32)
    assert rows["stages.2"].output_shape == (1024, 8, 8)
    assert rows["fc"].output_shape == (2,)
    assert sum(row.params for row in summary.rows if row.is_leaf) == summary.total_params
    assert summary.trainable_params == summary.total_params == count_params(model)
    assert summary.param_bytes == 4 * summary.total_params
    assert model.training, "summarize must restore the training mode"


def test_cli_summary_prints_the_seed_models_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "summary", "resnext29_2x64d", "--num-classes", "2"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 9,122,114 (9.12M)" in out
    assert "MACs per image: 1,411,057,664 (1.41G)" in out
    assert "stages.2.2.conv3" in out


def test_cli_list_shows_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "resnext101_32x8d" in out and "vgg19" in out
    assert "9.12M" in out and "1.41G" in out  # resnext29_2x64d at 32 px, 2 classes


def test_cli_unknown_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "summary", "resnext29_2x46d"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'resnext29_2x46d'; did you mean ")
    assert "resnext29_2x64d" in err.split("Known:")[0]
    assert err.count("\n") == 1

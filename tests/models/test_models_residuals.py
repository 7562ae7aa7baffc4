"""The fixed input transforms: hand-computed outputs, shapes, dtypes, every model, ONNX."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from realfake.models import ModelError, build_model, list_models, model_options
from realfake.models.residuals import (
    INPUT_TRANSFORMS,
    HaarHH,
    NeighbourResidual,
    SRMHighPass,
    make_input_transform,
)


def _image(rows: list[list[float]]) -> torch.Tensor:
    """A 1×1×H×W batch from a hand-written grid."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_npr_by_hand_on_a_4x4_image() -> None:
    x = _image([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]])
    # Each pixel minus its 2×2 block's top-left pixel (1, 3, 9 and 11 here).
    expected = _image([[0, 1, 0, 1], [4, 5, 4, 5], [0, 1, 0, 1], [4, 5, 4, 5]])
    assert torch.equal(NeighbourResidual(1, scale=1.0)(x), expected)
    # The reference code's 2/3 is the default scale.
    torch.testing.assert_close(NeighbourResidual(1)(x), expected * 2 / 3)


def test_npr_by_hand_on_an_odd_3x3_image() -> None:
    x = _image([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    # Anchors 1, 3, 7, 9; the last row and column are blocks of their own (residual 0 at the
    # anchor, the neighbour inside the image where there is one).
    expected = _image([[0, 1, 0], [3, 4, 3], [0, 1, 0]])
    assert torch.equal(NeighbourResidual(1, scale=1.0)(x), expected)


def test_npr_equals_the_reference_interpolations_on_even_sizes() -> None:
    x = torch.randn(2, 3, 10, 14, generator=torch.Generator().manual_seed(0))
    half = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    reference = (x - F.interpolate(half, scale_factor=2.0, mode="nearest")) * 2 / 3
    torch.testing.assert_close(NeighbourResidual(3)(x), reference)


@pytest.mark.parametrize("transform", [NeighbourResidual(3), HaarHH(3)])
def test_a_2x_nearest_upsampled_image_has_no_residual(transform: torch.nn.Module) -> None:
    """The trace NPR and the HH band read: pixels repeated by up-sampling leave no residual."""
    small = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    upsampled = F.interpolate(small, scale_factor=2.0, mode="nearest")
    assert torch.count_nonzero(transform(upsampled)) == 0
    assert transform(torch.randn(1, 3, 16, 16)).abs().mean() > 0.1


def test_haar_hh_by_hand_on_a_4x4_image() -> None:
    x = _image([[4, 0, 1, 1], [0, 4, 1, 1], [2, 3, 9, 1], [5, 7, 0, 6]])
    # (a - b - c + d) / 2 per 2×2 block [[a, b], [c, d]]: (4-0-0+4)/2 = 4, (1-1-1+1)/2 = 0,
    # (2-3-5+7)/2 = 0.5, (9-1-0+6)/2 = 7; each fills its block.
    expected = _image([[4, 4, 0, 0], [4, 4, 0, 0], [0.5, 0.5, 7, 7], [0.5, 0.5, 7, 7]])
    assert torch.equal(HaarHH(1)(x), expected)


def test_haar_hh_by_hand_on_an_odd_3x3_image() -> None:
    x = _image([[4, 0, 2], [0, 4, 6], [1, 3, 5]])
    # Replicated to [[4,0,2,2],[0,4,6,6],[1,3,5,5],[1,3,5,5]]: blocks 4, (2-2-6+6)/2 = 0,
    # (1-3-1+3)/2 = 0 and (5-5-5+5)/2 = 0, cropped back to 3×3.
    expected = _image([[4, 4, 0], [4, 4, 0], [0, 0, 0]])
    assert torch.equal(HaarHH(1)(x), expected)


def test_haar_hh_is_the_bior13_hh_band_of_pywavelets() -> None:
    """SAFE's bior1.3 HH band (symmetric extension) is Haar's inside its mirrored border."""
    pywt = pytest.importorskip("pywt")
    x = torch.randn(12, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _, (_, _, hh) = pywt.dwt2(x.numpy(), "bior1.3", mode="symmetric")
    assert hh.shape == (8, 7)  # 6 + 2 and 5 + 2: one extra coefficient on each side
    ours = HaarHH(1).double()(x[None, None])[0, 0, ::2, ::2]
    torch.testing.assert_close(ours, torch.from_numpy(hh[1:-1, 1:-1]))


def test_highpass_by_hand_on_a_quadratic_image() -> None:
    # x(i, j) = i²·j² on a 5×5 grid; at the centre (2, 2) by hand:
    #   KB = -¼ · (2nd difference in i)(2nd difference in j) = -¼ · (1-8+9)·(1-8+9) = -1;
    #   KV/12: its rows weigh j² = 0,1,4,9,16 into -4, 4, 0, 4, -4 and those weigh i² into
    #   4 + 36 - 64 = -24, so -2;
    #   the horizontal 2nd difference / 2 on row i = 2: 4·(1-8+9)/2 = 4.
    i = torch.arange(5.0)
    x = (i.view(5, 1) ** 2 * i.view(1, 5) ** 2)[None, None]
    out = SRMHighPass(1)(x)
    assert out.shape == (1, 3, 5, 5)
    torch.testing.assert_close(out[0, :, 2, 2], torch.tensor([-1.0, -2.0, 4.0]))
    # Zhou et al.'s layer sums each kernel over the colour channels: R = G = B triples it.
    rgb = SRMHighPass(3)(x.expand(1, 3, 5, 5))
    torch.testing.assert_close(rgb, 3 * out, rtol=1e-5, atol=1e-4)


def test_highpass_border_by_hand() -> None:
    # x(i, j) = j²: only the horizontal kernel answers; at column 0 the replicated border gives
    # (0 - 0 + 1)/2 = 0.5, inside (j-1)² - 2j² + (j+1)² = 2 gives 1, at column 4 (9-32+16)/2.
    j = torch.arange(5.0)
    x = (j.view(1, 5) ** 2).expand(5, 5)[None, None]
    out = SRMHighPass(1)(x)[0]
    # KB and KV vanish on a function of j alone (up to the rounding of 1/12).
    torch.testing.assert_close(out[:2], torch.zeros(2, 5, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[2], torch.tensor([0.5, 1, 1, 1, -3.5]).expand(5, 5))


@pytest.mark.parametrize("name", INPUT_TRANSFORMS)
def test_a_per_channel_shift_changes_nothing(name: str) -> None:
    """The normalisation's per-channel mean cancels: the filters sum to zero, borders too."""
    x = torch.randn(2, 3, 9, 12, generator=torch.Generator().manual_seed(3))
    transform = make_input_transform(name, 3)
    shifted = x + torch.tensor([5.0, -3.0, 0.25]).view(1, 3, 1, 1)
    torch.testing.assert_close(transform(shifted), transform(x), atol=1e-5, rtol=0)
    flat = transform(torch.full((1, 3, 7, 7), 0.3))
    torch.testing.assert_close(flat, torch.zeros_like(flat), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", INPUT_TRANSFORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("size", [(32, 32), (31, 17), (1, 1)])
def test_shape_and_dtype_are_kept(name: str, dtype: torch.dtype, size: tuple[int, int]) -> None:
    transform = make_input_transform(name, 3)
    out = transform(torch.randn(4, 3, *size).to(dtype))
    assert out.shape == (4, transform.out_channels, *size)
    assert out.dtype == dtype


def test_no_transform_and_unknown_names() -> None:
    assert make_input_transform(None, 3) is None and make_input_transform("none", 3) is None
    with pytest.raises(ValueError, match="input_transform must be one of npr, haar_hh, highpass"):
        make_input_transform("fft", 3)
    with pytest.raises(ModelError, match=r"resnet18: input_transform must be one of .* got 'NPR'"):
        build_model("resnet18", 2, input_transform="NPR")


def test_every_model_takes_a_transform_that_changes_the_channels() -> None:
    for name in list_models():
        assert "input_transform" in model_options(name), name
        # On the meta device: shapes flow through the whole network, nothing is computed. The
        # SRM filters turn 1 channel into 3, so the first layer must be built for 3.
        with torch.device("meta"):
            model = build_model(name, 2, in_channels=1, input_transform="highpass")
            assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 2), name


@pytest.mark.parametrize("transform", INPUT_TRANSFORMS)
@pytest.mark.parametrize("name", ["fastnet", "resnet18", "resnext29_2x64d", "vgg11", "npr_resnet"])
def test_one_model_per_family_runs_each_transform(name: str, transform: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 2, input_transform=transform).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    assert not torch.equal(logits[0], logits[1])


@pytest.mark.parametrize("name", ["fastnet", "resnet18", "vgg11"])
def test_filters_are_code_not_checkpoint_weights(name: str) -> None:
    plain = build_model(name, 2).state_dict()
    for transform in INPUT_TRANSFORMS:
        model = build_model(name, 2, input_transform=transform)
        # Same keys and shapes: a checkpoint says nothing about the transform (the run's model
        # options do), and checkpoints from before the option load as they did.
        assert {k: v.shape for k, v in model.state_dict().items()} == {
            k: v.shape for k, v in plain.items()
        }
        model.load_state_dict(plain)


def test_transform_changes_what_the_network_sees() -> None:
    torch.manual_seed(0)
    plain = build_model("fastnet", 2).eval()
    npr = build_model("fastnet", 2, input_transform="npr").eval()
    npr.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(npr(x), plain(NeighbourResidual(3)(x)))
        assert not torch.allclose(npr(x), plain(x))


def test_whitening_does_not_combine_with_a_transform() -> None:
    with pytest.raises(ModelError, match="whiten=True does not combine with input_transform"):
        build_model("fastnet", 2, whiten=True, input_transform="npr")


@pytest.mark.slow  # torch.export-based ONNX export: a few seconds per model
@pytest.mark.parametrize("name", INPUT_TRANSFORMS)
def test_a_model_with_each_transform_exports_to_onnx(name: str, tmp_path) -> None:
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model("fastnet", 2, width=8, input_transform=name).eval()
    example = torch.randn(2, 3, 32, 32)
    path = tmp_path / "model.onnx"
    program = torch.onnx.export(
        model, (example,), None, dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    program.save(str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        expected = model(images)
    torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-4, rtol=1e-4)

"""Fixed input transforms that keep an image's finest pixel-to-pixel detail and drop its content.

Detectors that generalise across generators read the traces a generator's last layers leave
between neighbouring pixels (up-sampling, de-convolution), not what the image shows. Each
transform below is a fixed, parameter-free filter put in front of a network by the model option
``input_transform``:

* ``npr``: neighbouring-pixel residual, ``x - up2(down2(x))`` with nearest-neighbour resampling
  (Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for
  Generalizable Deepfake Detection", CVPR 2024).
* ``haar_hh``: the HH (diagonal detail) band of a one-level Haar wavelet transform, as the
  input of SAFE (Li et al., "Improving Synthetic Image Detection Towards Generalization: An
  Image Transformation Perspective", KDD 2025), which names bior1.3; see :class:`HaarHH`.
* ``highpass``: the three SRM high-pass kernels of Zhou et al., "Learning Rich Features for
  Image Manipulation Detection" (CVPR 2018), from Fridrich & Kodovsky's spatial rich model
  ("Rich Models for Steganalysis of Digital Images", IEEE TIFS 2012).

All three are zero-sum filters, so the per-channel shift of the data's normalisation cancels
(and so does any flat colour): the network sees the same residual whatever the mean it was
normalised with. Their filters are non-persistent buffers: code, not weights, so a checkpoint's
keys are the same with or without a transform and checkpoints from before this option load
unchanged. Every transform keeps the image's height and width, so any model built for a size
takes its transformed images too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_TRANSFORMS = ("npr", "haar_hh", "highpass")
# The option's value that means "no transform": None, or this spelling for configs whose model
# defaults to a transform (a YAML null would not pass the config's string check).
NO_TRANSFORM = "none"


class NeighbourResidual(nn.Module):
    """NPR: each pixel minus the top-left pixel of its 2×2 block, times ``scale``.

    That is ``x - up2(down2(x))`` with nearest-neighbour down- and up-sampling by 2, as the NPR
    reference code computes it with two ``F.interpolate`` calls. Written as a strided slice and
    a nearest up-sampling instead, it is defined for odd sizes too: the last row (column) of an
    odd-sized image is a block of its own whose anchor is itself, so its residual is 0, exactly
    what replicating the border to an even size and cropping back would give (the reference
    code fails on odd sizes). Each block's anchor residual is 0 by construction, so the signal
    lives in the 3 other pixels of every block: an image up-sampled 2× by repeating pixels, the
    trace the method reads, gives 0 everywhere.
    """

    def __init__(self, in_channels: int, scale: float = 2.0 / 3.0) -> None:
        super().__init__()
        # The reference code feeds the network NPR · 2/3 (networks/resnet.py in
        # chuangchuangtan/NPR-DeepfakeDetection); the batch norm after the first convolution
        # makes any constant scale immaterial to training, kept so the input matches the paper.
        self.in_channels = self.out_channels = in_channels
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        anchors = x[..., ::2, ::2]  # nearest down-sampling by 2: the even rows and columns
        up = F.interpolate(anchors, scale_factor=2.0, mode="nearest")[..., :h, :w]
        return (x - up) * self.scale

    def extra_repr(self) -> str:
        return f"{self.in_channels}, scale={self.scale:.4g}"


class HaarHH(nn.Module):
    """The HH band of a one-level 2-D Haar DWT per channel, each coefficient repeated over 2×2.

    For every 2×2 block [[a, b], [c, d]] the coefficient is (a - b - c + d) / 2 (the orthonormal
    Haar high-pass, 1/√2·[1, -1], along both axes), computed as a stride-2 depthwise conv2d with
    fixed weights. Why Haar when SAFE names bior1.3: bior1.3's analysis high-pass filter *is*
    Haar's, (0, 0, -1/√2, 1/√2, 0, 0), and the HH band uses only the high-pass filter, so the
    two HH bands are the same numbers; they differ only at the border, where SAFE's
    ``pytorch_wavelets`` (symmetric extension) adds one mirrored coefficient on each side
    (checked against PyWavelets in the tests). SAFE then resizes the band back to the image
    size (bilinear); here each coefficient fills its 2×2 block instead, so the values stay the
    band's own and the image keeps its size (any model built for that size takes it). Odd
    sizes: the last row (column) is replicated, so its unpaired pixel has zero detail.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = self.out_channels = in_channels
        haar_hh = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) / 2
        self.register_buffer(
            "weight", haar_hh.expand(in_channels, 1, 2, 2).contiguous(), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        band = F.conv2d(x, self.weight.to(x.dtype), stride=2, groups=self.in_channels)
        return F.interpolate(band, scale_factor=2.0, mode="nearest")[..., :h, :w]

    def extra_repr(self) -> str:
        return f"{self.in_channels}, fixed"


# Zhou et al. 2018, §3.2: the three SRM kernels (of Fridrich & Kodovsky's 30) that worked best,
# each divided by its largest coefficient's magnitude (4, 12, 2) as in their code. Plain lists:
# the tensors are made in __init__, on the device a model is being built on (the meta device
# when `realfake models` counts MACs).
SRM_KERNELS = (
    [[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]],
    [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2],
     [-1, 2, -2, 2, -1]],
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
)  # fmt: skip
SRM_DIVISORS = (4.0, 12.0, 2.0)


class SRMHighPass(nn.Module):
    """Three fixed 5×5 SRM high-pass residuals, each summed over the input channels (3 out).

    As Zhou et al.'s noise stream: output channel k is kernel k applied to every input channel
    and summed (their filter tensor repeats each kernel over R, G and B). The border is
    replicated rather than zero-padded (their 'SAME'), so that flat regions give 0 up to the
    edge and the normalisation's shift still cancels there.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, len(SRM_KERNELS)
        kernels = torch.tensor(SRM_KERNELS) / torch.tensor(SRM_DIVISORS).view(-1, 1, 1)
        weight = kernels.unsqueeze(1).expand(-1, in_channels, -1, -1).contiguous()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.weight.to(x.dtype))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=5, fixed"


InputTransform = NeighbourResidual | HaarHH | SRMHighPass
_CLASSES: dict[str, type[InputTransform]] = {
    "npr": NeighbourResidual,
    "haar_hh": HaarHH,
    "highpass": SRMHighPass,
}


def make_input_transform(name: str | None, in_channels: int) -> InputTransform | None:
    """The fixed transform called ``name`` for ``in_channels`` inputs; None for no transform."""
    if name is None or name == NO_TRANSFORM:
        return None
    if name not in _CLASSES:
        raise ValueError(
            f"input_transform must be one of {', '.join(INPUT_TRANSFORMS)}, {NO_TRANSFORM!r} or "
            f"None, got {name!r}"
        )
    return _CLASSES[name](in_channels)

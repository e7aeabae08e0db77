"""Encoders, heads and fusion in plain torch (no torchvision).

Every encoder maps a batch of one modality to a 2-D embedding ``(batch, dim)``
and exposes ``out_dim``.  Heads and fusion layers are added by the scheduler.

* :class:`ResNet18` - the paper's backbone (BasicBlock, [2, 2, 2, 2]) with a
  configurable input channel count and base width; :func:`resnet18_audio`
  (1-channel spectrograms) and :class:`FrameResNet18` (3-channel frames
  ``(batch, frames, 3, H, W)``, encoded per frame and mean-pooled over frames).
* :class:`StackedFramesResNet18` - ResNet-18 over ``T`` frames (or flow fields) stacked along the
  channel axis, as the paper does for video; :func:`paper_encoder` builds the paper's encoder of
  each modality kind (section 5.2) from one sample's shape.
* :class:`CNN4` - the 4-layer CNN used for CG-MNIST.
* :class:`MLP` - vectors.

:class:`JointModel` holds ``encoder1``, ``encoder2``, ``head1``, ``head2`` and ``fusion``
(:class:`ConcatFusion` ``.fc`` or :class:`SumFusion` ``.fc1``/``.fc2``);
``JointModel.outputs`` returns everything a Stage II strategy needs in one pass.
"""
from __future__ import annotations

import torch
from torch import nn

from .methods.base import JointOutput

__all__ = [
    "ResNet18", "FrameResNet18", "StackedFramesResNet18", "resnet18_audio", "resnet18_visual", "CNN4", "MLP",
    "ConcatFusion", "SumFusion", "FUSIONS", "JointModel", "JointOutput", "default_encoder", "paper_encoder",
    "infer_out_dim", "Projected",
]


class _BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.short(x))


class ResNet18(nn.Module):
    """ResNet-18 (BasicBlock x [2, 2, 2, 2]) returning globally pooled features.

    ``width`` is the first stage's channel count (64 in the original); the
    embedding has ``8 * width`` dimensions.  ``small_input=True`` replaces the
    7x7/2 stem and max-pool by a 3x3/1 stem for small images.
    """

    def __init__(self, in_channels: int = 3, width: int = 64, small_input: bool = False):
        super().__init__()
        if small_input:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
        layers, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = 8 * width

    def forward(self, x):
        x = self.layers(self.stem(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def resnet18_audio(width: int = 64, small_input: bool = False) -> ResNet18:
    """ResNet-18 for 1-channel spectrograms ``(batch, 1, freq, time)``."""
    return ResNet18(1, width, small_input)


class FrameResNet18(nn.Module):
    """ResNet-18 over video frames ``(batch, frames, 3, H, W)``, mean-pooled over frames.

    A 4-D input ``(batch, 3, H, W)`` is treated as a single frame.
    """

    def __init__(self, width: int = 64, small_input: bool = False):
        super().__init__()
        self.backbone = ResNet18(3, width, small_input)
        self.out_dim = self.backbone.out_dim

    def forward(self, x):
        if x.ndim == 4:
            return self.backbone(x)
        b, t = x.shape[:2]
        z = self.backbone(x.reshape(b * t, *x.shape[2:]))
        return z.reshape(b, t, -1).mean(dim=1)


def resnet18_visual(width: int = 64, small_input: bool = False) -> FrameResNet18:
    return FrameResNet18(width, small_input)


class StackedFramesResNet18(nn.Module):
    """ResNet-18 on ``(batch, T, C, H, W)`` with the ``T`` frames stacked as ``T*C`` channels."""

    def __init__(self, n_frames: int, channels: int = 3, width: int = 64, small_input: bool = False):
        super().__init__()
        self.n_frames, self.channels = n_frames, channels
        self.backbone = ResNet18(n_frames * channels, width, small_input)
        self.out_dim = self.backbone.out_dim

    def forward(self, x):
        if x.ndim == 5:
            x = x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:])
        return self.backbone(x)


class CNN4(nn.Module):
    """Four 3x3 conv layers (BN, ReLU), max-pool after the 2nd and 4th, global average pool."""

    def __init__(self, in_channels: int = 1, width: int = 32):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.net = nn.Sequential(
            *block(in_channels, width), *block(width, width), nn.MaxPool2d(2),
            *block(width, 2 * width), *block(2 * width, 2 * width), nn.MaxPool2d(2),
        )
        self.out_dim = 2 * width

    def forward(self, x):
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.net(x), 1), 1)


class MLP(nn.Module):
    """Flatten, then ``len(hidden)`` Linear+ReLU layers; the embedding is the last hidden layer."""

    def __init__(self, in_dim: int, hidden: tuple = (128, 64)):
        super().__init__()
        layers, d = [nn.Flatten()], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True)]
            d = h
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, x):
        return self.net(x)


class Projected(nn.Module):
    """``encoder`` followed by a trained ``Linear(in_dim, dim) + ReLU`` projection (paper section 5.2).

    The paper appends an MLP layer to each encoder that projects the features into a common
    ``dim``-dimensional space (64) for the PID computations; the probe, the heads and the fusion
    layer all read the projected embedding.
    """

    def __init__(self, encoder: nn.Module, in_dim: int, dim: int = 64):
        super().__init__()
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"projection dim must be an integer >= 1, got {dim!r}")
        self.encoder = encoder
        self.proj = nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(inplace=True))
        self.out_dim = dim

    def forward(self, x):
        return self.proj(self.encoder(x))


class ConcatFusion(nn.Module):
    """Linear classifier on ``[z1, z2]``."""

    def __init__(self, d1: int, d2: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(d1 + d2, n_classes)

    def forward(self, z1, z2):
        return self.fc(torch.cat([z1, z2], dim=1))


class SumFusion(nn.Module):
    """``W1 z1 + W2 z2 + b`` (sum of per-modality linear maps)."""

    def __init__(self, d1: int, d2: int, n_classes: int):
        super().__init__()
        self.fc1 = nn.Linear(d1, n_classes)
        self.fc2 = nn.Linear(d2, n_classes, bias=False)

    def forward(self, z1, z2):
        return self.fc1(z1) + self.fc2(z2)


FUSIONS = {"concat": ConcatFusion, "sum": SumFusion}


class JointModel(nn.Module):
    """Two encoders, their unimodal heads and a fusion layer.

    ``forward(x1, x2) -> (fused_logits, logits1, logits2)``;
    ``outputs(x1, x2) -> JointOutput(fused, logits1, logits2, z1, z2)`` (the embeddings too).
    """

    def __init__(self, encoder1, encoder2, head1, head2, fusion):
        super().__init__()
        self.encoder1, self.encoder2 = encoder1, encoder2
        self.head1, self.head2 = head1, head2
        self.fusion = fusion

    def outputs(self, x1, x2) -> JointOutput:
        z1, z2 = self.encoder1(x1), self.encoder2(x2)
        return JointOutput(self.fusion(z1, z2), self.head1(z1), self.head2(z2), z1, z2)

    def forward(self, x1, x2):
        return tuple(self.outputs(x1, x2)[:3])


def default_encoder(sample_shape: tuple, *, width: int = 32) -> nn.Module:
    """A small encoder for one modality given the shape of one sample (no batch axis).

    1-D -> :class:`MLP`; 2-D (H, W) or 3-D (C, H, W) -> :class:`CNN4` (a 2-D
    sample needs a channel axis: the data loader adds none, so 2-D inputs are
    flattened into an MLP instead).
    """
    shape = tuple(int(s) for s in sample_shape)
    if len(shape) == 3:
        return CNN4(shape[0], width)
    n = 1
    for s in shape:
        n *= s
    return MLP(n, (4 * width, 2 * width))


def paper_encoder(kind: str, shape: tuple, width: int) -> nn.Module:
    """The paper's encoder (section 5.2) for one modality, from one sample's shape (no batch axis).

    ``"audio"``: ResNet-18 on a spectrogram ``(1, F, T)``; ``"frames"`` / ``"flow"``: ResNet-18 on
    ``(T, C, H, W)`` frames or flow fields stacked as ``T*C`` channels; ``"cnn4"``: the 4-layer CNN.
    Images smaller than 64 pixels get the 3x3 stem without max-pool (``small_input``).
    """
    small = min(shape[-2:]) < 64
    if kind == "audio":
        return ResNet18(shape[0], width, small_input=small)
    if kind in ("frames", "flow"):
        return StackedFramesResNet18(shape[0], shape[1], width, small_input=small)
    if kind == "cnn4":
        return CNN4(shape[0], width)
    raise ValueError(f"unknown paper encoder kind {kind!r}; choose audio, frames, flow or cnn4")


@torch.no_grad()
def infer_out_dim(encoder: nn.Module, sample: torch.Tensor, *, name: str = "encoder") -> int:
    """Embedding width of ``encoder`` from a dry forward pass on ``sample`` (with batch axis)."""
    was = encoder.training
    encoder.eval()
    try:
        dev = next((p.device for p in encoder.parameters()), torch.device("cpu"))
        z = encoder(sample.to(dev))
    finally:
        encoder.train(was)
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"{name} must map a batch to a 2-D (batch, dim) tensor, got {shape}; "
                         "add a flatten or pooling layer at the end of the encoder")
    if z.shape[0] != sample.shape[0]:
        raise ValueError(f"{name} returned {z.shape[0]} rows for a batch of {sample.shape[0]}")
    return int(z.shape[1])

"""The paper's encoders per dataset (section 5.2), built from :mod:`multimodal_sched.models`.

* audio: ResNet-18 with a 1-channel input (spectrogram ``(1, F, T)``);
* visual / RGB: ResNet-18 over ``T`` frames stacked along the channel axis
  (``(T, 3, H, W)`` -> ``3T`` input channels), as the paper does;
* optical flow: ResNet-18 over ``T`` flow fields (horizontal, vertical)
  stacked along the channel axis (``(T, 2, H, W)`` -> ``2T`` channels);
* CG-MNIST: the 4-layer CNN (1 channel gray, 3 channels color).

``small_input`` (3x3 stem, no max-pool) is used when the images are smaller
than 64 pixels, so the tests' tiny images still give a valid feature map.
"""
from __future__ import annotations

from torch import nn

from ..models import CNN4, ResNet18

__all__ = ["StackedFramesResNet18", "audio_resnet18", "frames_resnet18", "flow_resnet18", "cnn4"]


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


def _small(shape) -> bool:
    return min(shape[-2:]) < 64


def audio_resnet18(shape: tuple, width: int) -> nn.Module:
    return ResNet18(shape[0], width, small_input=_small(shape))


def frames_resnet18(shape: tuple, width: int) -> nn.Module:
    """``shape`` = one sample's (T, 3, H, W)."""
    return StackedFramesResNet18(shape[0], shape[1], width, small_input=_small(shape))


flow_resnet18 = frames_resnet18   # same stacking; C = 2 (horizontal, vertical)


def cnn4(shape: tuple, width: int) -> nn.Module:
    return CNN4(shape[0], width)

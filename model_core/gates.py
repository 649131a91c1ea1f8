"""The Convolutional Feature Leaky Unit (ConvFLU): FERSNet's selective sharing.

After a stage, the FER and FES branches each hold a feature map. A ConvFLU lets
branch *x* take from branch *y* only what helps it, like a GRU's gates::

    r  = sigmoid(W_r * [F_x, F_y])          # which of y's features to read
    F~ = tanh(W * (r . F_y) + U * F_x)      # the candidate, mixed with x's own
    z  = sigmoid(W_z * [F_x, F_y])          # how much of the candidate to take
    F_x' = (1 - z) . F_x + z . F~

All four convolutions are 3x3 without bias, as in the paper. One gate carries
features in one direction; FERSNet builds a separate gate for every stage and
every direction (the authors' published code reused a single pair for all
stages, which ties features of different depths to the same weights).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class GateOutput(NamedTuple):
    """The gated features, with the gates themselves for inspection and plots."""

    features: Tensor
    reset: Tensor
    update: Tensor


def _conv3x3(in_chans: int, out_chans: int) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False)


class ConvFLU(nn.Module):
    """Gate features of a *source* branch into a *receiving* branch of ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.w_r = _conv3x3(2 * channels, channels)
        self.w_z = _conv3x3(2 * channels, channels)
        self.w = _conv3x3(channels, channels)
        self.u = _conv3x3(channels, channels)

    def forward(self, receiving: Tensor, source: Tensor) -> GateOutput:
        both = torch.cat((receiving, source), dim=1)
        reset = torch.sigmoid(self.w_r(both))
        update = torch.sigmoid(self.w_z(both))
        candidate = torch.tanh(self.w(reset * source) + self.u(receiving))
        features = (1 - update) * receiving + update * candidate
        return GateOutput(features, reset, update)


class GatePair(nn.Module):
    """The two ConvFLUs of one stage: FES into FER, and FER into FES.

    Both read the features as they were before either gate ran, so the order
    of the two directions does not matter.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.into_fer = ConvFLU(channels)
        self.into_fes = ConvFLU(channels)

    def forward(self, fer: Tensor, fes: Tensor) -> tuple[GateOutput, GateOutput]:
        return self.into_fer(fer, fes), self.into_fes(fes, fer)

"""PatchGAN discriminator: judges realism patch by patch rather than for the whole face.

A patch verdict (Isola et al., 2017) penalises local artefacts (smeared
mouths, checkerboards) that a single global score lets through, with far fewer
parameters. Instance norm instead of batch norm keeps real and fake batches
from leaking statistics into each other.
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """``n_layers`` stride-2 4x4 convs, then a 1-channel map of per-patch realism scores."""

    def __init__(self, in_chans: int = 1, width: int = 64, n_layers: int = 3, max_width: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        chans = in_chans
        for i in range(n_layers):
            out = min(width * 2**i, max_width)
            layers.append(nn.Conv2d(chans, out, kernel_size=4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.InstanceNorm2d(out, affine=True))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            chans = out
        layers.append(nn.Conv2d(chans, 1, kernel_size=3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


def discriminator_for(img_size: int, in_chans: int, width: int = 64) -> PatchDiscriminator:
    """A PatchGAN whose patches cover about a sixth of the face: 3 layers at 48 px, 4 at 96."""
    n_layers = 3 if img_size <= 64 else 4
    return PatchDiscriminator(in_chans=in_chans, width=width, n_layers=n_layers)

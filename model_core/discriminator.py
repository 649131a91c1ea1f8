"""PatchGAN discriminator: judges realism patch by patch rather than for the whole face.

A patch verdict (Isola et al., 2017) penalises local artefacts (smeared
mouths, checkerboards) that a single global score lets through, with far fewer
parameters. Instance norm instead of batch norm keeps real and fake batches
from leaking statistics into each other; with spectral normalisation, which
bounds each layer's gain and so keeps adversarial training stable, no
normalisation layer is needed at all.
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """``n_layers`` stride-2 4x4 convs, then a 1-channel map of per-patch realism scores."""

    def __init__(
        self, in_chans: int = 1, width: int = 64, n_layers: int = 3, max_width: int = 512, spectral_norm: bool = False
    ) -> None:
        super().__init__()

        def conv(cin: int, cout: int, kernel_size: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(cin, cout, kernel_size=kernel_size, stride=stride, padding=1)
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        layers: list[nn.Module] = []
        chans = in_chans
        for i in range(n_layers):
            out = min(width * 2**i, max_width)
            layers.append(conv(chans, out, 4, 2))
            if i > 0 and not spectral_norm:
                layers.append(nn.InstanceNorm2d(out, affine=True))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            chans = out
        layers.append(conv(chans, 1, 3, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


def discriminator_for(img_size: int, in_chans: int, width: int = 64, spectral_norm: bool = False) -> PatchDiscriminator:
    """A PatchGAN whose patches cover about a sixth of the face: 3 layers at 48 px, 4 at 96."""
    n_layers = 3 if img_size <= 64 else 4
    return PatchDiscriminator(in_chans=in_chans, width=width, n_layers=n_layers, spectral_norm=spectral_norm)

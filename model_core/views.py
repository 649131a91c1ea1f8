"""The looks at a face that recognition averages (test-time augmentation).

A recogniser that sees a face once answers for one framing of it; averaging its logits over a few
slightly different looks (the face's mirror image, the face zoomed a little about its centre) is a
small ensemble for the price of a larger batch. :class:`Views` turns a batch of faces into
the batch of all their looks, one pass of the network, and averages the logits back to one row per
face. A zoom is a fixed linear map of the pixels (bilinear, edge pixels repeated), applied as two
matrix products: the same on every device and precision, and plain matrix algebra in an exported
program.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def zoom_matrix(size: int, zoom: float) -> Tensor:
    """The ``(size, size)`` matrix ``A`` that zooms a row of ``size`` pixels about its centre: ``A @ row``.

    ``zoom`` above 1 enlarges (the edges fall outside), below 1 shrinks (the edge pixel repeats). Output pixel
    ``i`` samples the source at ``(i + 0.5 - size / 2) / zoom + size / 2 - 0.5``, interpolated linearly between
    its two neighbours: what ``torch.nn.functional.grid_sample`` does with ``align_corners=False`` and
    ``padding_mode="border"`` for the same zoom.
    """
    if zoom <= 0:
        raise ValueError(f"a zoom must be positive, not {zoom}")
    centre = size / 2
    source = ((torch.arange(size, dtype=torch.float64) + 0.5 - centre) / zoom + centre - 0.5).clamp(0, size - 1)
    below = source.floor().long()
    above = (below + 1).clamp(max=size - 1)
    weight_above = source - below
    matrix = torch.zeros(size, size, dtype=torch.float64)
    rows = torch.arange(size)
    matrix.index_put_((rows, below), 1 - weight_above, accumulate=True)
    matrix.index_put_((rows, above), weight_above, accumulate=True)
    return matrix.float()


class Views(nn.Module):
    """The looks at each face that :meth:`FERSNet.classify <model_core.fersnet.FERSNet.classify>` averages.

    The face itself, the face zoomed by each of ``zooms``, and with ``mirror`` the mirror image of each of
    those: ``len(self)`` looks in all. :meth:`expand` stacks them into one batch, look after look;
    :meth:`average` takes the network's logits of that batch back to one row per face. With no zooms and
    no mirror both are the identity. The zoom matrices are buffers, so they follow the model's device and
    dtype, but are not saved: a checkpoint's weights do not depend on how it is looked at.
    """

    def __init__(self, size: int, zooms: Sequence[float] = (), mirror: bool = False) -> None:
        super().__init__()
        self.zooms = tuple(float(z) for z in zooms)
        self.mirror = mirror
        for i, zoom in enumerate(self.zooms):
            self.register_buffer(f"zoom{i}", zoom_matrix(size, zoom), persistent=False)

    def __len__(self) -> int:
        return (1 + len(self.zooms)) * (2 if self.mirror else 1)

    def _zoomed(self, images: Tensor, i: int) -> Tensor:
        matrix: Tensor = getattr(self, f"zoom{i}").to(images.dtype)
        return matrix @ images @ matrix.T  # rows, then columns: (H, H) @ (N, C, H, W) @ (W, W)

    def expand(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` faces -> ``(len(self) * N, C, H, W)`` looks: every face's first look, then every second..."""
        looks = [images, *(self._zoomed(images, i) for i in range(len(self.zooms)))]
        if self.mirror:
            looks += [look.flip(3) for look in looks]
        return torch.cat(looks) if len(looks) > 1 else images

    def average(self, logits: Tensor) -> Tensor:
        """Logits of :meth:`expand`'s batch -> one row per face, the mean over its looks (no slice: an exported
        program keeps N dynamic)."""
        return logits.unflatten(0, (len(self), -1)).mean(0) if len(self) > 1 else logits

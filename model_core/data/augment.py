"""Training augmentation: small, face-preserving changes applied before normalisation.

It works on uint8 CxHxW tensors at the model's input size, so it slots between
:meth:`Preprocess.prepare` and :meth:`Preprocess.to_tensor` and never changes
how serving prepares an image. Faces stay upright and recognisable: a crop of
80-100 %, mirror, up to 10 degrees of tilt, light and contrast jitter, and a
random erased patch (occlusion by hands, hair or glasses).

torchvision is imported only when an augmentation is built: importing it pulls
in ``torch._dynamo`` (through ``torchvision.ops``), which doubles the start-up
of every process that loads this package, about 3 s on two CPU cores, and
serving, evaluation and the other commands never augment.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor


def train_augmentation(img_size: int, strength: float = 1.0) -> Callable[[Tensor], Tensor]:
    """The augmentation for uint8 images of ``img_size``; ``strength`` 0 disables it."""
    if strength <= 0:
        return lambda image: image
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop(img_size, scale=(1 - 0.2 * strength, 1.0), ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.RandomRotation(10 * strength)], p=0.5),
        v2.ColorJitter(brightness=0.3 * strength, contrast=0.3 * strength),
        v2.RandomErasing(p=0.25 * strength, scale=(0.02, 0.12), value=128),
    ])

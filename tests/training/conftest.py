"""The training scripts' tests use the library's fake datasets and tiny checkpoints: the same fixtures, one definition."""

from ..core.conftest import (  # noqa: F401  # re-exported fixtures
    ckplus_root,
    fer2013_csv,
    fer2013_folder,
    ferplus_root,
    make_checkpoint,
    make_folder,
)

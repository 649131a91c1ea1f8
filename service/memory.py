"""glibc's allocator, asked to give the memory of big requests back to the system once they end.

Decoded pictures are large, short-lived buffers (tens of MB each). glibc
keeps freed heap memory for reuse, in up to 8 arenas per core (one per thread
that allocates), and raises its mmap threshold after large frees, so such
buffers end up in the arenas and stay in the process. Measured with ``python
-m bench.faults memory`` (4 x 16 PNGs of 6000 x 6000 at once, served with the
request budget raised; 2 shared cores):

=====================================================  ==========  ==============
allocator                                              server CPU  held after
=====================================================  ==========  ==============
glibc defaults                                         20.1 s      +0.24 GB
fixed 1 MiB mmap threshold, 2 arenas                   26.6 s      +0.01 GB
2 arenas, ``malloc_trim`` once the budget is idle      19.6 s      -0.02 GB
=====================================================  ==========  ==============

A fixed mmap threshold returns every buffer at once but pays a page fault per
4 KB of every decode; trimming once no request holds decoded pixels keeps the
heap's speed while the work lasts and hands it back after. :func:`tune_malloc`
caps the arenas at start-up, :func:`trim` is what the pixel budget calls when
it empties after a large request (:class:`service.budget.PixelBudget`). Both do
nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable

#: mallopt parameter (glibc's malloc.h).
M_ARENA_MAX = -8
#: Heap arenas; threads share them (allocation here is dominated by large buffers, not by lock contention).
ARENA_MAX = 2


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def tune_malloc() -> bool:
    """Cap glibc's heap arenas; True where glibc accepted it."""
    mallopt = getattr(_LIBC, "mallopt", None)
    return bool(mallopt(M_ARENA_MAX, ARENA_MAX)) if mallopt is not None else False


def trim() -> bool:
    """Return the free memory at the top of glibc's heaps to the system; True where something was returned."""
    malloc_trim = getattr(_LIBC, "malloc_trim", None)
    return bool(malloc_trim(0)) if malloc_trim is not None else False


def trim_in_background() -> Callable[[], None]:
    """A callback that trims on a short-lived thread, so the event loop that calls it never waits (trim can take ms)."""

    def start() -> None:
        threading.Thread(target=trim, name="fersnet-malloc-trim", daemon=True).start()

    return start

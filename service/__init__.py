"""service: the FERSNet REST inference service (FastAPI).

Build the app with :func:`service.app.create_app` from a
:class:`service.settings.Settings`; run it with ``python -m service``. The
package imports nothing heavy at the top level, so ``service.metrics`` and
``service.settings`` can be imported without loading PyTorch.

Importing it sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment says
otherwise: PyTorch's OpenMP threads then sleep between parallel regions
instead of spinning. A spinning thread takes a core from the decode threads
and the event loop of this same process, and on a host shared with other
work, 2 spinning threads on 2 busy cores ran the model 5-8x slower than 1
thread (``python -m bench.precision``). libgomp reads the variable when it is
loaded, so this works where ``service`` is imported before ``torch``
(``python -m service``, the benchmarks); the image sets it in its environment.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

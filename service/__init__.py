"""service: the FERSNet REST inference service (FastAPI).

Build the app with :func:`service.app.create_app` from a
:class:`service.settings.Settings`; run it with ``python -m service``. The
package imports nothing heavy at the top level, so ``service.metrics`` and
``service.settings`` can be imported without loading PyTorch.
"""

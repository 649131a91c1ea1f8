"""fersnet_cli: the ``fersnet`` console script, the floor above ``model_core``, ``training`` and ``service``.

It holds no science: each command in :mod:`fersnet_cli.commands` reads its options and calls
library functions (``model_core``), or the service (``fersnet serve``). Nothing below imports
it. Importing the package is cheap (no PyTorch), so ``fersnet serve`` starts the service the way
``python -m service`` does.
"""

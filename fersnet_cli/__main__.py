"""``python -m fersnet_cli ...``: the ``fersnet`` command without the installed script (torchrun, a bare checkout)."""

from fersnet_cli.main import main

if __name__ == "__main__":
    main()

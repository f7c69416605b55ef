"""The command line's sub-commands, one module per area (the top floor, beside ``cli.py``).

Each module has ``add_commands(subparsers)`` and imports nothing heavy at import time, so ``avfewshot --help``
is instant and never touches torch or the network.
"""

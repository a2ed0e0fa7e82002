"""``python -m bolt.cli``: the ``bolt`` command without its script (child processes use it)."""
from . import main

main()

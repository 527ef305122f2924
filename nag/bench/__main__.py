"""``python -m nag.bench``: see :mod:`nag.bench`."""

from nag.bench.cli import main

main()

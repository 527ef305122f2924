"""Benchmarks: ``python -m nag.bench [--quick] [--out bench.json] [--device cpu|cuda] [--only PART ...]``.

Speed and memory targets live here, not in timed tests; each part is measured as a ratio where the machine's speed
cancels out. What each part measures and its target: docs/development.md, "The benchmark".
"""

from nag.bench.cli import main

__all__ = ["main"]

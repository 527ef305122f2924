"""Benchmarks: ``python -m nag.bench [--quick] [--out bench.json] [--device cpu|cuda] [--only PART ...]``.

Speed and memory targets live here, not in timed tests; each part is measured as a ratio where the machine's speed
cancels out. What each part measures and its target: docs/development.md, "The benchmark".

Examples:
  python -m nag.bench                       # everything, about 10 minutes on 2 CPU cores
  python -m nag.bench --quick --out b.json  # every part on tiny settings, in about a minute
  python -m nag.bench --device cuda --only model loop   # the GPU projection
"""

from nag.bench.cli import main

__all__ = ["main"]

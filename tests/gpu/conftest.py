"""The GPU tier: what only a GPU runs. Skipped, each test, where torch sees no CUDA device (CI and the CPU machines
run it as skips; ``python -m pytest tests/gpu`` on a GPU machine runs it)."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="the GPU tier: torch sees no CUDA device here")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)

"""A clean console for the entry points: third-party noise off, nag's own warnings untouched.

Installed by ``python -m nag.*`` only (not on ``import nag``), so a notebook or a test that imports nag sees
everything. Each filter names one known message of one library, never a whole category.
"""

from __future__ import annotations

import logging
import warnings

#: Deprecation warnings raised inside third-party code about third-party APIs (nothing a nag user can act on).
THIRD_PARTY_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",  # Lightning's own use of torch's pytree API
    r".*`torch\.cuda\.amp\..*` is deprecated.*",
)


class _DropTips(logging.Filter):
    """Lightning's advertisements for its cloud products ("💡 Tip: ... litlogger ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_third_party() -> None:
    for pattern in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())

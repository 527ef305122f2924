"""The training progress bar: Lightning's rich bar, minus what costs time or means nothing here."""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar without ``v_num`` (the tail of the run name: meaningless here), redrawn
    ``refresh_rate`` times a second, its metric column refreshed at most every ``metrics_every`` seconds.

    The stock bar redraws 100 times a second from a background thread and recomputes every logged metric after
    every batch (Lightning's metric collection plus a device-to-host copy of each value). Measured with
    ``python -m nag.bench``-style pairs on 2 CPU cores, that cost the quickstart 5 % of its training speed; on a
    GPU the per-batch copies are a synchronisation per step. The bar itself still advances every batch; the numbers
    beside it are at most ``metrics_every`` seconds old, and exact at every epoch's end.

    Args:
        refresh_rate: Redraws per second (0 hides the bar).
        metrics_every: Seconds between refreshes of the metric column (0: every batch, as Lightning does).
        **kwargs: ``RichProgressBar``'s other arguments.
    """

    def __init__(self, refresh_rate: int = 4, metrics_every: float = 1.0, **kwargs) -> None:  # noqa: ANN003
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.metrics_every = metrics_every
        self._metrics_at = float("-inf")

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float | dict]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if self.is_disabled:
            return
        if self.train_progress_bar_id is None:  # a mid-epoch resume
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, batch_idx + 1)
        now = time.monotonic()
        if now - self._metrics_at >= self.metrics_every:
            self._metrics_at = now
            self._update_metrics(trainer, pl_module)
        self.refresh()

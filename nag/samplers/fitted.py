"""Ex-post samplers that are networks fitted to the training codes (the flow, the two-stage VAE): one training loop
(maximum likelihood or its bound, early stopping on held-out codes, the best epoch's weights kept) and one store of
fitted weights beside the run, reused by the next evaluation of the same codes and refitted when it does not match.

The codes are standardised per dimension first (a prior at mean −3 or a code cloud of variance 100 would otherwise
start far from the network's N(0, I) base); the held-out split is a seeded fraction of the codes. A stored fit
(``<run>/samplers/<prefix>-<key>.pt``; ``key`` hashes the settings and the codes' bytes) holds tensors and numbers
only, read through the checkpoints' safety checks and torch's ``weights_only`` loader.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nag.model.priors import Prior


class FittedSampler:
    """The shared part of a network sampler. A subclass sets ``prefix`` (its ``sampler=`` name and file prefix),
    ``label`` (what messages call it), ``criterion`` (what its held-out loss is) and the attributes
    ``max_epochs, patience, lr, batch_size, val_fraction, seed, store``, names its network's settings in
    ``net_settings``, and defines ``_build(dim)``, ``_loss(net, z)`` (per code, in nats, on standardised codes) and
    ``_draw(n)`` (standardised codes, under a seeded random stream)."""

    needs_codes = True
    prefix: str
    label: str
    criterion = "NLL"
    max_epochs: int
    patience: int
    lr: float
    batch_size: int
    val_fraction: float
    seed: int
    store: str | None

    net_settings: tuple[str, ...] = ()
    #: The fit's own settings, the same for every network.
    TRAINING = ("max_epochs", "patience", "lr", "batch_size", "val_fraction", "seed")

    def settings(self) -> dict[str, Any]:
        """What a stored fit must have been made with: the network's settings, then the fit's."""
        return {name: getattr(self, name) for name in (*self.net_settings, *self.TRAINING)}

    def _build(self, dim: int) -> torch.nn.Module:
        raise NotImplementedError

    def _loss(self, net: torch.nn.Module, z: Tensor) -> Tensor:
        raise NotImplementedError

    def _draw(self, n: int) -> Tensor:
        raise NotImplementedError

    @property
    def _log(self) -> logging.Logger:  # the subclass's module: its messages are filed under its name
        return logging.getLogger(type(self).__module__)

    def key(self, codes: Tensor) -> str:
        """What a stored fit must have been fitted on and with: the settings and the codes, hashed."""
        h = hashlib.sha256(repr(sorted(self.settings().items())).encode())
        h.update(str(tuple(codes.shape)).encode())
        h.update(codes.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:24]

    def fit(self, codes: Tensor, prior: Prior) -> FittedSampler:
        codes = codes.detach().float().cpu()
        if len(codes) < 10:
            raise ValueError(
                f"sampler={self.prefix} needs at least 10 training codes to fit and hold out, got {len(codes)}."
            )
        key = self.key(codes)
        path = Path(self.store) / f"{self.prefix}-{key}.pt" if self.store else None
        if path is not None and self._load(path, key, codes.shape[1]):
            return self
        # Fitted from inside the evaluation's no-grad / inference-mode blocks: gradients on, codes as plain tensors.
        with torch.inference_mode(False), torch.enable_grad():
            self._train(codes.clone())
        if path is not None:
            self._save(path, key)
        return self

    def _held_out(self, val: Tensor) -> float:
        # A stochastic loss (the VAE's ELBO) sees the same noise at every epoch: epochs are compared, not draws.
        self.net.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return float(self._loss(self.net, val).mean())

    def _train(self, codes: Tensor) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            order = torch.randperm(len(codes))
            n_val = max(1, round(self.val_fraction * len(codes)))
            val, train = codes[order[:n_val]], codes[order[n_val:]]
            self.mean, self.std = train.mean(0), train.std(0).clamp_min(1e-6)
            train, val = (train - self.mean) / self.std, (val - self.mean) / self.std
            self.net = self._build(codes.shape[1])
            opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
            best, best_state, since, curve = float("inf"), None, 0, []
            for _epoch in range(self.max_epochs):
                self.net.train()
                for idx in torch.randperm(len(train)).split(self.batch_size):
                    loss = self._loss(self.net, train[idx]).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                held_out = self._held_out(val)
                curve.append(held_out)
                if held_out < best - 1e-4:
                    best, best_state, since = held_out, copy.deepcopy(self.net.state_dict()), 0
                else:
                    since += 1
                    if since >= self.patience:
                        break
        if best_state is None:
            never = f"the held-out {self.criterion} was never finite"
            raise ValueError(f"sampler={self.prefix}: {never}; lower sampler.lr.")
        self.net.load_state_dict(best_state)
        self.net.eval()
        # The loss of the standardised codes; + sum(log std) makes it the codes' own (nats per code).
        shift = float(self.std.log().sum())
        self.history = {"epochs": len(curve), "best_epoch": curve.index(best) + 1, "val_nll": best + shift}
        self.history["stored"] = False
        self._log.info(
            "%s fitted on %d codes in %d epochs (best %d): held-out %s %.3f nats per code",
            self.label,
            len(train),
            len(curve),
            self.history["best_epoch"],
            self.criterion,
            self.history["val_nll"],
        )

    def _save(self, path: Path, key: str) -> None:
        from nag.config.errors import UserInputError
        from nag.io.output import OutputDir

        buf = io.BytesIO()
        record = {"key": key, "settings": self.settings(), "mean": self.mean, "std": self.std}
        record |= {"state_dict": self.net.state_dict(), "val_nll": float(self.history["val_nll"])}
        record |= {"epochs": int(self.history["epochs"]), "best_epoch": int(self.history["best_epoch"])}
        torch.save(record, buf)
        try:
            OutputDir(path.parent, "sampler.store").write_bytes(path.name, buf.getvalue())
        except (OSError, UserInputError) as e:  # a read-only run dir (someone else's), a link: fitted, not kept
            self._log.warning(
                "the fitted %s could not be stored in %s (%s); it is fitted again next time", self.label, path.parent, e
            )
            return
        self._log.info("%s stored in %s", self.label, path)

    def _load(self, path: Path, key: str, dim: int) -> bool:
        """Reuse ``path`` if it was fitted with these settings on these codes; else say why and refit."""
        import os

        from nag.io.files import is_regular_file
        from nag.runs.checkpoint_file import check_archive

        if not os.path.lexists(path):
            return False
        try:
            if not is_regular_file(path):
                raise ValueError("not a regular file")
            check_archive(path, "sampler.store", path)
            data = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(data, dict) or data.get("key") != key or data.get("settings") != self.settings():
                raise ValueError("fitted with other settings or on other codes")
            mean, std, state = data["mean"], data["std"], data["state_dict"]
            tensors = [mean, std, *state.values()]
            if not all(isinstance(t, Tensor) and bool(torch.isfinite(t.float()).all()) for t in tensors):
                raise ValueError("a tensor that is not finite")
            if mean.shape != (dim,) or std.shape != (dim,) or not bool((std > 0).all()):
                raise ValueError("standardisation of the wrong shape")
            history = {name: data.get(name, 0) for name in ("epochs", "best_epoch")}
            for name, count in history.items():
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise ValueError(f"{name}={count!r} is not a count of epochs")
            nll = data.get("val_nll", float("nan"))
            if isinstance(nll, bool) or not isinstance(nll, int | float) or not math.isfinite(float(nll)):
                raise ValueError(f"val_nll={nll!r} is not a finite number")
            net = self._build(dim)
            net.load_state_dict(state, strict=True)
        except Exception as e:  # a stored fit is a cache: whatever is wrong with it (a pickle, a bad record), refit
            reason = str(e).splitlines()[0][:200] if str(e) else e
            self._log.warning("ignored %s (%s): fitting the %s again", path, reason, self.label)
            return False
        self.net, self.mean, self.std = net.eval(), mean.float(), std.float()
        self.history = {**history, "val_nll": float(nll), "stored": True}
        reused = "%s reused from %s (fitted on the same codes, held-out %s %.3f)"
        self._log.info(reused, self.label, path, self.criterion, nll)
        return True

    def sample(self, n: int, seed: int = 0) -> Tensor:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(self.seed + seed)
            return self._draw(n) * self.std + self.mean

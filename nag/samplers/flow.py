"""An ex-post normalising flow (``sampler=flow``): a density fitted to the training codes that a Gaussian mixture
cannot follow (curved, heavy-tailed, many-moded code clouds), sampled and decoded.

The flow is zuko's (Rozet et al.): a masked autoregressive flow (``kind=maf``, Papamakarios et al. 2017, the
sampler pythae offers as ``MAFSampler``) or a neural spline flow (``kind=nsf``, Durkan et al. 2019). Fitting follows
pythae's ``MAFSampler`` (``pythae/samplers/maf_sampler``): maximum likelihood on the training codes with Adam,
early stopping on held-out codes. Where we differ: the codes are standardised first (a prior at mean −3 or a code
cloud of variance 100 would otherwise start far from the flow's N(0, I) base), the held-out split is a seeded
fraction of the codes (pythae takes an optional separate eval set), and the best epoch's weights are kept, not the
last.

A fitted flow is stored beside the run (``<run>/samplers/flow-<key>.pt``; ``key`` hashes the settings and the
codes' bytes) and reused by the next evaluation of the same codes: the file holds tensors and numbers only, read
through the checkpoints' safety checks and torch's ``weights_only`` loader, and is refitted (with a warning) when
it does not match — another setting, other codes, other shapes, a non-finite weight.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from annotated_types import Gt, Lt
from torch import Tensor

from nag.config.params import Count, Positive, checked
from nag.model.priors import Prior

log = logging.getLogger(__name__)


class FlowSampler:
    """A normalising flow fitted to the training codes (module docstring).

    Args:
        kind: ``maf`` (masked autoregressive, affine) or ``nsf`` (neural spline).
        transforms: Flow layers.
        hidden: Width of the two hidden layers of each layer's conditioner.
        max_epochs: Upper bound on training epochs.
        patience: Stop after this many epochs without a better held-out log-likelihood.
        lr: Adam's learning rate.
        batch_size: Codes per step.
        val_fraction: Share of the codes held out for early stopping.
        seed: Seed of the split, the initialisation, the batches and of sampling.
        store: Folder of fitted flows (``null``: the entry points use ``<run>/samplers`` of the checkpoint's run).
    """

    needs_codes = True

    @checked
    def __init__(
        self,
        kind: Literal["maf", "nsf"] = "maf",
        transforms: Count = 4,
        hidden: Count = 128,  # noqa: UP037
        max_epochs: Count = 500,
        patience: Count = 20,
        lr: Positive = 1e-3,
        batch_size: Count = 256,
        val_fraction: Annotated[float, Gt(0), Lt(1)] = 0.2,
        seed: int = 0,
        store: str | None = None,
    ) -> None:
        self.kind, self.transforms, self.hidden = kind, transforms, hidden
        self.max_epochs, self.patience, self.lr, self.batch_size = max_epochs, patience, lr, batch_size
        self.val_fraction, self.seed, self.store = val_fraction, seed, store
        self.name = f"flow_{kind}"
        self.history: dict[str, Any] = {}

    # --- the flow -------------------------------------------------------------------------------------------------

    def _build(self, dim: int) -> torch.nn.Module:
        import zuko

        cls = zuko.flows.MAF if self.kind == "maf" else zuko.flows.NSF
        return cls(dim, transforms=self.transforms, hidden_features=(self.hidden, self.hidden))

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "transforms": self.transforms,
            "hidden": self.hidden,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
        }

    def key(self, codes: Tensor) -> str:
        """What a stored flow must have been fitted on and with: the settings and the codes, hashed."""
        h = hashlib.sha256(repr(sorted(self.settings().items())).encode())
        h.update(str(tuple(codes.shape)).encode())
        h.update(codes.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:24]

    def fit(self, codes: Tensor, prior: Prior) -> FlowSampler:
        codes = codes.detach().float().cpu()
        if len(codes) < 10:
            raise ValueError(f"sampler=flow needs at least 10 training codes to fit and hold out, got {len(codes)}.")
        key = self.key(codes)
        path = Path(self.store) / f"flow-{key}.pt" if self.store else None
        if path is not None and self._load(path, key, codes.shape[1]):
            return self
        self._train(codes)
        if path is not None:
            self._save(path, key)
        return self

    def _train(self, codes: Tensor) -> None:
        # Fitted from inside the evaluation's no-grad / inference-mode blocks: gradients on, codes as plain tensors.
        with torch.inference_mode(False), torch.enable_grad():
            self._fit_flow(codes.clone())

    def _fit_flow(self, codes: Tensor) -> None:
        dim = codes.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            order = torch.randperm(len(codes))
            n_val = max(1, round(self.val_fraction * len(codes)))
            val, train = codes[order[:n_val]], codes[order[n_val:]]
            self.mean, self.std = train.mean(0), train.std(0).clamp_min(1e-6)
            train, val = (train - self.mean) / self.std, (val - self.mean) / self.std
            self.flow = self._build(dim)
            opt = torch.optim.Adam(self.flow.parameters(), lr=self.lr)
            best, best_state, since, curve = float("inf"), None, 0, []
            for _epoch in range(self.max_epochs):
                self.flow.train()
                for idx in torch.randperm(len(train)).split(self.batch_size):
                    loss = -self.flow().log_prob(train[idx]).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                self.flow.eval()
                with torch.no_grad():
                    nll = float(-self.flow().log_prob(val).mean())
                curve.append(nll)
                if nll < best - 1e-4:
                    best, best_state, since = nll, copy.deepcopy(self.flow.state_dict()), 0
                else:
                    since += 1
                    if since >= self.patience:
                        break
        if best_state is None:
            raise ValueError("sampler=flow: the held-out log-likelihood was never finite; lower sampler.lr.")
        self.flow.load_state_dict(best_state)
        # NLL of the standardised codes; + sum(log std) makes it the NLL of the codes themselves (nats per code).
        shift = float(self.std.log().sum())
        self.history = {
            "epochs": len(curve),
            "best_epoch": curve.index(best) + 1,
            "val_nll": best + shift,
            "stored": False,
        }
        log.info(
            "flow (%s) fitted on %d codes in %d epochs (best %d): held-out NLL %.3f nats per code",
            self.kind,
            len(train),
            len(curve),
            curve.index(best) + 1,
            best + shift,
        )

    # --- storing ---------------------------------------------------------------------------------------------------

    def _save(self, path: Path, key: str) -> None:
        from nag.config.errors import UserInputError
        from nag.io.output import OutputDir

        buf = io.BytesIO()
        torch.save(
            {
                "key": key,
                "settings": self.settings(),
                "mean": self.mean,
                "std": self.std,
                "state_dict": self.flow.state_dict(),
                "val_nll": float(self.history["val_nll"]),
                "epochs": int(self.history["epochs"]),
                "best_epoch": int(self.history["best_epoch"]),
            },
            buf,
        )
        try:
            OutputDir(path.parent, "sampler.store").write_bytes(path.name, buf.getvalue())
        except (OSError, UserInputError) as e:  # a read-only run dir (someone else's), a link: fitted, not kept
            log.warning("the fitted flow could not be stored in %s (%s); it is fitted again next time", path.parent, e)
            return
        log.info("flow stored in %s", path)

    def _load(self, path: Path, key: str, dim: int) -> bool:
        """Reuse ``path`` if it is a flow fitted with these settings on these codes; else say why and refit."""
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
            history = {
                "epochs": data.get("epochs", 0),
                "best_epoch": data.get("best_epoch", 0),
                "val_nll": data.get("val_nll", float("nan")),
            }
            for name in ("epochs", "best_epoch"):
                if isinstance(history[name], bool) or not isinstance(history[name], int) or history[name] < 0:
                    raise ValueError(f"{name}={history[name]!r} is not a count of epochs")
            nll = history["val_nll"]
            if isinstance(nll, bool) or not isinstance(nll, int | float) or not math.isfinite(float(nll)):
                raise ValueError(f"val_nll={nll!r} is not a finite number")
            flow = self._build(dim)
            flow.load_state_dict(state, strict=True)
        except Exception as e:  # a stored fit is a cache: whatever is wrong with it (a pickle, a bad record), refit
            log.warning("ignored %s (%s): fitting the flow again", path, str(e).splitlines()[0][:200] if str(e) else e)
            return False
        self.flow, self.mean, self.std = flow.eval(), mean.float(), std.float()
        self.history = {**history, "val_nll": float(nll), "stored": True}
        log.info("flow reused from %s (fitted on the same codes, held-out NLL %.3f)", path, self.history["val_nll"])
        return True

    # --- sampling --------------------------------------------------------------------------------------------------

    def log_prob(self, codes: Tensor) -> Tensor:
        """Log-density of codes under the fitted flow (nats; the standardisation's Jacobian included)."""
        with torch.no_grad():
            z = (codes.float().cpu() - self.mean) / self.std
            return self.flow().log_prob(z) - self.std.log().sum()

    def sample(self, n: int, seed: int = 0) -> Tensor:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(self.seed + seed)
            return self.flow().sample((n,)) * self.std + self.mean


def store_beside(sampler: Any, ckpt_path: str | Path | None) -> Any:
    """Give a sampler that stores its fit (``store: null``) the ``samplers/`` folder of the checkpoint's run."""
    from nag.runs.run_dir import SAMPLERS, RunDir

    if getattr(sampler, "store", "") is None and ckpt_path:
        run = RunDir.of_checkpoint(ckpt_path)
        if run is not None:
            sampler.store = str(run / SAMPLERS)
    return sampler

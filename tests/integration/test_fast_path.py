"""The GPU fast path (batches built on the device, channels-last, torch.compile) computes what the default path
computes: checked on the CPU, through the real Trainer."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from nag.config.errors import instantiate
from nag.training.module import NAGModule
from tests.helpers import fit_tiny

FAST = ["data.on_device=true", "model.channels_last=true"]


class LossRecorder(L.Callback):
    """Every training loss, and the number of graphs torch.compile has built by each epoch's end."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.graphs: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.losses.append(float(outputs["loss"]))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from torch._dynamo.utils import counters

        self.graphs.append(counters["stats"]["unique_graphs"])


def _fit(compose_cfg, tmp_path: Path, extra: list[str], name: str, steps: int = 4) -> tuple[LossRecorder, NAGModule]:
    """``steps`` training steps of the tiny model (8 per epoch), every loss recorded."""
    cfg = compose_cfg(
        [
            "debug=tiny",
            f"+trainer.max_steps={steps}",
            "trainer.max_epochs=3",
            "callbacks=none",
            "trainer.num_sanity_val_steps=0",
            "logger=none",
            "data.flip=true",
            "trainer.enable_model_summary=false",
            *extra,
        ],
        output_dir=tmp_path / name,
    )
    recorder = LossRecorder()
    _, _, model = fit_tiny(cfg, extra_callbacks=[recorder])
    assert len(recorder.losses) == steps
    return recorder, model


def test_batches_on_the_device_equal_the_loaders_batches(compose_cfg) -> None:
    """Same images, same order, same flips: only where they are built differs."""
    cfg = compose_cfg(["debug=tiny", "data.flip=true"])
    default, on_device = instantiate(cfg.data), instantiate(cfg.data, on_device=True)
    for dm in (default, on_device):
        dm.prepare_data()
        dm.setup("fit")
    torch.manual_seed(3)
    a = [x for x, _ in default.train_dataloader()]
    torch.manual_seed(3)
    b = [x for x, _ in on_device.train_dataloader()]
    assert len(a) == len(b) == 128 // 16
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    # flips happened (else this test would not compare them): some image differs from the unflipped cache
    plain = instantiate(cfg.data, flip=False)
    plain.prepare_data()
    torch.manual_seed(3)
    assert any(not torch.equal(x, y) for x, (y, _) in zip(a, plain.train_dataloader(), strict=True))
    assert on_device.datasets["train"].images.is_contiguous()
    assert torch.equal(default.fixed_batch("val", 4, offset=2)[0], on_device.fixed_batch("val", 4, offset=2)[0])


def test_fast_path_losses_equal_the_default_path(compose_cfg, tmp_path: Path) -> None:
    default, _ = _fit(compose_cfg, tmp_path, [], "default")
    fast, model = _fit(compose_cfg, tmp_path, FAST, "fast")
    assert model._memory_format is torch.channels_last
    conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.losses == pytest.approx(default.losses, rel=1e-5)


@pytest.mark.slow
def test_compiled_training_matches_and_checkpoints_load_both_ways(compose_cfg, tmp_path: Path) -> None:
    """torch.compile (inductor, about 30 s on a CPU the first time) gives the default path's losses, compiles each
    mode once (no recompile in later epochs), and its checkpoints load into an uncompiled model and back."""
    from torch._dynamo.utils import counters

    default, _ = _fit(compose_cfg, tmp_path, [], "default", steps=24)
    counters.clear()
    # 3 epochs of 8 steps, each validated with every figure callback: every shape and mode the nets see
    compiled, model = _fit(
        compose_cfg, tmp_path, [*FAST, "model.compile=true", "callbacks=default"], "compiled", steps=24
    )
    assert compiled.losses == pytest.approx(default.losses, rel=1e-4)
    print(compiled.graphs)
    assert compiled.graphs[0] > 0  # it really compiled
    assert compiled.graphs[-1] == compiled.graphs[1]  # and nothing after the second epoch
    ckpt = tmp_path / "compiled" / "checkpoints" / "last.ckpt"
    plain = NAGModule.load_from_checkpoint(ckpt)  # compile is not a hyper-parameter: nothing to refuse
    assert not plain.compile_nets
    x = torch.rand(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(plain.eval().reconstruct(x), model.cpu().reconstruct(x), atol=1e-5)
    again = NAGModule.load_from_checkpoint(ckpt, compile=True)
    assert again.compile_nets

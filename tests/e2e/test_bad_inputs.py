"""Every mistake a user can make gets one message naming the problem, exit status 1, no traceback, and leaves
nothing on disk damaged. Each case runs the real ``python -m nag.*`` entry point in a subprocess."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY, run_module
from tests.helpers.celeba import write_folder


@dataclass
class Case:
    """One bad input: the command's arguments (``{run}``, ``{tmp}``, ``{ckpt}`` are filled in), the words the
    message must contain, and an optional setup writing files into ``tmp``."""

    args: list[str]
    expect: list[str]
    setup: Callable[[Path, Path], None] | None = None  # (tmp, tiny run dir)
    module: str = "nag.train"
    tiny: bool = True
    ids: str = field(default="")


def _text(tmp: Path, run: Path) -> None:
    (tmp / "notes.ckpt").write_text("these are my notes, not a checkpoint\n")


def _truncated(tmp: Path, run: Path) -> None:
    data = (run / "checkpoints" / "last.ckpt").read_bytes()
    (tmp / "cut.ckpt").write_bytes(data[: len(data) // 2])


def _not_nag(tmp: Path, run: Path) -> None:
    torch.save({"state_dict": {"weights": torch.zeros(3)}}, tmp / "other.ckpt")


def _crafted(tmp: Path, run: Path) -> None:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["matching"] = {"_target_": "builtins.open", "file": str(tmp / "pwned"), "mode": "w"}
    torch.save(ckpt, tmp / "crafted.ckpt")


def _empty_dir(tmp: Path, run: Path) -> None:
    (tmp / "photos").mkdir()


def _ten_photos(tmp: Path, run: Path) -> None:
    write_folder(tmp / "photos", n=10)


def _a_file(tmp: Path, run: Path) -> None:
    (tmp / "afile").write_text("x")


CELEBA = ["data=celeba", "data.root={tmp}/photos", "data.crop=16", "data.batch_size=4"]

CASES = [
    Case(["prior.mean=abc"], ["prior.mean='abc' must be a number or a list of numbers"]),
    Case(["prior.variance=-1"], ["prior.variance=-1 must be > 0"]),
    Case(["prior.variance=0"], ["prior.variance=0 must be > 0"]),
    Case(["prior.mean=[1,2,3]"], ["prior.mean=[1, 2, 3] has 3 values but prior.dim=8"]),
    Case(["model.optimizer.lr=-1"], ["model.optimizer.lr=-1 must be > 0"]),
    Case(["model.optimizer.lr=fast"], ["model.optimizer.lr='fast' must be a number"]),
    Case(["model.latent_dim=0"], ["model.latent_dim=0 must be >= 1"]),
    Case(["trainer.max_epochs=0"], ["trainer.max_epochs=0 trains nothing"]),
    Case(["data.batch_size=1"], ["data.batch_size=1 must be >= 2"]),
    Case(["data.batch_size=big"], ["data.batch_size='big' must be an integer"]),
    Case(["data.image_size=20"], ["data.image_size=20 must be a multiple of 8"]),
    Case(["data.flip=maybe"], ["data.flip='maybe' must be true or false"]),
    Case(["data.num_workers=-1"], ["data.num_workers=-1 must be >= 0"]),
    Case(["matching.weight=-1"], ["matching.weight=-1 must be >= 0"]),
    Case(["model.recon_emphasis=-1"], ["model.recon_emphasis=-1 must be >= 0"]),
    Case(["model.recon_ssim=-0.5"], ["model.recon_ssim=-0.5 must be >= 0"]),
    Case(["model.recon_frequency=much"], ["model.recon_frequency='much' must be a number"]),
    Case(["matching=swd", "matching.n_projections=0"], ["matching.n_projections=0 must be >= 1"]),
    Case(["seed=abc"], ["seed='abc' must be an integer"]),
    Case(["callbacks.last_checkpoint.every_n_train_steps=-5"], ["every_n_train_steps=-5 must be >= 0"]),
    Case(["data.n_train=8"], ["training split has 8 images, fewer than data.batch_size=16"]),
    Case(["data.n_val=1"], ["the val split has 1 image(s)", "data.n_val"]),
    Case(["ckpt_path={tmp}/nope.ckpt"], ["ckpt_path={tmp}/nope.ckpt does not exist"]),
    Case(["ckpt_path={tmp}/notes.ckpt"], ["ckpt_path={tmp}/notes.ckpt is not a readable checkpoint"], _text),
    Case(["ckpt_path={tmp}/cut.ckpt"], ["ckpt_path={tmp}/cut.ckpt is not a readable checkpoint"], _truncated),
    Case(["ckpt_path={tmp}/other.ckpt"], ["was not written by nag.train"], _not_nag),
    Case(["ckpt_path={ckpt}", "model.encoder.hidden_dim=64"], ["model.encoder.hidden_dim: 32 -> 64"]),
    Case(["ckpt_path={tmp}/crafted.ckpt"], ["matching._target_='builtins.open' is not on nag's allow-list"], _crafted),
    Case(["resume={tmp}/no_run"], ["resume={tmp}/no_run", "does not exist"], tiny=False),
    Case(["resume={run}", "prior.mean=5"], ["prior.mean: 0.0 -> 5", "cannot change"], tiny=False),
    Case(["resume={run}", "-m"], ["cannot be combined with -m"], tiny=False),
    Case([*CELEBA], ["No CelebA found under data.root={tmp}/photos"], _empty_dir),
    Case([*CELEBA, "data.crop=8"], ["data.crop=8 is smaller than data.image_size=16"], _ten_photos),
    Case([*CELEBA], ["the val split has 1 image(s)", "data.split_fractions=[0.8, 0.1, 0.1]"], _ten_photos),
    Case(
        [*CELEBA, "data.split_fractions=[1,2]"], ["data.split_fractions=[1, 2] must have 3 values (train, val, test)"]
    ),
    Case([*CELEBA, "data.max_bad_fraction=2"], ["data.max_bad_fraction=2 must be < 1"]),
    Case(
        ["paths.cache_dir={tmp}/afile/cache"],
        ["cannot write the dataset cache in {tmp}/afile/cache", "NAG_CACHE_DIR"],
        _a_file,
    ),
    Case(["prior.mean=1e30"], ["training diverged", "at step 0", "matching term is non-finite"]),
    Case(["model.optimizer.lr=1e6"], ["training diverged", "in training at step 1", "recon and the matching"]),
    Case([], ["ckpt_path is required"], module="nag.evaluate", tiny=False),
    Case(
        ["ckpt_path={tmp}/notes.ckpt"],
        ["ckpt_path={tmp}/notes.ckpt is not a readable checkpoint"],
        _text,
        module="nag.evaluate",
        tiny=False,
    ),
    Case(
        ["ckpt_path={tmp}/crafted.ckpt"],
        ["matching._target_='builtins.open' is not on nag's allow-list"],
        _crafted,
        module="nag.evaluate",
        tiny=False,
    ),
    Case(["ckpt_path={ckpt}", "n_samples=0"], ["n_samples=0 must be >= 2"], module="nag.evaluate", tiny=False),
]


def _case_id(case: Case) -> str:
    return f"{case.module.split('.')[1]}:{' '.join(case.args) or 'no-args'}"[:80]


def _digest(folder: Path) -> dict[str, str]:
    """Content hash of every file under ``folder`` (what must not change)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_table_has_at_least_25_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_bad_input_gets_one_message_and_no_traceback(
    case: Case, tiny_run: Path, tmp_path: Path, cache_dir: Path
) -> None:
    if case.setup:
        case.setup(tmp_path, tiny_run)
    fill = {"tmp": str(tmp_path), "run": str(tiny_run), "ckpt": str(tiny_run / "checkpoints" / "last.ckpt")}
    args = [a.format(**fill) for a in case.args]
    if case.module == "nag.train" and not any(a.startswith("resume=") for a in args):
        args.append(f"hydra.run.dir={tmp_path}/out")
    if case.module == "nag.evaluate":
        args.append(f"hydra.run.dir={tmp_path}/out")
    before_run, before_cache = _digest(tiny_run), _digest(cache_dir)

    r = run_module(case.module, [*(TINY if case.tiny else []), *args], tmp_path, cache_dir, full_error=False)
    out = r.stdout + r.stderr

    assert r.returncode == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    for words in case.expect:
        assert words.format(**fill) in r.stderr, f"{words!r} not in:\n{r.stderr[-2000:]}"
    assert r.stderr.count("error: ") == 1, "one message, not a cascade"
    assert not (tmp_path / "pwned").exists(), "a checkpoint ran code"
    assert not (tmp_path / "out" / "metrics.json").exists(), "a failed run reported results"
    assert {k: v for k, v in _digest(tiny_run).items() if k in before_run} == before_run, "the run was modified"
    assert not (tiny_run / "failure.json").exists(), "a refused command marked the finished run failed"
    assert {k: v for k, v in _digest(cache_dir).items() if k in before_cache} == before_cache, "a cache changed"
    assert not list(cache_dir.glob(".*partial")), "a half-built cache was left behind"

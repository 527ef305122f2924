"""Run dirs, sweeps, checkpoints and dataset folders from someone else: crafted inputs through the real entry points.

Every case builds one crafted input in its own folder, runs ``python -m nag.train`` / ``nag.evaluate`` (a
subprocess) or ``nag.report`` / ``nag.compare`` (their ``main``, in process) on it, and asserts what the threat
model promises (:func:`tests.helpers.untrusted.check_handled_safely`). This round's holes (fail-closed checks,
non-regular files, sizes read from files, escaping) are in ``test_untrusted_closed.py``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import TINY
from tests.helpers.celeba import face_jpeg, write_torchvision
from tests.helpers.untrusted import Case, Fixtures, check_handled_safely, run_copy, sweep_copy

# --- building blocks -----------------------------------------------------------------------------------


_run, _sweep = run_copy, sweep_copy


def _overrides(lines: list[str]) -> Callable[[Path, Fixtures], list[str]]:
    def build(tmp: Path, fx: Fixtures) -> list[str]:
        run = _run(tmp, fx)
        text = "".join(f"- {json.dumps(line.replace('{tmp}', str(tmp)))}\n" for line in lines)
        (run / ".hydra" / "overrides.yaml").write_text(text)
        return [f"resume={run}"]

    return build


def _payload(tmp: Path, fx: Fixtures) -> list[str]:
    """The issue's attack: a pickle planted beside the overrides that numpy.load(allow_pickle) would run."""
    args = _overrides(
        [
            "debug=tiny",
            "+callbacks.x._target_=numpy.load",
            "+callbacks.x.file=payload.npy",
            "+callbacks.x.allow_pickle=true",
            "hydra.job.chdir=true",
        ]
    )(tmp, fx)

    class Payload:
        def __reduce__(self):  # noqa: D105
            return (os.system, (f"touch {tmp}/pwned",))

    np.save(tmp / "run" / "payload.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    return args


def _raw_overrides(text: bytes | str) -> Callable[[Path, Fixtures], list[str]]:
    def build(tmp: Path, fx: Fixtures) -> list[str]:
        run = _run(tmp, fx)
        path = run / ".hydra" / "overrides.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return [f"resume={run}"]

    return build


BILLION_LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
BILLION_LAUGHS_LIST = "".join(
    f"- &{c} [{','.join(['*' + p] * 9) if p else 'x,x,x,x,x,x,x,x,x'}]\n"
    for p, c in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def _fifo_overrides(tmp: Path, fx: Fixtures) -> list[str]:
    run = _run(tmp, fx)
    (run / ".hydra" / "overrides.yaml").unlink()
    os.mkfifo(run / ".hydra" / "overrides.yaml")
    return [f"resume={run}"]


def _link_in_run(relative: str, target: str) -> Callable[[Path, Fixtures], list[str]]:
    def build(tmp: Path, fx: Fixtures) -> list[str]:
        run = _run(tmp, fx)
        path = run / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        path.symlink_to(tmp / "home" / target)
        return [f"resume={run}"]

    return build


def _ckpt(edit: Callable[[dict, Path], None], how: str = "ckpt_path") -> Callable[[Path, Fixtures], list[str]]:
    """A copy of the tiny run's checkpoint edited by ``edit(ckpt, tmp)``, given as ``ckpt_path=`` to nag.train
    (``how="resume"``: as the run's last.ckpt, resumed; ``how="evaluate"``: to nag.evaluate)."""

    def build(tmp: Path, fx: Fixtures) -> list[str]:
        run = _run(tmp, fx)
        last = run / "checkpoints" / "last.ckpt"
        ckpt = torch.load(last, weights_only=True)
        edit(ckpt, tmp)
        torch.save(ckpt, last)
        if how == "resume":
            return [f"resume={run}"]
        out = [f"hydra.run.dir={tmp}/out"]
        if how == "evaluate":
            return [f"ckpt_path={last}", "n_eval=16", "n_samples=16", "n_fit=16", "attributes.enabled=false", *out]
        return [*TINY, f"ckpt_path={last}", *out]

    return build


def _set(path: str, value) -> Callable[[dict, Path], None]:
    def edit(ckpt: dict, tmp: Path) -> None:
        node = ckpt
        *parents, last = path.split("/")
        for p in parents:
            node = node[p]
        node[last] = value(tmp) if callable(value) else value

    return edit


def _drop(path: str) -> Callable[[dict, Path], None]:
    def edit(ckpt: dict, tmp: Path) -> None:
        *parents, last = path.split("/")
        node = ckpt
        for p in parents:
            node = node[p]
        del node[last]

    return edit


def _non_finite(ckpt: dict, tmp: Path) -> None:
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and k.startswith("decoder"))
    ckpt["state_dict"][name] = torch.full_like(ckpt["state_dict"][name], float("nan"))


def _lr(ckpt: dict, tmp: Path) -> None:
    for group in ckpt["optimizer_states"][0]["param_groups"]:
        group["lr"] = 7.5


def _best_path_outside(ckpt: dict, tmp: Path) -> None:
    for state in ckpt["callbacks"].values():
        escape = f"{state['dirpath']}/../../home/thesis.png"
        state["best_k_models"] = {escape: torch.tensor(0.5)}
        state["kth_best_model_path"] = escape


def _best_elsewhere(tmp: Path, fx: Fixtures) -> list[str]:
    """A finished run's checkpoint whose ModelCheckpoint state names a "best" file in a folder of its own (so the
    state passes as confined): Lightning restores best_model_path even into a new run dir, and nothing trains
    (the epochs are done), so testing "the best" would load that file."""
    run = _run(tmp, fx)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    (tmp / "decoy").mkdir()
    (tmp / "decoy" / "best.ckpt").write_text("not a checkpoint: loading it fails the run\n")
    for state in ckpt["callbacks"].values():
        state.update(
            dirpath=str(tmp / "decoy"),
            best_model_path=str(tmp / "decoy" / "best.ckpt"),
            kth_best_model_path="",
            best_k_models={},
        )
    torch.save(ckpt, last)
    return [*TINY, f"ckpt_path={last}", "trainer.max_epochs=1", "test=true", f"hydra.run.dir={tmp}/out"]


def _tested(tmp: Path, out: str) -> None:
    metrics = json.loads((tmp / "out" / "metrics.json").read_text())
    assert metrics["test/recon"] > 0


def _zip_bomb(tmp: Path, fx: Fixtures) -> list[str]:
    """A checkpoint of a few hundred KB whose entries inflate to 200 MB (deflated zeros)."""
    run = _run(tmp, fx)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["state_dict"]["encoder.padding"] = torch.zeros(200_000_000, dtype=torch.uint8)
    raw = io.BytesIO()
    torch.save(ckpt, raw)
    with zipfile.ZipFile(raw) as zin, zipfile.ZipFile(last, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    assert last.stat().st_size < 2_000_000
    return [*TINY, f"ckpt_path={last}", f"hydra.run.dir={tmp}/out"]


def _stored_config(edit: Callable[[str], str], module: str = "nag.evaluate") -> Callable[[Path, Fixtures], list[str]]:
    """The run's .hydra/config.yaml edited as text (for nag.evaluate) or the report sweep's matched run's."""

    def build(tmp: Path, fx: Fixtures) -> list[str]:
        if module == "nag.evaluate":
            run = _run(tmp, fx)
            path = run / ".hydra" / "config.yaml"
            path.write_text(edit(path.read_text()))
            return [
                f"ckpt_path={run}/checkpoints/last.ckpt",
                "n_eval=16",
                "n_samples=16",
                "n_fit=16",
                "attributes.enabled=false",
                f"hydra.run.dir={tmp}/out",
            ]
        sweep = _sweep(tmp, fx)
        for job in sorted(sweep.iterdir()):
            path = job / ".hydra" / "config.yaml"
            if path.is_file() and "NormalPrior" in path.read_text() and "mean: 0" in path.read_text():
                path.write_text(edit(path.read_text()))
        return [str(sweep), "--n-eval", "16", "--n-samples", "16"]

    return build


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"{old!r} is not in the stored config"
        return text.replace(old, new, 1)

    return edit


def _sweep_edit(edit: Callable[[Path, Path], None], *extra: str) -> Callable[[Path, Fixtures], list[str]]:
    """A copy of the report sweep with ``edit(sweep, tmp)`` applied, for nag.compare / nag.report."""

    def build(tmp: Path, fx: Fixtures) -> list[str]:
        sweep = _sweep(tmp, fx)
        edit(sweep, tmp)
        return [str(sweep), *extra]

    return build


def _in_job(relative: str, content: bytes | str | None = None, job: str = "1") -> Callable[[Path, Path], None]:
    def edit(sweep: Path, tmp: Path) -> None:
        path = sweep / job / relative
        path.unlink(missing_ok=True)
        if content is None:
            os.mkfifo(path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return edit


def _rename_job(sweep: Path, tmp: Path) -> None:
    (sweep / "1").rename(sweep / "²")


def _dangling_best(sweep: Path, tmp: Path) -> None:
    for best in (sweep / "0" / "checkpoints").glob("best-*.ckpt"):
        best.unlink()
    (sweep / "0" / "checkpoints" / "best-epoch009.ckpt").symlink_to(tmp / "nowhere.ckpt")


def _odd_overrides(values: dict[str, str]) -> Callable[[Path, Path], None]:
    def edit(sweep: Path, tmp: Path) -> None:
        for job, extra in values.items():
            path = sweep / job / ".hydra" / "overrides.yaml"
            path.write_text(path.read_text() + f"- {json.dumps(extra)}\n")

    return edit


def _link_out(name: str, target: str) -> Callable[[Path, Path], None]:
    def edit(sweep: Path, tmp: Path) -> None:
        (sweep / name).parent.mkdir(parents=True, exist_ok=True)
        (sweep / name).symlink_to(tmp / "home" / target)

    return edit


def _loop(sweep: Path, tmp: Path) -> None:
    (sweep / "0" / "loop").symlink_to(sweep)
    (sweep / "deep").mkdir()
    (sweep / "deep" / "up").symlink_to(sweep / "deep")


def _job_ckpt(edit: Callable[[dict, Path], None]) -> Callable[[Path, Path], None]:
    def apply(sweep: Path, tmp: Path) -> None:
        for ckpt in (sweep / "1" / "checkpoints").glob("*.ckpt"):
            data = torch.load(ckpt, weights_only=True)
            edit(data, tmp)
            torch.save(data, ckpt)

    return apply


# --- dataset folders ----------------------------------------------------------------------------------

CELEBA = [
    "data=celeba",
    "data.root={tmp}/data",
    "data.crop=16",
    "data.batch_size=4",
    "trainer.max_epochs=1",
    "test=false",
    "hydra.run.dir={tmp}/out",
]


def _celeba(edit: Callable[[Path, Path], None]) -> Callable[[Path, Fixtures], list[str]]:
    def build(tmp: Path, fx: Fixtures) -> list[str]:
        base = write_torchvision(tmp / "data")
        edit(base, tmp)
        return [*TINY, *(a.format(tmp=tmp) for a in CELEBA)]

    return build


def _bomb_jpeg(base: Path, tmp: Path) -> None:
    """A JPEG of a few KB whose header claims 12000 x 12000 pixels."""
    data = bytearray(face_jpeg(3))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (12000).to_bytes(2, "big") * 2
    (base / "img_align_celeba" / "000003.jpg").write_bytes(bytes(data))
    assert len(data) < 5000 and Image.open(base / "img_align_celeba" / "000003.jpg").size == (12000, 12000)


def _image_link(base: Path, tmp: Path) -> None:
    (tmp / "outside").mkdir()
    (tmp / "outside" / "private.jpg").write_bytes(face_jpeg(9))
    (base / "img_align_celeba" / "000004.jpg").unlink()
    (base / "img_align_celeba" / "000004.jpg").symlink_to(tmp / "outside" / "private.jpg")


def _duplicate_partition(base: Path, tmp: Path) -> None:
    with (base / "list_eval_partition.txt").open("a") as f:
        f.write("000001.jpg 2\n")


def _not_utf8(name: str) -> Callable[[Path, Path], None]:
    def edit(base: Path, tmp: Path) -> None:
        path = base / name
        path.write_bytes(path.read_bytes() + "000099.jpg é\n".encode("latin-1"))

    return edit


# --- the table ------------------------------------------------------------------------------------------

OV = "{tmp}/run/.hydra/overrides.yaml"
LAST = "{tmp}/run/checkpoints/last.ckpt"
CFG = "{tmp}/run/.hydra/config.yaml"


def _row_status(job: str, status: str, words: str = "") -> Callable[[Path, str], None]:
    def check(tmp: Path, out: str) -> None:
        rows = json.loads((tmp / "sweep" / "compare" / "summary.json").read_text())["rows"]
        row = next(r for r in rows if r["job"] == job)
        assert row["status"] == status, row
        assert words in row["reason"], row

    return check


def _no_folder(name: str) -> Callable[[Path, str], None]:
    def check(tmp: Path, out: str) -> None:
        assert not (tmp / name).exists(), f"{name} was created"

    return check


def _csv_escaped(tmp: Path, out: str) -> None:
    text = (tmp / "sweep" / "compare" / "summary.csv").read_text()
    assert "'=HYPERLINK(" in text and ",=HYPERLINK(" not in text and ',"=HYPERLINK(' not in text
    assert ",-3," in text  # a negative number stays a number


def _plot_name_short(tmp: Path, out: str) -> None:
    names = [p.name for p in (tmp / "sweep" / "compare").iterdir()]
    assert all(len(n.encode()) <= 200 for n in names) and any(n.startswith("latent_mmd_vs_") for n in names), names


def _samples_png_regular(tmp: Path, out: str) -> None:
    png = tmp / "sweep" / "compare" / "samples.png"
    assert png.is_file() and not png.is_symlink()
    assert Image.open(png).size[0] > 100


# fmt: off
CASES = [
    # 1. resume= composes a run dir's stored overrides: they are data, never code.
    Case("resume: numpy.load payload planted beside +callbacks overrides", "nag.train", _payload,
         [OV, "entry 2", "adds a key"]),
    Case("resume: hydra.job.chdir", "nag.train", _overrides(["debug=tiny", "hydra.job.chdir=true"]),
         [OV, "changes Hydra itself"]),
    Case("resume: a Hydra callback", "nag.train",
         _overrides(["hydra.callbacks.x._target_=shutil.copyfile", "hydra.callbacks.x.src=/etc/passwd"]),
         [OV, "changes Hydra itself"]),
    Case("resume: another launcher", "nag.train", _overrides(["hydra/launcher=submitit_local"]),
         [OV, "changes Hydra itself"]),
    Case("resume: a _target_ set on a known key", "nag.train", _overrides(["model.optimizer._target_=builtins.exec"]),
         [OV, "special key"]),
    Case("resume: a mapping value naming code", "nag.train",
         _overrides(["prior={_target_: os.system, command: 'touch pwned'}"]), [OV, "whole mapping"]),
    Case("resume: an environment interpolation", "nag.train",
         _overrides(["debug=tiny", "trainer.max_epochs=${oc.env:SECRET_TOKEN}"]), [OV, "interpolation"]),
    Case("resume: a resolver creating folders", "nag.train",
         _overrides(["data.root=${nag.fresh_dir:{tmp}/elsewhere}"]), [OV, "interpolation"],
         check=_no_folder("elsewhere")),
    Case("resume: the cache written elsewhere", "nag.train", _overrides(["paths.cache_dir={tmp}/home"]),
         [OV, "sets where nag writes"]),
    Case("resume: a checkpoint folder elsewhere", "nag.train",
         _overrides(["callbacks.last_checkpoint.dirpath={tmp}/home"]), [OV, "sets where nag writes"]),
    Case("resume: a config option that is not nag's", "nag.train", _overrides(["data=../../evil"]),
         [OV, "not one of nag's data options"]),
    Case("resume: a package override", "nag.train", _overrides(["data@model=synthetic"]), [OV, "another package"]),
    Case("resume: a key the config does not have", "nag.train", _overrides(["debug=tiny", "trainer.nope=1"]),
         [OV, "do not compose", "trainer.nope"]),
    Case("resume: billion laughs in overrides.yaml", "nag.train", _raw_overrides(BILLION_LAUGHS_LIST),
         [OV, "expands to more than"]),
    Case("resume: an overrides.yaml of 2 MB", "nag.train", _raw_overrides("- debug=tiny\n" * 160_000),
         [OV, "larger than"]),
    Case("resume: overrides.yaml a FIFO (would block)", "nag.train", _fifo_overrides,
         ["resume={tmp}/run", ".hydra/overrides.yaml (a named pipe)"]),
    Case("resume: overrides.yaml not a list", "nag.train", _raw_overrides("prior: {mean: 3}\n"),
         [OV, "not a list of overrides"]),
    Case("resume: overrides.yaml not UTF-8", "nag.train", _raw_overrides(b"- prior.mean=\xff\xfe\n"),
         [OV, "not UTF-8"]),
    Case("resume: overrides.yaml a link to ~/.bashrc", "nag.train", _link_in_run(".hydra/overrides.yaml", "bashrc"),
         [".hydra/overrides.yaml -> {tmp}/home/bashrc", "symbolic link"]),
    Case("resume: train.log a link to ~/.bashrc", "nag.train", _link_in_run("train.log", "bashrc"),
         ["train.log -> {tmp}/home/bashrc", "symbolic link"]),
    Case("resume: checkpoints/ a link to a folder of the user", "nag.train", _link_in_run("checkpoints", "figures"),
         ["checkpoints -> {tmp}/home/figures", "symbolic link"]),
    Case("resume: tensorboard/ a link", "nag.train", _link_in_run("tensorboard", "figures"),
         ["tensorboard -> {tmp}/home/figures"]),
    Case("resume: callback state deleting a file outside", "nag.train", _ckpt(_best_path_outside, "resume"),
         [LAST, "not a file in its own checkpoint folder"]),
    Case("resume: non-finite weights", "nag.train", _ckpt(_non_finite, "resume"), [LAST, "NaN or infinite"]),
    # 4, 5, 6. Checkpoints: bounded, validated, each part of its kind; the optimizer follows the config.
    Case("ckpt_path: stored optimizer state lr 7.5 vs config 0.001", "nag.train", _ckpt(_lr),
         [LAST, "lr=7.5", "model.optimizer.lr=0.001"]),
    Case("ckpt_path: a best_model_path naming a file elsewhere", "nag.train", _best_elsewhere, [], code=0,
         check=_tested),
    Case("ckpt_path: a zip bomb (deflated 200 MB)", "nag.train", _zip_bomb, [LAST, "would inflate"]),
    Case("ckpt_path: no optimizer hyper-parameter", "nag.train", _ckpt(_drop("hyper_parameters/optimizer")),
         [LAST, "lacks the hyper-parameter(s) ['optimizer']"]),
    Case("ckpt_path: an extra encoder argument", "nag.evaluate",
         _ckpt(_set("hyper_parameters/encoder/colour", "red"), "evaluate"), [LAST, "do not build a model", "colour"]),
    Case("ckpt_path: an encoder that is a prior", "nag.evaluate",
         _ckpt(_set("hyper_parameters/encoder/_target_", "nag.model.priors.NormalPrior"), "evaluate"),
         [LAST, "encoder._target_='nag.model.priors.NormalPrior' is not on nag's allow-list"]),
    Case("ckpt_path: an encoder from torch.nn", "nag.evaluate",
         _ckpt(_set("hyper_parameters/encoder", {"_target_": "torch.nn.Identity"}), "evaluate"),
         [LAST, "torch.nn.Identity"]),
    Case("ckpt_path: latent_dim '8'", "nag.evaluate", _ckpt(_set("hyper_parameters/latent_dim", "8"), "evaluate"),
         [LAST, "latent_dim='8' must be a positive integer"]),
    Case("ckpt_path: an int in the state dict", "nag.evaluate",
         _ckpt(_set("state_dict/encoder.bogus", 3), "evaluate"), [LAST, "is a int, not a tensor"]),
    Case("ckpt_path: a bad nag_draw_seed", "nag.train", _ckpt(_set("nag_draw_seed", "abc")),
         [LAST, "nag_draw_seed='abc'"]),
    Case("ckpt_path: a negative global_step", "nag.train", _ckpt(_set("global_step", -5)), [LAST, "global_step=-5"]),
    Case("evaluate: non-finite weights", "nag.evaluate", _ckpt(_non_finite, "evaluate"), [LAST, "NaN or infinite"]),
    # 3. Stored configs are never resolved with resolvers.
    Case("evaluate: data.cache_dir ${nag.fresh_dir:...}", "nag.evaluate",
         _stored_config(_replace("cache_dir: ${paths.cache_dir}", "cache_dir: ${nag.fresh_dir:{tmp}/elsewhere}")),
         [CFG, "data.cache_dir"], check=_no_folder("elsewhere")),
    Case("evaluate: data.cache_dir from a secret", "nag.evaluate",
         _stored_config(_replace("cache_dir: ${paths.cache_dir}", "cache_dir: ${oc.env:SECRET_TOKEN}")),
         [CFG, "data.cache_dir", "oc.env:SECRET_TOKEN"]),
    Case("report: trainer.max_epochs from a secret", "nag.report",
         _stored_config(_replace("max_epochs: 1", "max_epochs: ${oc.env:SECRET_TOKEN}"), "nag.report"),
         ["config.yaml", "trainer.max_epochs", "never run"]),
    Case("report: config.yaml a list", "nag.report", _stored_config(lambda t: "- a\n- b\n", "nag.report"),
         ["config.yaml holds a list, not a run config"]),
    Case("report: config.yaml without data", "nag.report",
         _stored_config(lambda t: t.replace("\ndata:", "\nnot_data:", 1), "nag.report"),
         ["config.yaml has no data"]),
    Case("report: config.yaml without matching", "nag.report",
         _stored_config(lambda t: t.replace("\nmatching:", "\nnot_matching:", 1), "nag.report"),
         ["config.yaml has no matching._target_"]),
    Case("report: ??? in the config", "nag.report",
         _stored_config(_replace("max_epochs: 1", "max_epochs: ???"), "nag.report"), ["trainer.max_epochs is ???"]),
    Case("report: a recursive interpolation", "nag.report",
         _stored_config(_replace("max_epochs: 1", "max_epochs: ${trainer.max_epochs}"), "nag.report"),
         ["trainer.max_epochs is a recursive interpolation"]),
    Case("report: a duplicated key", "nag.report",
         _stored_config(lambda t: t + "trainer: {}\n", "nag.report"),
         ["config.yaml is not a readable YAML", "duplicate"]),
    Case("report: billion laughs in config.yaml", "nag.report",
         _stored_config(lambda t: BILLION_LAUGHS, "nag.report"), ["config.yaml is not a readable YAML", "expands to"]),
    Case("report: the report folder a link to a folder of the user", "nag.report",
         _sweep_edit(_link_out("report", "figures"), "--n-eval", "16"), ["report", "is a symbolic link"]),
    # 2, 4, 6. Sweeps: a bad job is a row with its reason, never a hang, a crash or a write through a link.
    Case("compare: billion laughs in one job's overrides", "nag.compare",
         _sweep_edit(_in_job(".hydra/overrides.yaml", BILLION_LAUGHS_LIST)), ["unreadable"], code=0,
         check=_row_status("1", "unreadable", "expands to more than")),
    Case("compare: a metric of 10^400", "nag.compare",
         _sweep_edit(_in_job("metrics.json", '{"val/recon": 1' + "0" * 400 + ', "latent/mmd": 1e400}')), [],
         code=0, check=_row_status("1", "ok")),
    Case("compare: metrics.json nested 100,000 deep", "nag.compare",
         _sweep_edit(_in_job("metrics.json", "[" * 100_000 + "]" * 100_000)), [], code=0,
         check=_row_status("1", "unreadable", "not valid JSON")),
    Case("compare: failure.json a FIFO (would block)", "nag.compare", _sweep_edit(_in_job("failure.json", None)),
         [], code=0, check=_row_status("1", "unreadable", "named pipe")),
    Case("compare: a job dir named ²", "nag.compare", _sweep_edit(_rename_job), ["²"], code=0),
    Case("compare: a dangling best-checkpoint link", "nag.compare", _sweep_edit(_dangling_best), [], code=0,
         check=_row_status("0", "ok")),
    Case("compare: $ in override values and a failure reason", "nag.compare",
         _sweep_edit(lambda s, t: (_odd_overrides({"0": "+x=$\\frac$", "1": "+x=$HOME/$y$"})(s, t),
                                   _in_job("failure.json", json.dumps({"error": "cost $\\undefined$"}), "2")(s, t),
                                   shutil.rmtree(s / "2" / "checkpoints"))),  # its panel shows the reason
         [], code=0, check=_row_status("2", "failed", "cost $\\undefined$")),
    Case("compare: a swept key too long for a file name", "nag.compare",
         _sweep_edit(_odd_overrides({"0": f"+trainer.{'k' * 300}=1", "1": f"+trainer.{'k' * 300}=2"})), [], code=0,
         check=_plot_name_short),
    Case("compare: spreadsheet formulas in override values", "nag.compare",
         _sweep_edit(_odd_overrides({"0": "+x=-3", "1": '+x==HYPERLINK("http://evil")'})), [], code=0,
         check=_csv_escaped),
    Case("compare: compare/samples.png a link to the thesis figure", "nag.compare",
         _sweep_edit(_link_out("compare/samples.png", "thesis.png")), [], code=0, check=_samples_png_regular),
    Case("compare: compare/ a link to a folder of the user", "nag.compare",
         _sweep_edit(_link_out("compare", "figures")), ["compare", "is a symbolic link"]),
    Case("compare: a link loop in the sweep", "nag.compare", _sweep_edit(_loop), [], code=0),
    Case("compare: a job's checkpoint with NaN weights", "nag.compare", _sweep_edit(_job_ckpt(_non_finite)), [],
         code=0, check=_row_status("1", "unreadable", "NaN or infinite")),
    # 4, 5. Dataset folders.
    Case("data: a JPEG whose header claims 12000 x 12000", "nag.train", _celeba(_bomb_jpeg),
         ["000003.jpg (12000 x 12000 px claimed, more than data.max_image_pixels"]),
    Case("data: an image that links outside data.root", "nag.train", _celeba(_image_link),
         ["000004.jpg (a link to", "outside the image folder and data.root"]),
    Case("data: an image listed twice in the partition", "nag.train", _celeba(_duplicate_partition),
         ["list_eval_partition.txt, line 37: lists 000001.jpg a second time (first on line 1)"]),
    Case("data: a partition file not UTF-8", "nag.train", _celeba(_not_utf8("list_eval_partition.txt")),
         ["list_eval_partition.txt: not UTF-8"]),
    Case("data: an attribute file not UTF-8", "nag.train", _celeba(_not_utf8("list_attr_celeba.txt")),
         ["list_attr_celeba.txt: not UTF-8"]),
]
# fmt: on


def test_the_table_covers_at_least_40_crafted_inputs() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_crafted_input_is_refused_or_handled_safely(
    case: Case, tiny_run: Path, report_sweep: Path, tmp_path: Path, cache_dir: Path, monkeypatch, capsys, caplog
) -> None:
    check_handled_safely(case, Fixtures(tiny_run, report_sweep), tmp_path, cache_dir, monkeypatch, capsys, caplog)

"""The README is the user's manual: its commands must compose, and CI must run its test command."""

from __future__ import annotations

import itertools
import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate

from nag.bench.cli import build_parser as build_bench_parser
from nag.compare import parser as compare_parser
from nag.config.errors import ConfigError
from nag.config.schema import validate
from nag.report import parser as report_parser
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def commands(entry: str) -> list[str]:
    """Every ``python -m <entry> ...`` line of the README's bash blocks, without comments."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    return [ln[ln.index(f"python -m {entry}") :] for ln in lines if f"python -m {entry} " in ln + " "]


def expand(args: list[str]) -> list[list[str]]:
    """Every job a (multi)run command would launch, as plain override lists."""
    parsed = OverridesParser.create().parse_overrides([a for a in args if a != "-m"])
    choices = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.input_line]
        for o in parsed
    ]
    return [list(c) for c in itertools.product(*choices)]


COMMANDS = commands("nag.train")
EVALUATE = commands("nag.evaluate")


def test_readme_documents_the_main_commands() -> None:
    assert 'pip install -e ".[dev]" && python -m nag.train experiment=quickstart' in README
    assert 'pip install -e ".[dev]" && python -m pytest' in README
    assert any("prior=normal_mean-3" in c for c in COMMANDS)
    assert any(" -m " in c for c in COMMANDS), "the README must show a sweep"


def test_ci_runs_the_readme_install_and_test_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in ci and "python -m pytest" in ci


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_training_command_composes(compose_cfg, command) -> None:
    args = [re.sub(r"<(\w+)>", r"\1", a) for a in shlex.split(command)[3:]]  # after "python -m nag.train"
    for overrides in expand(args):
        # placeholder paths of runs and checkpoints that do not exist here
        overrides = [o for o in overrides if not o.startswith(("ckpt_path=", "resume="))]
        cfg = compose_cfg(overrides)
        if "prior.variance=-1" in overrides:  # the README's example of a failing sweep job
            with pytest.raises(ConfigError, match="prior.variance=-1 must be > 0"):
                validate(cfg)
            continue
        validate(cfg)
        instantiate(cfg.model, prior=cfg.prior, matching=cfg.matching)
        instantiate(cfg.data)


@pytest.mark.parametrize("command", EVALUATE)
def test_every_readme_evaluate_command_composes(compose_cfg, command) -> None:
    args = [re.sub(r"<(\w+)>", r"\1", a) for a in shlex.split(command)[3:]]  # placeholders such as <date>
    cfg = compose_cfg(args, config="evaluate")
    assert cfg.ckpt_path.endswith("last.ckpt")
    instantiate(cfg.sampler)
    if cfg.get("prior") is not None:
        cfg.model.latent_dim = 8  # filled from the checkpoint at run time
        instantiate(cfg.prior)


@pytest.mark.parametrize("command", commands("nag.sample"))
def test_every_readme_sample_command_composes_and_validates(compose_cfg, command) -> None:
    from nag.sample import SampleKeys

    cfg = compose_cfg(shlex.split(command)[3:], config="sample")
    validate(cfg, {"": SampleKeys})
    assert cfg.ckpt_path.endswith("last.ckpt") and cfg.n == 10_000 and cfg.out
    instantiate(cfg.sampler)


def test_readme_documents_evaluation_and_reproduction() -> None:
    assert len(commands("nag.sample")) >= 2 and any("format=npz" in c for c in commands("nag.sample"))
    assert len(EVALUATE) >= 3 and any("sampler=gmm" in c for c in EVALUATE)
    assert any("experiment=report_plain,report_mean0,report_mean-3" in c for c in COMMANDS)


@pytest.mark.parametrize(("entry", "parser"), [("nag.report", report_parser), ("nag.compare", compare_parser),
                                               ("nag.bench", build_bench_parser)])  # fmt: skip
def test_every_readme_command_of_the_argparse_entry_points_parses(entry: str, parser) -> None:  # noqa: ANN001
    """A flag renamed in the code but not in the README fails here (argparse exits on an unknown option)."""
    found = commands(entry)
    assert found, f"the README shows no python -m {entry} command"
    for command in found:
        parser().parse_args(shlex.split(command)[3:])


def test_readme_figures_are_committed_small_pngs() -> None:
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert len(links) >= 6, "the README shows what a user will see"
    files = {ROOT / link for link in links}
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing, missing
    assert all(f.suffix == ".png" and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)
    assert sum(f.stat().st_size for f in files) < 400_000


def test_the_prepared_gpu_check_asks_the_bench_for_parts_it_has() -> None:
    """scripts/gpu_check.sh is run on a lent GPU once per session: a renamed bench part or flag must fail here."""
    script = (ROOT / "scripts" / "gpu_check.sh").read_text()
    (line,) = [ln for ln in script.replace("\\\n", " ").splitlines() if "python3 -m nag.bench" in ln]
    args = shlex.split(line.split("python3 -m nag.bench", 1)[1].split("2>&1")[0].replace('"$OUT', '"/tmp'))
    parsed = build_bench_parser().parse_args(args)
    assert parsed.device == "cuda" and {"gpu", "fid", "matching"} <= set(parsed.only)
    assert "tests/gpu" in script and "bash scripts/gpu_check.sh" in README

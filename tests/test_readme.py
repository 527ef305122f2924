"""The README is the user's manual: its commands must compose, and CI must run its test command."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def train_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    return [ln[ln.index("python -m nag.train") :] for ln in lines if "python -m nag.train" in ln]


def expand(args: list[str]) -> list[list[str]]:
    """Every job a (multi)run command would launch, as plain override lists."""
    parsed = OverridesParser.create().parse_overrides([a for a in args if a != "-m"])
    choices = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.input_line]
        for o in parsed
    ]
    return [list(c) for c in itertools.product(*choices)]


COMMANDS = train_commands()


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
    args = shlex.split(command)[3:]  # after "python -m nag.train"
    for overrides in expand(args):
        if any(o.startswith("ckpt_path=") for o in overrides):
            overrides = [o for o in overrides if not o.startswith("ckpt_path=")]  # a placeholder path
        cfg = compose_cfg(overrides)
        instantiate(cfg.model, prior=cfg.prior, matching=cfg.matching)
        instantiate(cfg.data)

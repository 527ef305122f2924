"""The README and the manual (docs/) tell the truth: every command in them composes or parses, every relative link
and image resolves, the site builds strictly, the run-dir layout they show is the code's, and CI runs the README's
test command."""

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
from nag.training.build import build_model
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
#: Every page a reader may follow: the README and the manual.
PAGES = {p: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]}
ALL_TEXT = "\n".join(PAGES.values())


def commands(entry: str) -> list[str]:
    """Every ``python -m <entry> ...`` line of the bash blocks of the README and docs/, without comments."""
    blocks = re.findall(r"```bash\n(.*?)```", ALL_TEXT, flags=re.S)
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
        build_model(cfg)
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


@pytest.mark.parametrize(
    ("entry", "parser"),
    [("nag.report", report_parser), ("nag.compare", compare_parser), ("nag.bench", build_bench_parser)],
)
def test_every_readme_command_of_the_argparse_entry_points_parses(entry: str, parser) -> None:  # noqa: ANN001
    """A flag renamed in the code but not in the README fails here (argparse exits on an unknown option)."""
    found = commands(entry)
    assert found, f"the README shows no python -m {entry} command"
    for command in found:
        parser().parse_args(shlex.split(command)[3:])


def test_readme_figures_are_committed_small_pngs() -> None:
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert len(links) >= 6, "the README shows what a user will see"
    files = {ROOT / link for link in links}  # the README's: small (the front page loads them all)
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


# --- the manual: links, the site, the layout table, the map ----------------------------------------------------------


def _slug(heading: str) -> str:
    """A heading's anchor as Markdown's toc (mkdocs) and GitHub make it: lower case, punctuation dropped, spaces -."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r"\s", "-", text.strip())


def _anchors(text: str) -> set[str]:
    body = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(h) for h in re.findall(r"(?m)^#{1,6} (.+)$", body)}


def _links(text: str) -> list[str]:
    body = re.sub(r"```.*?```", "", text, flags=re.S)
    body = re.sub(r"`[^`\n]*`", "", body)
    found = re.findall(r"\]\(([^)\s]+)\)", body) + re.findall(r'src="([^"]+)"', body)
    return [t for t in found if not re.match(r"^[a-z]+:", t)]  # http(s): and mailto: are not ours to check


@pytest.mark.parametrize("page", list(PAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page) -> None:  # noqa: ANN001
    broken = []
    for target in _links(PAGES[page]):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_the_readme_is_a_front_door_with_a_map_of_every_page() -> None:
    assert len(README.splitlines()) <= 250
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _links(README)}
    pages = {p.resolve() for p in (ROOT / "docs").rglob("*.md") if p.name != "index.md" and "figures" not in p.parts}
    assert not pages - linked, f"pages the README's map does not name: {sorted(map(str, pages - linked))}"


def test_the_python_in_the_docs_compiles_and_uses_only_the_public_api() -> None:
    import nag

    blocks = re.findall(r"```python\n(.*?)```", ALL_TEXT, flags=re.S)
    assert len(blocks) >= 3
    for block in blocks:
        compile(block, "<docs>", "exec")
        # What a user script touches is public; an extension recipe imports the modules it extends (from nag.x ...).
        code = "\n".join(ln for ln in block.splitlines() if not ln.startswith(("from nag.", "import nag.")))
        used = set(re.findall(r"\bnag\.(\w+)", code))
        assert used <= set(nag.__all__), f"docs use nag.{used - set(nag.__all__)}, which is not public"


def test_the_run_dir_layout_table_is_the_codes() -> None:
    from nag.runs import run_dir as rd

    text = (ROOT / "docs" / "training.md").read_text()
    table = text.split("<!-- run-dir layout -->", 1)[1].split("<!-- end run-dir layout -->", 1)[0]
    documented = set(re.findall(r"(?m)^\| `([^`]+)` \|", table))
    files = (rd.CONFIG, rd.OVERRIDES, rd.LAST, rd.CHECKPOINTS / rd.BEST_PATTERN, rd.METRICS, rd.FAILURE, rd.LOG, rd.JOB)
    code = {*map(str, files), f"{rd.RESUME_SUBDIR}/", f"{rd.TENSORBOARD}/", f"{rd.SAMPLERS}/"}
    assert documented == code, f"documented only: {documented - code}; in the code only: {code - documented}"


def test_the_benchmark_table_states_the_benchs_targets() -> None:
    """Each target of ``nag.bench`` (``TARGETS``, what its table judges) is the one its part's row documents."""
    from nag.bench.cli import TARGETS

    text = (ROOT / "docs" / "development.md").read_text().split("## The benchmark", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"(?m)^\| `(\w+)` \|(.*)$", text))
    for (section, key), (_, fmt, target, at_least) in TARGETS.items():
        assert section in rows, f"docs/development.md's benchmark table has no row for the {section} part"
        if target is not None:
            shown = f"{target * 100:g} %" if "%" in fmt else f"{target:g}"
            goal = f"{'≥' if at_least else '≤'} {shown}"
            assert goal in rows[section].rsplit("|", 2)[-2], f"{section}.{key}: target {goal} not in its row"


def test_the_site_builds_strictly() -> None:
    """mkdocs build --strict: a broken link, a missing anchor or a page left out of the navigation fails."""
    import subprocess
    import sys
    import tempfile

    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    pytest.importorskip("material", reason="the docs extra is not installed")
    with tempfile.TemporaryDirectory() as site:
        r = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", site],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
        )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

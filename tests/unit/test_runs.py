"""The run-dir model and the trust boundary, in process: bounded readers, link-proof writers, stored configs read
as data, stored overrides checked, the allow-list, checkpoint structure, caches, decode workers that die with
their parent. (The same rules through the real entry points: ``test_untrusted.py``.)"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from nag.io.files import UnsafeFileError, load_json, load_yaml, read_bytes, walk
from nag.io.output import OutputDir, atomic_file, safe_name
from nag.runs.checkpoint_file import CheckpointError, check_callback_state, check_optimizer_state
from nag.runs.discovery import discover, job_order
from nag.runs.overrides import StoredOverrideError, check_stored
from nag.runs.run_dir import RunDir
from nag.runs.stored_config import StoredConfig, StoredConfigError, local_paths, own_resolvers
from nag.runs.trusted import UntrustedConfigError, check_config, check_target, check_training_config

# --- bounded reading -----------------------------------------------------------------------------------


def test_reading_refuses_links_fifos_and_large_files_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big").write_bytes(b"x" * 101)
    assert read_bytes(tmp_path / "real") == b"x"
    with pytest.raises(UnsafeFileError, match="is a symbolic link, not a regular file"):
        read_bytes(tmp_path / "link")
    start = time.monotonic()
    with pytest.raises(UnsafeFileError, match="is a named pipe"):
        read_bytes(tmp_path / "fifo")
    assert time.monotonic() - start < 1
    with pytest.raises(UnsafeFileError, match="larger than 100 bytes"):
        read_bytes(tmp_path / "big", limit=100)
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "absent")


def test_yaml_expansion_is_bounded_on_the_graph_not_by_expanding(tmp_path: Path) -> None:
    laughs = "".join(
        f"- &{c} [{','.join(['*' + p] * 9) if p else 'x,x,x,x,x,x,x,x,x'}]\n"
        for p, c in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
    )
    (tmp_path / "laughs.yaml").write_text(laughs)
    start = time.monotonic()
    with pytest.raises(UnsafeFileError, match="expands to more than 100,000 nodes"):
        load_yaml(tmp_path / "laughs.yaml")
    assert time.monotonic() - start < 1
    (tmp_path / "few.yaml").write_text("a: &a [1, 2]\nb: *a\nc: *a\n")
    assert load_yaml(tmp_path / "few.yaml") == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}  # honest aliases load
    (tmp_path / "loop.yaml").write_text("&a [*a]\n")
    with pytest.raises(UnsafeFileError, match="recursive alias"):
        load_yaml(tmp_path / "loop.yaml")
    (tmp_path / "dup.yaml").write_text("a: 1\na: 2\n")
    with pytest.raises(UnsafeFileError, match="duplicate key 'a'"):
        load_yaml(tmp_path / "dup.yaml")
    (tmp_path / "obj.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(UnsafeFileError, match="not a readable YAML"):
        load_yaml(tmp_path / "obj.yaml")


def test_yaml_values_are_typed_as_omegaconf_types_them(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("lr: 1e-3\nx: 1.0e-06\nd: 2026-11-28\nn: 3\ns: ${a.b}\nb: true\nz: null\n")
    assert load_yaml(tmp_path / "c.yaml") == OmegaConf.to_container(OmegaConf.load(tmp_path / "c.yaml"))
    assert load_yaml(tmp_path / "c.yaml")["lr"] == 1e-3 and load_yaml(tmp_path / "c.yaml")["d"] == "2026-11-28"


def test_json_numbers_are_finite_or_none_and_deep_nesting_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"a": NaN, "b": Infinity, "c": 1e400, "d": 1' + "0" * 400 + ', "e": 2.5, "f": 7}')
    assert load_json(tmp_path / "m.json") == {"a": None, "b": None, "c": None, "d": None, "e": 2.5, "f": 7}
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnsafeFileError, match="not valid JSON"):
        load_json(tmp_path / "deep.json")


def test_walk_never_follows_links_and_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path)
    (tmp_path / "a" / "f").write_text("x")
    names = sorted(str(p.relative_to(tmp_path)) for p, _ in walk(tmp_path))
    assert names == ["a", "a/b", "a/b/up", "a/f"]
    with pytest.raises(UnsafeFileError, match="more than 2 files"):
        list(walk(tmp_path, max_entries=2))


# --- link-proof writing ---------------------------------------------------------------------------------


def test_an_atomic_write_replaces_a_planted_link_and_never_follows_it(tmp_path: Path) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("mine\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").symlink_to(victim)
    with atomic_file(out / "report.md") as f:
        f.write("report\n")
    assert victim.read_text() == "mine\n"
    assert not (out / "report.md").is_symlink() and (out / "report.md").read_text() == "report\n"
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UnsafeFileError, match="is a symbolic link"), atomic_file(tmp_path / "linked" / "x"):
        pass
    assert not (tmp_path / "elsewhere").exists()


def test_an_output_dir_that_is_a_link_or_reaches_through_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "theirs").mkdir()
    (tmp_path / "compare").symlink_to(tmp_path / "theirs")
    with pytest.raises(UnsafeFileError, match="compare folder .* is a symbolic link"):
        OutputDir(tmp_path / "compare", "the compare folder")
    out = OutputDir(tmp_path / "report")
    assert not (tmp_path / "report").exists(), "created with its first file, so a refused command leaves none"
    out.write_text("first.txt", "x")
    (tmp_path / "report" / "tensorboard").symlink_to(tmp_path / "theirs")
    with pytest.raises(UnsafeFileError, match="is a symbolic link"):
        out.folder("tensorboard")
    with pytest.raises(UnsafeFileError, match="not a file name inside"):
        out.file("../escape.txt")
    out.write_text("sub/dir/a.txt", "a")
    assert (tmp_path / "report" / "sub" / "dir" / "a.txt").read_text() == "a"
    assert list((tmp_path / "theirs").iterdir()) == []


def test_safe_names_are_bounded_and_stay_unique() -> None:
    a, b = safe_name("latent_mmd_vs_" + "k" * 300 + "1"), safe_name("latent_mmd_vs_" + "k" * 300 + "2")
    assert len(a) <= 120 and len(b) <= 120 and a != b
    assert safe_name("a/b:c $x") == "a_b_c__x" and safe_name("..hidden") == "hidden"
    assert safe_name("café Xray") == "caf__Xray", "ASCII letters only; only dots are stripped from the front"
    assert safe_name("..") == "_" and safe_name("a" * 120) == "a" * 120, "a name at the limit is kept whole"
    assert re.fullmatch(r"k{109}~[0-9a-f]{10}", safe_name("k" * 300)), "cut to the limit: name, '~', 10 hex digits"


# --- stored configs are data --------------------------------------------------------------------------


def _stored(tmp_path: Path, text: str) -> StoredConfig:
    (tmp_path / "config.yaml").write_text(textwrap.dedent(text))
    return StoredConfig.read(tmp_path / "config.yaml")


def test_a_real_stored_config_is_accepted_and_read_with_this_machines_paths(tiny_run: Path) -> None:
    cfg = RunDir(tiny_run).config
    paths = local_paths(tiny_run, {"cache_dir": "/here/cache", "data_dir": "/here/data"})
    data = cfg.section("data", paths)
    assert data["cache_dir"] == "/here/cache" and data["_target_"].startswith("nag.data.")
    assert cfg.get("model.encoder.latent_dim", paths) == cfg.get("model.latent_dim", paths) == 8  # references
    assert cfg.get("callbacks.last_checkpoint.dirpath", paths) == f"{tiny_run}/checkpoints"  # output_dir = the run
    assert ("paths.cache_dir", "${oc.env:NAG_CACHE_DIR,'~/.cache/nag'}") in own_resolvers()


def test_a_stored_config_never_runs_a_resolver(tmp_path: Path) -> None:
    for text, words in [
        ("trainer:\n  max_epochs: ${oc.env:SECRET_TOKEN}\n", "trainer.max_epochs='${oc.env:SECRET_TOKEN}'"),
        ("data:\n  cache_dir: ${nag.fresh_dir:/elsewhere}\n", "data.cache_dir"),
        ("paths:\n  cache_dir: ${oc.env:HOME}\n", "paths.cache_dir"),  # an own key, another resolver
        ("a: \"${oc.decode:'{_target_: os.system}'}\"\n", "a="),
    ]:
        with pytest.raises(StoredConfigError, match="never run"):
            _stored(tmp_path, text)
        assert words in str(pytest.raises(StoredConfigError, _stored, tmp_path, text).value)


def test_stored_paths_where_nag_writes_are_always_this_machines(tmp_path: Path) -> None:
    cfg = _stored(
        tmp_path,
        """\
        paths:
          data_dir: /their/data
          cache_dir: /their/home/.ssh
        data:
          root: ${paths.data_dir}
          cache_dir: /their/cache
          image_size: 16
        """,
    )
    data = cfg.section("data", {"paths.cache_dir": "/mine", "paths.data_dir": "/mine/data"})
    assert data == {"root": "/their/data", "cache_dir": "/mine", "image_size": 16}  # reads from theirs, writes mine
    own = _stored(tmp_path, "paths:\n  data_dir: ${oc.env:NAG_DATA_DIR,data}\ndata:\n  root: ${paths.data_dir}\n")
    assert own.get("data.root", {"paths.data_dir": "/mine/data", "paths.cache_dir": "/c"}) == "/mine/data"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("a: ${a}\n", "a", "recursive interpolation"),
        ("a: ${b}\nb: ${a}\n", "a", "recursive interpolation"),
        ("a: ???\n", "a", r"is \?\?\?"),
        ("a: ${nope}\n", "a", "a refers to \\$\\{nope\\}, which the file does not have"),
        ("a: [1, '${nope}']\n", "a", "a\\[1\\] refers to \\$\\{nope\\}, which the file does not have"),
        ("a: 'x ${b.c}'\nb: {}\n", "a", "a refers to \\$\\{b.c\\}, which the file does not have"),
        ("a: ${b.c}\nb: text\n", "a", "a refers to \\$\\{b.c\\}, which the file does not have"),  # b is no mapping
        ("a: ${b.c}\nb: 5\n", "a", "a refers to \\$\\{b.c\\}, which the file does not have"),
        ("d: $\nb: '${d}{oc.env:HOME}'\n", "b", "b='\\$\\{d\\}\\{oc.env:HOME\\}' builds an interpolation"),
        ("x: 1\n", "y", "has no y"),
        ("x: text\n", "x.y", "has no x.y"),
    ],
)
def test_bad_stored_values_are_named(tmp_path: Path, text: str, key: str, message: str) -> None:
    cfg = _stored(tmp_path, text)
    with pytest.raises(StoredConfigError, match=message):
        cfg.get(key, {"paths.cache_dir": "/c"})


def test_references_are_followed_to_the_depth_bound_and_one_level_past_it_is_refused(tmp_path: Path) -> None:
    from nag.runs.stored_config import _MAX_DEPTH

    def chain(n: int) -> str:  # k0 -> k1 -> ... -> k{n}: n references to follow
        return "".join(f"k{i}: ${{k{i + 1}}}\n" for i in range(n)) + f"k{n}: end\n"

    assert _stored(tmp_path, chain(_MAX_DEPTH)).get("k0", {}) == "end"
    with pytest.raises(StoredConfigError, match=f"k{_MAX_DEPTH + 1} is a recursive interpolation"):
        _stored(tmp_path, chain(_MAX_DEPTH + 1)).get("k0", {})


def test_a_values_size_and_steps_are_bounded_at_their_exact_limits(tmp_path: Path) -> None:
    from nag.runs.stored_config import MAX_STEPS, MAX_VALUE_CHARS

    def cfg(tree: dict) -> StoredConfig:
        return StoredConfig(tree, tmp_path / "config.yaml")

    joined = {"a": "x" * (MAX_VALUE_CHARS - 10), "b": "${a}0123456789"}
    assert len(cfg(joined).get("b", {})) == MAX_VALUE_CHARS
    with pytest.raises(StoredConfigError, match=f"b resolves to more than {MAX_VALUE_CHARS:,} characters"):
        cfg({**joined, "b": "${a}0123456789!"}).get("b", {})
    with pytest.raises(StoredConfigError, match="b='\\$\\$\\{a\\}\\{x\\}' was set by Hydra when the run started"):
        cfg({"a": "q", "b": "$${a}{x}"}).get("b", {})  # ${x} around a reference (a file with it is refused on reading)
    assert len(cfg({"a": [0] * (MAX_STEPS - 1)}).get("a", {})) == MAX_STEPS - 1  # the list and its items
    with pytest.raises(StoredConfigError, match=rf"a\[{MAX_STEPS - 1}\] takes more than {MAX_STEPS:,} steps"):
        cfg({"a": [0] * MAX_STEPS}).get("a", {})


def test_this_machines_paths_replace_the_files_except_a_data_dir_it_names_itself(tmp_path: Path) -> None:
    mine = {"paths.output_dir": "/mine/run", "paths.data_dir": "/mine/data", "paths.cache_dir": "/mine/cache"}
    theirs = {"paths": {"output_dir": "/their/run", "data_dir": "/their/data", "cache_dir": "/their/cache"}}
    cfg = StoredConfig(theirs, tmp_path / "config.yaml")
    assert cfg.get("paths", mine) == {"output_dir": "/mine/run", "data_dir": "/their/data", "cache_dir": "/mine/cache"}
    theirs["paths"].update(data_dir="${oc.env:HOME}", output_dir=5)  # a resolver or not text: this machine's
    assert cfg.get("paths.data_dir", mine) == "/mine/data" and cfg.get("paths.output_dir", mine) == "/mine/run"
    theirs["paths"]["data_dir"] = 7
    assert cfg.get("paths.data_dir", mine) == "/mine/data"


@pytest.mark.parametrize(("text", "message"), [("- a\n", "holds a list"), ("1: x\n", "not text"), ("", "NoneType")])
def test_a_stored_config_must_be_a_mapping_of_text_keys(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StoredConfigError, match=message):
        _stored(tmp_path, text)


# --- stored overrides come back as data only ----------------------------------------------------------


def test_honest_overrides_come_back() -> None:
    honest = [
        "experiment=quickstart",
        "callbacks=[model_checkpoint,samples]",
        "prior.mean=-3",
        "prior=normal_mean-3",
        "~callbacks.probes",
        "data.root=/d",
        "model.encoder.channels=[8,16]",
        "matching.weight=0.1",
        "experiment=null",
        "paths.data_dir=/x",
    ]
    assert check_stored(honest, Path("o.yaml")) == honest


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ("+callbacks.x._target_=numpy.load", "adds a key the config does not have (e.g. a new _target_ to build)"),
        ("++trainer.x=1", "adds a key"),
        ("hydra.job.chdir=true", "changes Hydra itself (working directory, callbacks, launcher, search path)"),
        ("hydra/launcher=basic", "changes Hydra itself"),
        ("model._target_=builtins.exec", "sets a special key (_target_, _args_, ...) that names code"),
        ("prior._args_=[1]", "sets a special key"),
        ("prior={_target_: os.system}", "sets a whole mapping, which could name code"),
        ("model.encoder.channels=[8,{_target_: os.system}]", "sets a whole mapping"),  # a mapping inside a list
        (
            "paths.somewhere=/x",
            "sets where nag writes, which only this machine's own command line may",
        ),  # every paths.* key
        ("trainer.max_epochs=${oc.env:SECRET}", "holds an interpolation (${...}), which would run a resolver"),
        ("model.encoder.channels=[1,'${oc.env:X}']", "holds an interpolation"),
        ("paths.cache_dir=/x", "sets where nag writes"),
        ("data.cache_dir=/x", "sets where nag writes"),
        ("callbacks.model_checkpoint.dirpath=/x", "sets where nag writes"),
        ("logger.tensorboard.save_dir=/x", "sets where nag writes"),
        ("trainer.default_root_dir=/x", "sets where nag writes"),
        ("data=nope", "is not one of nag's data options ("),
        ("callbacks=[samples,../../x]", "is not one of nag's callbacks options"),
        ("data@foo=synthetic", "moves a config to another package"),
        ("prior.mean=1,2", "is a sweep, not one job's setting"),
        ("prior.mean=[", "is not an override ("),
    ],
)
def test_stored_overrides_that_name_code_or_places_are_refused(override: str, why: str) -> None:
    with pytest.raises(StoredOverrideError) as err:
        check_stored(["debug=tiny", override], Path("run/.hydra/overrides.yaml"))
    assert str(err.value).startswith(f"run/.hydra/overrides.yaml, entry 2: {override!r} {why}")  # the reason, whole


def test_stored_overrides_must_be_a_list_of_text() -> None:
    for bad in ({"a": 1}, ["a=1", 3], "a=1"):
        with pytest.raises(StoredOverrideError, match="not a list of overrides"):
            check_stored(bad, Path("o.yaml"))
    assert check_stored(None, Path("o.yaml")) == []
    with pytest.raises(StoredOverrideError, match=r"^o\.yaml is not a list of overrides \(it holds a dict\)\.$"):
        check_stored({"a": 1}, Path("o.yaml"))


def test_a_refused_override_is_quoted_whole_up_to_120_characters_and_none_over_10000_is_parsed() -> None:
    def refusal(override: str) -> str:
        with pytest.raises(StoredOverrideError) as err:
            check_stored([override], Path("o.yaml"))
        return str(err.value)

    at_limit = "hydra.x=" + "a" * 112  # 120 characters: quoted whole
    assert f"entry 1: {at_limit!r} changes Hydra" in refusal(at_limit)
    over = at_limit + "b"  # 121: cut to 117 and '...'
    assert f"entry 1: {over[:117] + '...'!r} changes Hydra" in refusal(over)
    longest = "data.root=" + "d" * 9_990  # 10,000 characters: parsed (a read key: allowed)
    assert check_stored([longest], Path("o.yaml")) == [longest]
    assert "...' is too long to be an override nag wrote. A run dir's" in refusal(longest + "d")
    unparsed = refusal("prior.mean=[" + "]" * 300)  # the parser's message, on one line, cut to 100 characters
    assert "is not an override (" in unparsed and "no viable alternative" in refusal("prior.mean=[")
    assert len(unparsed.split("is not an override (", 1)[1].split("). A run dir", 1)[0]) == 100


# --- the allow-list -----------------------------------------------------------------------------------


def test_a_class_imported_into_an_allowed_module_is_not_allowed(monkeypatch) -> None:
    """nag.model.nets may build its own nets, not an nn.Module it happens to import (or one added to it)."""
    import nag.model.nets

    monkeypatch.setattr(nag.model.nets, "Sequential", torch.nn.Sequential, raising=False)
    with pytest.raises(UntrustedConfigError, match="defined in nag.model.nets"):
        check_target("nag.model.nets.Sequential", "encoder")
    check_target("nag.model.nets.Encoder", "encoder")
    for outside in ("torch.nn.Sequential", "torch.nn.Module", "torch.nn.modules.linear.Linear", "os.system"):
        with pytest.raises(UntrustedConfigError, match="not on nag's allow-list"):
            check_target(outside, "encoder")


def test_checkpoint_parts_must_be_of_their_kind() -> None:
    from nag.runs.trusted import CHECKPOINT_ROLES

    good = {
        "encoder": {"_target_": "nag.model.nets.Encoder"},
        "prior": {"_target_": "nag.model.priors.NormalPrior"},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True},
        "scheduler": None,
    }
    check_config(good, "hp", roles=CHECKPOINT_ROLES)
    for part, target in [
        ("encoder", "nag.model.priors.NormalPrior"),
        ("prior", "nag.model.nets.Encoder"),
        ("optimizer", "torch.optim.lr_scheduler.StepLR"),
        ("matching", "nag.model.priors.LaplacePrior"),
    ]:
        with pytest.raises(UntrustedConfigError, match=f"hp.{part}._target_"):
            check_config({**good, part: {"_target_": target}}, "hp", roles=CHECKPOINT_ROLES)
    with pytest.raises(UntrustedConfigError, match="names no class"):
        check_config({**good, "encoder": {"image_size": 16}}, "hp", roles=CHECKPOINT_ROLES)


def test_a_given_allow_list_holds_at_every_depth_of_the_tree() -> None:
    """An allow-list narrower than nag's own (a reader that may build nets only) is the one applied to the top
    ``_target_`` and to every nested one; nag's default list would accept a prior."""
    from nag.model.nets import Encoder

    nets_only = {"nag.model.nets": (Encoder,)}
    prior = {"_target_": "nag.model.priors.NormalPrior"}
    check_config(prior, "hp")  # nag's own list builds a prior
    check_config(
        {"_target_": "nag.model.nets.Encoder", "inner": [{"_target_": "nag.model.nets.Encoder"}]},
        "hp",
        allowed=nets_only,
    )
    for tree, where in [(prior, "hp"), ({"a": prior}, "hp.a"), ({"a": [{"b": prior}]}, r"hp.a\[0\].b")]:
        with pytest.raises(UntrustedConfigError, match=rf"^{where}._target_='nag.model.priors.NormalPrior' is not on"):
            check_config(tree, "hp", allowed=nets_only)


def test_every_target_of_nags_training_configs_is_on_the_training_allow_list(compose_cfg) -> None:
    for overrides in ([], ["callbacks=with_edits", "logger=csv"], ["experiment=wae_celeba"], ["trainer=ddp_cpu"]):
        check_training_config(compose_cfg(overrides), "config")
    with pytest.raises(UntrustedConfigError, match=r"callbacks.x._target_='numpy.load'"):
        check_training_config(compose_cfg(["+callbacks.x._target_=numpy.load"]), "config")
    with pytest.raises(UntrustedConfigError, match="_target_='.{.*}'"):
        check_training_config(compose_cfg(["matching._target_=${oc.env:X}"]), "config")
    listed = {"trainer": {"plugins": [1, {"_target_": "os.system"}]}}
    with pytest.raises(UntrustedConfigError, match=r"config\.trainer\.plugins\[1\]\._target_='os\.system'"):
        check_training_config(listed, "config")  # a target inside a list is checked as well


# --- checkpoints -------------------------------------------------------------------------------------


def _callbacks(dirpath: str, best: str) -> dict:
    return {
        "callbacks": {
            "ModelCheckpoint{...}": {
                "dirpath": dirpath,
                "best_model_path": best,
                "best_model_score": torch.tensor(1.0),
                "best_k_models": {best: torch.tensor(1.0)},
                "kth_best_model_path": best,
                "last_model_path": "",
            }
        }
    }


@pytest.mark.parametrize(
    ("dirpath", "best", "ok"),
    [
        ("/r/checkpoints", "/r/checkpoints/best-epoch003.ckpt", True),
        ("/r/checkpoints", "", True),
        ("/r/checkpoints", "/r/checkpoints/../../home/thesis.pdf", False),
        ("/r/checkpoints", "/home/thesis.pdf", False),
        ("/r/checkpoints", "/r/checkpoints/sub/x.ckpt", False),
        ("/r/../home", "/r/../home/x", False),
        ("/r/../home", "", False),  # the folder itself climbs out, whatever the paths say
        (5, "", False),
    ],
)
def test_callback_state_paths_stay_in_their_checkpoint_folder(dirpath: str, best: str, ok: bool) -> None:
    if ok:
        check_callback_state(_callbacks(dirpath, best), "ckpt_path", "x.ckpt")
    else:
        with pytest.raises(CheckpointError, match="x.ckpt"):
            check_callback_state(_callbacks(dirpath, best), "ckpt_path", "x.ckpt")


@pytest.mark.parametrize("state", [{"dirpath": "/r/../home"}, {"best_k_models": {"/home/thesis.pdf": 1.0}}])
def test_a_callback_state_with_any_one_checkpoint_key_is_checked_as_a_whole(state: dict) -> None:
    with pytest.raises(CheckpointError, match=r"names checkpoint paths but lacks"):
        check_callback_state({"callbacks": {"ModelCheckpoint{}": state}}, "ckpt_path", "x.ckpt")


def _state(**paths: object) -> dict:
    """A ModelCheckpoint state as Lightning writes it: every path empty, the given ones set."""
    state = {"dirpath": "/r/checkpoints", "best_model_path": "", "best_model_score": None}
    state |= {"kth_best_model_path": "", "last_model_path": "", "best_k_models": {}}
    return state | paths


@pytest.mark.parametrize(
    "paths",
    [
        {"best_model_path": "/home/thesis.pdf"},
        {"kth_best_model_path": "/home/thesis.pdf"},
        {"last_model_path": "/home/thesis.pdf"},
        {"best_k_models": {"/home/thesis.pdf": 1.0}},
        {"best_model_path": "/home/thesis.pdf", "best_k_models": {"/r/checkpoints/a.ckpt": 1.0}},
        {"best_k_models": {"/r/checkpoints/a.ckpt": 1.0, "/home/thesis.pdf": 2.0}},
    ],
    ids=["best", "kth", "last", "best_k", "best-beside-a-good-best_k", "second-of-best_k"],
)
def test_each_stored_checkpoint_path_is_checked_on_its_own(paths: dict) -> None:
    (what,) = [k for k, v in paths.items() if "/home/thesis.pdf" in (v if isinstance(v, dict) else [v])]
    with pytest.raises(CheckpointError) as e:
        check_callback_state({"callbacks": {"ModelCheckpoint{}": _state(**paths)}}, "ckpt_path", "x.ckpt")
    assert str(e.value) == (
        f"ckpt_path=x.ckpt: callback state ModelCheckpoint{{}} has {what}='/home/thesis.pdf', not a file in its own "
        "checkpoint folder '/r/checkpoints'; Lightning would delete or write it on resuming. Refused."
    )
    good = {
        k: ({"/r/checkpoints/b.ckpt": 1.0} if isinstance(v, dict) else "/r/checkpoints/b.ckpt")
        for k, v in paths.items()
    }
    check_callback_state({"callbacks": {"ModelCheckpoint{}": _state(**good)}}, "ckpt_path", "x.ckpt")


def test_a_callback_state_without_best_k_models_or_a_folder() -> None:
    without = _state()
    del without["best_k_models"]  # Lightning's older states: nothing to check there
    check_callback_state({"callbacks": {"ModelCheckpoint{}": without}}, "ckpt_path", "x.ckpt")
    # no folder (dirpath None or ""): every path must be empty
    for dirpath in (None, ""):
        check_callback_state({"callbacks": {"M": _state(dirpath=dirpath)}}, "ckpt_path", "x.ckpt")
        with pytest.raises(CheckpointError, match=r"has last_model_path='x.ckpt', not a file in its own checkpoint"):
            check_callback_state({"callbacks": {"M": _state(dirpath=dirpath, last_model_path="x.ckpt")}}, "k", "x")


def test_a_bad_checkpoint_state_after_other_callbacks_is_still_found_and_named_in_full() -> None:
    name = "ModelCheckpoint{'monitor': 'val/loss', 'mode': 'min', 'every_n_train_steps': 0, 'x': 1}"
    long_path = "/home/" + "d" * 150 + ".pdf"
    callbacks = {"EarlyStopping{}": {"wait_count": 0}, "Other": 5, name: _state(best_model_path=long_path)}
    with pytest.raises(CheckpointError) as e:
        check_callback_state({"callbacks": callbacks}, "ckpt_path", "x.ckpt")
    assert f"callback state {name[:60]} has best_model_path={long_path[:120]!r}, not" in str(e.value)
    for bad, message in [
        ({"dirpath": "/r/../home", "best_model_path": "", "best_model_score": None}, "has dirpath='/r/../home'"),
        ({"last_model_path": ""}, "names checkpoint paths but lacks"),
    ]:
        with pytest.raises(CheckpointError) as e:
            check_callback_state({"callbacks": {"EarlyStopping{}": {}, name: bad}}, "ckpt_path", "x.ckpt")
        assert str(e.value).startswith(f"ckpt_path=x.ckpt: callback state {name[:60]} {message}")


def test_the_stored_optimizer_state_must_match_the_configured_optimizer() -> None:
    w = torch.nn.Parameter(torch.zeros(2))
    configured = torch.optim.Adam([w], lr=1e-3)
    state = {"optimizer_states": [configured.state_dict()]}
    check_optimizer_state(state, configured, "x.ckpt")
    scheduled = torch.optim.Adam([w], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(scheduled, step_size=1, gamma=0.5)
    scheduled.step()
    scheduler.step()  # lr moved to 5e-4: what the configured schedule gives at epoch 1
    assert scheduled.param_groups[0]["lr"] == 5e-4
    stored = {"optimizer_states": [scheduled.state_dict()], "lr_schedulers": [scheduler.state_dict()]}
    fresh = torch.optim.Adam([w], lr=1e-3)
    check_optimizer_state(stored, fresh, "x.ckpt", scheduler=torch.optim.lr_scheduler.StepLR(fresh, 1, gamma=0.5))
    with pytest.raises(CheckpointError, match="lr=0.0005"):  # without that schedule, 5e-4 is not the config's
        check_optimizer_state(stored, configured, "x.ckpt")
    for name, value in [("lr", 7.5), ("betas", (0.5, 0.999)), ("weight_decay", 0.1)]:
        bad = configured.state_dict()
        bad["param_groups"][0][name] = value
        with pytest.raises(CheckpointError, match=f"{name}="):
            check_optimizer_state({"optimizer_states": [bad]}, configured, "x.ckpt")


# --- the run dir ------------------------------------------------------------------------------------


def test_job_order_counts_only_ascii_digits() -> None:
    assert sorted(["10", "2", "²", "a", "0"], key=job_order) == ["0", "2", "10", "a", "²"]


def test_a_run_dir_reports_its_bad_files_as_unreadable(tmp_path: Path) -> None:
    run = tmp_path / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("data: {}\n")
    (run / ".hydra" / "overrides.yaml").write_text("- prior.mean=1\n")
    (run / "metrics.json").write_text('{"val/recon": 0.1}')
    r = RunDir(run)
    assert (r.status, r.reason, r.label()) == ("ok", "", "prior.mean=1")
    (run / ".hydra" / "overrides.yaml").write_text("- matching=none\n- prior.mean=1\n")
    assert RunDir(run).label() == "matching=none prior.mean=1"
    assert RunDir(run).label(["prior.mean", "seed"]) == "prior.mean=1", "only the keys asked for that it has"
    assert RunDir(run).label(["seed"]) == "0", "none of them: the dir's name"
    (run / "failure.json").write_text('{"error": "line one\\nline\\u0007two"}')
    assert (RunDir(run).status, RunDir(run).reason) == ("failed", "line one line two")
    (run / "failure.json").unlink()
    os.mkfifo(run / "failure.json")
    assert RunDir(run).status == "unreadable" and "named pipe" in RunDir(run).reason
    (run / "failure.json").unlink()
    (run / "metrics.json").write_text("[1, 2]")
    assert RunDir(run).status == "unreadable" and "not a mapping" in RunDir(run).reason


def test_best_checkpoint_is_the_newest_regular_best_file(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    assert RunDir(tmp_path).best_ckpt is None
    (ckpts / "last.ckpt").write_bytes(b"x")
    assert RunDir(tmp_path).best_ckpt == ckpts / "last.ckpt"
    (ckpts / "best-epoch001.ckpt").write_bytes(b"x")
    os.utime(ckpts / "best-epoch001.ckpt", (1, 1))
    (ckpts / "best-epoch004.ckpt").write_bytes(b"x")
    (ckpts / "best-epoch009.ckpt").symlink_to(tmp_path / "elsewhere.ckpt")  # dangling: never chosen
    assert RunDir(tmp_path).best_ckpt == ckpts / "best-epoch004.ckpt"


def test_discovery_walks_no_links(tmp_path: Path) -> None:
    for job in ("0", "1", "10", "2"):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "config.yaml").write_text("a: 1\n")
    (tmp_path / "1" / ".hydra" / "resume").mkdir()
    (tmp_path / "1" / ".hydra" / "resume" / "config.yaml").write_text("a: 1\n")
    (tmp_path / "elsewhere").symlink_to(tmp_path / "0")
    (tmp_path / "0" / "loop").symlink_to(tmp_path)
    assert [r.path.name for r in discover(tmp_path)] == ["0", "1", "2", "10"]


# --- caches and their workers -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["prctl", "watchdog"])
def test_decode_workers_exit_when_their_parent_is_killed(tmp_path: Path, how: str) -> None:
    """kill -9 of a process building a cache must not leave its decode workers alive (each holds hundreds of MB):
    on Linux by PR_SET_PDEATHSIG, elsewhere (here: with prctl made unavailable) by the watchdog thread."""
    pids = tmp_path / "pids"
    pids.mkdir()
    script = textwrap.dedent(f"""
        import os, time
        if {how == "watchdog"}:  # prctl unavailable: only the watchdog thread can end the workers
            import ctypes
            def unavailable(*args, **kwargs):
                raise OSError("no prctl here")
            ctypes.CDLL = unavailable
        else:  # no watchdog thread: only prctl can end them
            import types
            import nag.data.cache
            class NoThread:
                def __init__(self, *args, **kwargs):
                    pass
                def start(self):
                    pass
            nag.data.cache.threading = types.SimpleNamespace(Thread=NoThread)
        from functools import partial
        import numpy as np
        from nag.data.cache import load_or_build

        def fill(chunk, folder):
            open(os.path.join(folder, str(os.getpid())), "w").close()
            time.sleep(60)
            return np.zeros((len(chunk), 4, 4, 3), np.uint8), np.zeros((len(chunk), 0), np.uint8), []

        load_or_build({str(tmp_path / "cache")!r}, "x", {{"k": 1}}, list(range(4)), 4, 0,
                      partial(fill, folder={str(pids)!r}), chunk_size=1, workers=2)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        workers = [int(p.name) for p in pids.iterdir()]
        assert len(workers) == 2, "the workers did not start"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state not in ("Z", "X")

    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in workers if alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"decode workers {left} outlived their killed parent"


def test_checkpoints_naming_classes_where_they_lived_before_still_load(tiny_run: Path, tmp_path: Path) -> None:
    """Checkpoints written before nag/model existed name nag.priors.NormalPrior, nag.nets.Encoder, ..."""
    from nag.training.module import NAGModule

    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    hp = ckpt["hyper_parameters"]
    for part in ("encoder", "decoder", "prior", "matching"):
        hp[part]["_target_"] = hp[part]["_target_"].replace("nag.model.", "nag.")
    assert hp["prior"]["_target_"] == "nag.priors.NormalPrior"
    torch.save(ckpt, tmp_path / "old.ckpt")
    old = NAGModule.load_from_checkpoint(tmp_path / "old.ckpt")
    new = NAGModule.load_from_checkpoint(tiny_run / "checkpoints" / "last.ckpt")
    assert old.hparams["prior"]["_target_"] == "nag.model.priors.NormalPrior"
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(old.eval().reconstruct(x), new.eval().reconstruct(x))


def test_an_overrides_key_is_before_its_first_equals_sign_without_its_prefix() -> None:
    from nag.runs.overrides import override_key

    assert override_key("data.root=/a=b") == "data.root", "a value may hold '='"
    assert [override_key(o) for o in ("~prior.mean", "+x.y=1", "++x.y=1")] == ["prior.mean", "x.y", "x.y"]


def test_override_values_keep_a_value_whole_and_skip_deletions() -> None:
    from nag.runs.overrides import override_values

    given = ["data.root=/a=b", "~prior.mean", "~prior.variance=2", "+x.y=1", "seed=3"]
    assert override_values(given) == {"data.root": "/a=b", "x.y": "1", "seed": "3"}


def test_a_key_is_swept_when_two_jobs_differ_in_it_or_only_one_sets_it(tmp_path: Path) -> None:
    from nag.runs.discovery import swept_keys

    def job(name: str, *overrides: str) -> RunDir:
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        return RunDir(tmp_path / name)

    runs = [job("0", "prior.mean=0", "seed=1", "debug=tiny"), job("1", "prior.mean=1", "seed=1", "debug=tiny", "x=2")]
    assert swept_keys(runs) == ["prior.mean", "x"]
    assert swept_keys(runs[:1]) == []


def test_a_deletion_does_not_end_the_check_of_the_overrides_after_it() -> None:
    with pytest.raises(StoredOverrideError, match="entry 2: .*changes Hydra itself"):
        check_stored(["~prior.mean", "hydra.job.chdir=true"], Path("o.yaml"))


def test_the_checkpoint_to_continue_is_ckpt_path_or_the_resumed_runs_last(tmp_path: Path) -> None:
    from nag.config.errors import ConfigError, MissingFileError
    from nag.runs.resume import checkpoint_to_continue

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)

    def cfg(**keys):
        return OmegaConf.create({"resume": None, "ckpt_path": None, "paths": {"output_dir": str(run)}, **keys})

    assert checkpoint_to_continue(cfg()) is None
    assert checkpoint_to_continue(cfg(ckpt_path="other/last.ckpt")) == "other/last.ckpt"
    with pytest.raises(MissingFileError, match=r"^resume=.*/run: .*/run/checkpoints/last.ckpt does not exist"):
        checkpoint_to_continue(cfg(resume=str(run)))
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert checkpoint_to_continue(cfg(resume=str(run))) == str((run / "checkpoints" / "last.ckpt").resolve())
    with pytest.raises(ConfigError, match=r"^give resume=<run dir> or ckpt_path=<file>, not both"):
        checkpoint_to_continue(cfg(resume=str(run), ckpt_path="other/last.ckpt"))
    with pytest.raises(ConfigError, match=r"continues that run in its own directory, but this run writes to"):
        checkpoint_to_continue(cfg(resume=str(tmp_path)))


def test_an_output_folder_is_made_with_its_parents_on_the_first_file_only(tmp_path: Path) -> None:
    out = OutputDir(tmp_path / "new" / "report", what="--out")
    assert not (tmp_path / "new").exists()  # nothing made before a file is written
    path = out.file("figures/grid.png")
    assert path == tmp_path / "new" / "report" / "figures" / "grid.png" and path.parent.is_dir()
    for bad in ("/etc/x", "../x", ""):
        with pytest.raises(UnsafeFileError, match="is not a file name inside"):
            out.file(bad)


def test_json_integers_past_eighteen_digits_are_read_as_finite_floats_or_refused(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"a": 12345678901234567890, "b": 7}')
    assert load_json(tmp_path / "m.json") == {"a": 1.2345678901234567e19, "b": 7}
    (tmp_path / "m.json").write_text('{"a": 1' + "0" * 400 + "}")
    assert load_json(tmp_path / "m.json") == {"a": None}  # past a float: no value
    # the bound: 18 characters are still an exact int, 19 a float
    (tmp_path / "m.json").write_text('{"a": 123456789012345678, "b": 1234567890123456789}')
    m = load_json(tmp_path / "m.json")
    assert m["a"] == 123456789012345678 and type(m["a"]) is int and type(m["b"]) is float


def test_the_readers_pass_their_byte_limit_on(tmp_path: Path) -> None:
    from nag.io.files import read_text

    (tmp_path / "m.json").write_text('{"a": 1234567}')
    assert load_json(tmp_path / "m.json", limit=14) == {"a": 1234567}
    for read in (load_json, read_text):
        with pytest.raises(UnsafeFileError, match=r"m.json is larger than 13 bytes"):
            read(tmp_path / "m.json", limit=13)


def test_a_link_or_fifo_swapped_in_after_the_check_is_not_followed_nor_waited_on(tmp_path: Path, monkeypatch) -> None:
    """The race lstat cannot see: what is opened is refused by the open's own flags (O_NOFOLLOW, O_NONBLOCK)."""
    import nag.io.files as files

    (tmp_path / "secret.txt").write_text("the user's file")
    (tmp_path / "m.json").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(tmp_path / "pipe")
    regular = os.lstat(tmp_path / "secret.txt")
    monkeypatch.setattr(files.os, "lstat", lambda path: regular)  # the check saw a regular file; then the swap
    with pytest.raises(OSError) as e:
        files.read_bytes(tmp_path / "m.json")
    assert e.value.errno == errno.ELOOP, "the link is not followed"
    signal.alarm(10)  # a blocking open of a FIFO without a writer would hang here
    try:
        with pytest.raises(UnsafeFileError, match="pipe is not a regular file"):
            files.read_bytes(tmp_path / "pipe")
    finally:
        signal.alarm(0)


def test_yaml_nodes_are_counted_with_every_alias_followed_to_the_exact_limit() -> None:
    import yaml

    from nag.io.files import _expanded_size

    node = yaml.compose("a: &x [1, 2]\nb: *x\n")  # the mapping, 2 keys, the list and its 2 items twice: 9 nodes
    assert _expanded_size(node, 9) == 9
    with pytest.raises(ValueError, match="expands to more than 8 nodes"):
        _expanded_size(node, 8)
    assert _expanded_size(yaml.compose("[[1, 2], {k: v}]\n"), 100) == 7


def test_json_is_written_sorted_indented_by_two_and_non_finite_as_null(tmp_path: Path) -> None:
    from nag.io.output import write_json_atomic

    write_json_atomic(tmp_path / "m.json", {"b": float("nan"), "a": [1, float("inf")]})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": [\n    1,\n    null\n  ],\n  "b": null\n}'


@pytest.mark.parametrize("target", [5, None, ["os.system"], "system"], ids=str)
def test_a_target_that_is_not_a_dotted_name_is_refused_as_such(target: object) -> None:
    with pytest.raises(UntrustedConfigError, match=r"^hparams.prior._target_=.* is not a 'module.Class' name; refused"):
        check_target(target, "hparams.prior")


def test_a_target_holding_an_interpolation_is_refused_before_any_import() -> None:
    with pytest.raises(UntrustedConfigError, match=r"is not on nag's allow-list .* refused without importing it"):
        check_target("nag.model.priors.${oc.env:X}", "hparams.prior")

"""``python -m nag.compare <sweep dir> [--evaluate] [--metric M]``: compare the jobs of a sweep in one command.

Finds every job under the directory (a sweep dir ``multirun/<date>/<time>``, a run dir, or a folder of runs) and
writes ``<dir>/compare/``: ``summary.csv`` and ``summary.md`` (one row per job: the swept keys, status, final
metrics; with ``--evaluate`` also sample SWD, diversity, PSNR and SSIM of each best checkpoint against one real
baseline), ``samples.png`` (each job's prior samples, a table when two keys are swept) and
``<metric>_vs_<key>.png``. Failed and unreadable jobs are rows with their reason. What is compared is
:mod:`nag.analysis.compare`'s; the files are written here.

Examples:
  python -m nag.train -m experiment=quickstart prior.mean=-3,0,3 matching=none,mmd_imq trainer.max_epochs=1
  python -m nag.compare multirun/2026-11-28/10-00-00
  python -m nag.compare multirun/2026-11-28/10-00-00 --evaluate --metric diversity
  python -m nag.compare multirun/2026-11-28/10-00-00 --samplers prior,gmm,flow   # the benchmark table
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
from pathlib import Path
from typing import Any

from nag.config.console import quiet_third_party
from nag.config.errors import UserInputError, reported_as_exit
from nag.config.fid_flags import add_fid_arguments, fid_options

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    """The command line (the README's commands are checked against it)."""
    p = argparse.ArgumentParser(
        prog="python -m nag.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("root", type=Path, help="a sweep dir (multirun/<date>/<time>), a run dir or a folder of runs")
    p.add_argument("--evaluate", action="store_true", help="evaluate each job's best checkpoint (sample SWD, ...)")
    p.add_argument("--metric", help="the plotted column (default: sample_swd with --evaluate, else latent_mmd)")
    p.add_argument("--out", type=Path, help="output folder (default: <root>/compare)")
    p.add_argument("--n-eval", type=int, default=500, help="real test images of the shared baseline (--evaluate)")
    p.add_argument("--n-samples", type=int, default=500, help="generated images per job (--evaluate)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--pick-lambda",
        action="store_true",
        help="from a λ search (experiment=benchmark_lambda): each distance's benchmark λ, into compare/lambda.md",
    )
    p.add_argument(
        "--samplers",
        help="score each job with each of these samplers, e.g. prior,gmm,flow (implies "
        "--evaluate): compare/samplers.md, samplers.csv, attribute_gaps.csv",
    )
    p.add_argument(
        "--judges",
        type=int,
        default=1,
        metavar="N",
        help="with --samplers: score the attribute frequencies with N attribute judges (the same network trained "
        "from seeds 0..N-1, each cached) and report how far their verdicts on the same samples differ: "
        "judge_gap_spread in samplers.md, judge_spread.csv (default 1; at most 10)",
    )
    add_fid_arguments(p)
    return p


def _numeric(values: list[Any]) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError, OverflowError):
        return False


#: Characters that make a spreadsheet read a cell as a formula (OWASP's CSV-injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A CSV cell that a spreadsheet shows as text: one starting like a formula gets a leading ``'``, unless it
    is a plain number (``-3`` stays a number)."""
    if not cell.startswith(_FORMULA_START):
        return cell
    try:
        float(cell)
        return cell
    except ValueError:
        return "'" + cell


def _csv(cols: list[str], rows: list[list[Any]]) -> str:
    """A CSV file's text: the cells as in the markdown tables (:func:`nag.analysis.tables.cell`), each escaped."""
    from nag.analysis.tables import cell

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(cols)
    writer.writerows([spreadsheet_safe(cell(v)) for v in row] for row in rows)
    return buffer.getvalue()


def write_samplers(table: Any, out: Any) -> list[Path]:
    """The benchmark table (:mod:`nag.analysis.benchmark`): samplers.md, samplers.csv, benchmark.md (one row per
    job), attribute_gaps.csv, (with --judges) judge_spread.csv, (with attributes and ex-post samplers)
    rare_features.csv and (on a sweep of ``seed``)
    over_seeds.md and over_seeds.csv, each number's spread over the seeds (:mod:`nag.analysis.spread`)."""
    from nag.analysis import benchmark, spread

    files = [
        out.write_text("samplers.md", benchmark.markdown(table)),
        out.write_text("benchmark.md", benchmark.by_job_markdown(table)),
        out.write_text("samplers.csv", _csv(*benchmark.csv_rows(table))),
        out.write_text("attribute_gaps.csv", _csv(*benchmark.attribute_rows(table))),
    ]
    if any(r.get("judge_spread") is not None for r in table.rows):
        files.append(out.write_text("judge_spread.csv", _csv(*benchmark.judge_rows(table))))
    if table.rare:
        samplers = list(dict.fromkeys(r["sampler"] for r in table.rows))
        files.append(out.write_text("rare_features.csv", _csv(*benchmark.rare_rows(table, samplers))))
    entries = spread.over_seeds(table)
    if entries:  # a sweep over `seed`: each number's spread over the seeds
        files.append(out.write_text("over_seeds.md", spread.markdown(entries, table)))
        files.append(out.write_text("over_seeds.csv", _csv(*spread.csv_rows(entries, table))))
    return files


def write(result: Any, out: Any) -> None:
    """The comparison as files in ``out`` (an :class:`~nag.io.output.OutputDir`): summary.csv (cells escaped),
    summary.md, summary.json, samples.png and ``<metric>_vs_<key>.png``, each written atomically."""
    from nag.analysis import plots
    from nag.analysis.compare import markdown
    from nag.io.output import safe_name

    grids, metric = result.grids, result.metric
    cols = [*result.columns, "reason"]
    summary = _csv(cols, [[r.get(c) for c in cols] for r in result.rows])
    files = [out.write_text("summary.csv", summary), out.write_text("summary.md", markdown(result))]
    out.write_json("summary.json", {"rows": result.rows, "baseline": result.baseline})
    labels = [{k: str(r.get(k, "")) for k in result.keys} for r in result.rows]
    notes = [f"{r['status']}: {r['reason']}"[:60] if r["reason"] else r["status"] for r in result.rows]
    files.append(out.write_bytes("samples.png", plots.sample_table(grids, labels, result.keys, notes)))
    numeric = [k for k in result.keys if _numeric([r.get(k) for r in result.rows if r.get(k) != ""])]
    if numeric:
        key = numeric[0]
        png = plots.metric_vs_key(result.rows, metric, key, [k for k in result.keys if k != key])
        files.append(out.write_bytes(f"{safe_name(f'{metric}_vs_{key}')}.png", png))
    else:
        log.info("no numeric swept key: no %s plot", metric)
    if result.samplers is not None:
        files += write_samplers(result.samplers, out)
    result.files += files


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_third_party()
    with reported_as_exit():
        from nag.analysis.compare import compare, table
        from nag.io.output import OutputDir

        # The output folder first: one that is a link is refused before any work.
        out = OutputDir(args.out, "--out") if args.out else OutputDir(args.root / "compare", "the compare folder")
        from nag.analysis.benchmark import markdown, parse_samplers

        samplers = parse_samplers(args.samplers) if args.samplers else None
        if not 1 <= args.judges <= 10 or (args.judges > 1 and not samplers):
            raise UserInputError(f"--judges {args.judges}: give 1 to 10, with --samplers (the judges score samples).")

        def partial(table: Any) -> None:  # the table so far, after each job (a killed comparison keeps it)
            write_samplers(table, out)

        result = compare(
            args.root,
            args.evaluate,
            args.metric,
            args.n_eval,
            args.n_samples,
            args.device,
            fid=fid_options(args),
            samplers=samplers,
            on_job=partial,
            judges=args.judges,
        )
        write(result, out)
        print(table(result))
        if result.samplers is not None:
            print(markdown(result.samplers))
        if args.pick_lambda:
            from nag.analysis.benchmark import pick_lambdas, picks_markdown

            text = picks_markdown(pick_lambdas(result.rows))
            result.files.append(out.write_text("lambda.md", text))
            print(text)
        print("written: " + ", ".join(str(f) for f in result.files))


if __name__ == "__main__":
    main()

"""`gansvr-eval`: Chamfer-L1, F-score and volumetric IoU of predicted meshes against a dataset's ground truth.

    gansvr-eval --pred outputs/meshes --data data/gan-car [--split test] [--output FILE.json] [--baseline]

Prints a table (one row per instance, then the mean) and writes the same numbers as JSON.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Literal, Optional

import tyro
from rich.console import Console
from rich.table import Table

from gansvr_ns.data.format import write_json
from gansvr_ns.eval.evaluate import PREDICTION_SUFFIXES, another_instance_baseline, evaluate_predictions
from gansvr_ns.eval.metrics import MetricConfig, fscore_keys
from gansvr_ns.scripts import check_output_path


@dataclass
class EvaluateConfig:
    """Evaluate a folder of predicted meshes against the ground-truth meshes of a dataset split."""

    pred: Path
    """Folder of predicted meshes, one `<instance_id>.ply` (or .obj, .glb) per instance, in the canonical frame."""
    data: Path
    """Dataset folder in the gansvr-pseudoviews/1 format whose instances have a ground-truth `mesh.ply`."""
    split: Literal["train", "val", "test"] = "test"
    """Which split of the dataset to evaluate."""
    output: Optional[Path] = None
    """Where to write the JSON results; default `<pred>/eval_<split>.json`."""
    baseline: bool = False
    """Also compute the another-instance baseline: mean Chamfer-L1 between ground truths of different instances."""
    metrics: MetricConfig = field(default_factory=MetricConfig)
    """How the metrics are computed."""


def _columns(config: MetricConfig) -> Dict[str, str]:
    """Metric key -> column title of the table."""
    columns = {"chamfer_l1": "CD-L1", "accuracy": "acc", "completeness": "comp"}
    columns.update({fscore_keys(tau)[0]: f"F@{tau:g}" for tau in config.fscore_taus})
    columns["iou"] = "IoU"
    return columns


def results_table(results: Dict, config: MetricConfig) -> Table:
    """A rich table: one row per instance of the split (missing ones marked), the mean, the baseline if any."""
    columns = _columns(config)
    table = Table(title=f"{results['split']}: {results['num_evaluated']} of {results['num_instances']} evaluated")
    # in a narrow terminal or a log (80 columns) the ids fold onto more lines; the figures are never cut short
    table.add_column("instance", overflow="fold", min_width=10)
    for title in columns.values():
        table.add_column(title, justify="right", no_wrap=True, min_width=max(len(title), 6))
    evaluated = results["per_instance"]
    for instance_id in sorted(list(evaluated) + results["missing"]):
        if instance_id in evaluated:
            label = f"{instance_id} (empty)" if instance_id in results["empty"] else instance_id
            table.add_row(label, *(f"{evaluated[instance_id][key]:.4f}" for key in columns))
        else:
            table.add_row(f"[dim]{instance_id}[/dim]", *(["[dim]missing[/dim]"] + [""] * (len(columns) - 1)))
    table.add_section()
    table.add_row("[bold]mean[/bold]", *(f"[bold]{results['mean'][key]:.4f}[/bold]" for key in columns))
    if "another_instance_baseline" in results:
        cells = [f"{results['another_instance_baseline']:.4f}"] + [""] * (len(columns) - 1)
        table.add_row("another-instance baseline", *cells)
    return table


def check_output(output: Path, pred: Path, data: Path) -> None:
    """A ValueError, before any work, when the JSON cannot or must not be written at `output`: it is a folder, a
    folder above it is a file, or it is a file the evaluation reads (a prediction mesh in `pred`, anything in the
    dataset `data`)."""
    check_output_path(output, "--output")
    if not output.is_file():
        return
    target = output.resolve()
    read = (target.parent == pred.resolve() and target.suffix.lower() in PREDICTION_SUFFIXES) or (
        data.resolve() in target.parents)
    if read:
        raise ValueError(f"{output}: a file the evaluation reads, which --output would replace (choose another)")


def main(config: EvaluateConfig) -> Dict:
    """Evaluate, print the table and a summary, write the JSON; returns the results."""
    console = Console()
    output = config.output or config.pred / f"eval_{config.split}.json"
    check_output(output, config.pred, config.data)
    # the baseline first: a split it cannot be computed on fails before the evaluation's work, not after it
    baseline = (
        another_instance_baseline(config.data, config.split, config.metrics, progress=True) if config.baseline else None
    )
    results = evaluate_predictions(config.pred, config.data, config.split, config.metrics, progress=True)
    if baseline is not None:
        results["another_instance_baseline"] = baseline
    write_json(output, results)
    console.print(results_table(results, config.metrics))
    if results["missing"]:
        names = "/".join(PREDICTION_SUFFIXES)
        console.print(
            f"[yellow]{len(results['missing'])} of {results['num_instances']} instances have no prediction "
            f"<id>{names} in {config.pred}; the means leave them out.[/yellow]",
            soft_wrap=True,
        )
    if results["empty"]:
        console.print(f"[yellow]{len(results['empty'])} predictions are empty meshes (worst-case values).[/yellow]")
    console.print(f"Wrote metrics of {results['num_evaluated']} instances to {output}", soft_wrap=True)
    return results


def entrypoint() -> None:
    """Console script: bad input ends with one line on stderr and exit code 2, never a traceback."""
    try:
        main(tyro.cli(EvaluateConfig))
    except (ValueError, OSError) as err:  # FormatError is a ValueError
        print(f"gansvr-eval: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entrypoint()

"""Benchmark of gansvr-voxel through the real command lines: train, reconstruct the test split, score it.

    python scripts/benchmark_voxel.py --data /tmp/voxel-car --train-args="--max-num-iterations 600"
    python scripts/benchmark_voxel.py --data /tmp/voxel-car --load-config RUN/config.yml --compare OTHER/config.yml

Trains with `ns-train gansvr-voxel` (unless `--load-config` names a run), reconstructs the test split's input images
and the same instances rendered by a different renderer (`gansvr_ns/eval/shifted.py`) with `gansvr-reconstruct`,
and scores both with `evaluate_predictions` (Chamfer-L1, F-score, IoU) beside the "another instance" baseline.
Runs given with `--compare` (gansvr or gansvr-voxel, trained on the same dataset) get the same treatment, so the
table compares methods on identical inputs. Times are wall-clock times of the commands (process start included).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional

import tyro

BIN = Path(sys.executable).parent


def run_command(*args) -> float:
    """Run a command (output discarded unless it fails); return its wall time in seconds."""
    start = time.perf_counter()
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(str(args[0])).name} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return time.perf_counter() - start


def train_voxel(data: Path, output_dir: Path, train_args: str) -> tuple[Path, float]:
    """`ns-train gansvr-voxel` on `data`; returns the run's config.yml and the command's wall time."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    seconds = run_command(BIN / "ns-train", "gansvr-voxel", "--data", data, "--output-dir", output_dir,
                          "--timestamp", stamp, *shlex.split(train_args))
    return output_dir / data.name / "gansvr-voxel" / stamp / "config.yml", seconds


def method_of(config: Path) -> str:
    """The `method_name` written in a run's config.yml."""
    found = re.search(r"^method_name: (\S+)$", config.read_text(), flags=re.MULTILINE)
    return found.group(1) if found else "?"


def score_run(config: Path, data: Path, shifted: Dict[str, Path], resolution: int) -> Dict:
    """Reconstruct the test inputs and the shifted inputs of one run with `gansvr-reconstruct`, and score both."""
    from gansvr_ns.eval.evaluate import evaluate_predictions

    run = config.parent
    result = {"config": str(config), "method": method_of(config)}
    input_sets = {"test": ["--data", data, "--split", "test"], "other_renderer": ["--images", *shifted.values()]}
    for name, inputs in input_sets.items():
        out = run / f"meshes_{name}"
        seconds = run_command(BIN / "gansvr-reconstruct", "--load-config", config, *inputs, "--output-dir", out,
                              "--resolution", resolution)
        per_image = json.loads((out / "reconstruct.json").read_text())["seconds_per_image"]
        scores = evaluate_predictions(out, data, "test")
        result[name] = {**scores["mean"], "empty": len(scores["empty"]), "command_seconds": seconds,
                        "seconds_per_image": per_image}
    return result


def benchmark_voxel(data: Path, train_args: str = "", load_config: Optional[Path] = None, compare: List[Path] = (),
                    output_dir: Path = Path("outputs/benchmark-voxel"), resolution: int = 128) -> Dict:
    """Train (or load) a gansvr-voxel run, score it and the `compare` runs on the test split; see the module doc."""
    from gansvr_ns.data.dataparser import ensure_dataset
    from gansvr_ns.eval.evaluate import another_instance_baseline
    from gansvr_ns.eval.shifted import write_shifted_inputs

    data = ensure_dataset(Path(data))
    train_seconds = None
    if load_config is None:
        load_config, train_seconds = train_voxel(data, output_dir, train_args)
    shifted = write_shifted_inputs(data, "test", load_config.parent / "shifted_inputs")
    runs = [score_run(config, data, shifted, resolution) for config in [load_config, *compare]]
    return {"data": str(data), "train_args": train_args, "train_seconds": train_seconds, "resolution": resolution,
            "another_instance_chamfer": another_instance_baseline(data, "test"), "runs": runs}


def table(result: Dict) -> str:
    """Markdown table of every run and input set."""
    baseline = result["another_instance_chamfer"]
    lines = ["| run | inputs | Chamfer-L1 | / another instance | F@0.05 | IoU | empty | s / image |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in result["runs"]:
        label = f"{run['method']} ({Path(run['config']).parent.name})"
        for name in ("test", "other_renderer"):
            m = run[name]
            lines.append(f"| {label} | {name.replace('_', ' ')} | {m['chamfer_l1']:.4f} "
                         f"| {m['chamfer_l1'] / baseline:.2f} | {m['fscore@0.05']:.3f} | {m['iou']:.3f} "
                         f"| {m['empty']} | {m['seconds_per_image']:.2f} |")
    lines.append(f"| another instance | test | {baseline:.4f} | 1.00 | | | | |")
    if result["train_seconds"] is not None:
        minutes = result["train_seconds"] / 60
        lines.append(f"\nns-train gansvr-voxel {result['train_args']}: {minutes:.1f} min wall time")
    return "\n".join(lines)


@dataclass
class VoxelBenchmark:
    """Train gansvr-voxel through ns-train, reconstruct the test split with gansvr-reconstruct, score it."""

    data: Path = Path("data/gan-car")
    """Dataset with ground-truth meshes (a missing preset path is generated first)."""
    train_args: str = ""
    """Extra ns-train flags, given with an equals sign: --train-args="--max-num-iterations 600"."""
    load_config: Optional[Path] = None
    """Skip training and benchmark this existing gansvr-voxel run instead."""
    compare: List[Path] = field(default_factory=list)
    """config.yml of further runs (gansvr or gansvr-voxel, same dataset) scored on the same inputs."""
    output_dir: Path = Path("outputs/benchmark-voxel")
    """Where the training run goes."""
    resolution: int = 128
    """Marching-cubes resolution of the reconstructions."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <run>/voxel_benchmark.json)."""

    def main(self) -> Dict:
        result = benchmark_voxel(self.data, self.train_args, self.load_config, self.compare, self.output_dir,
                                 self.resolution)
        out = self.output or Path(result["runs"][0]["config"]).parent / "voxel_benchmark.json"
        out.write_text(json.dumps(result, indent=2))
        print(table(result))
        print(f"\nWrote {out}")
        return result


if __name__ == "__main__":
    tyro.cli(VoxelBenchmark).main()

"""Benchmarks of gansvr that print figures (none of them is a test).

    python scripts/benchmark.py quality [--data data/gan-car] [--train-args "--max-num-iterations 300"]
    python scripts/benchmark.py throughput [--data data/gan-car]
    python scripts/benchmark.py inference --load-config CONFIG

quality:    trains with the real `ns-train gansvr` CLI, reconstructs the test split's input images and the same
            instances rendered by a different renderer (gansvr_ns/eval/shifted.py), and reports Chamfer-L1,
            F-score, IoU, the "another instance" baseline, train time and seconds per reconstructed image.
throughput: rays per second of a training step, and its FLOP/s (counted by torch's FlopCounterMode over a real
            step) as a fraction of this machine's fp32 GEMM rate, measured in the same run.
inference:  seconds per image of the reconstruction at resolution 128 and 256.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Dict, Optional, Union

import torch
import tyro
from typing_extensions import Annotated

BIN = Path(sys.executable).parent


def train(data: Path, output_dir: Path, train_args: str) -> tuple[Path, float]:
    """Run `ns-train gansvr`; return the run's config.yml and the wall time of the command."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    cmd = [str(BIN / "ns-train"), "gansvr", "--data", str(data), "--output-dir", str(output_dir),
           "--timestamp", stamp, *shlex.split(train_args)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return output_dir / data.name / "gansvr" / stamp / "config.yml", seconds


def reconstruct_all(pipeline, images: Dict[str, Path], out: Path, resolution: int) -> float:
    """Reconstruct every image to `out/<id>.ply`; returns the mean seconds per image."""
    from gansvr_ns.data.format import load_rgb
    from gansvr_ns.model.mesh import reconstruct_mesh, save_mesh

    seconds = []
    for name, path in images.items():
        image = torch.from_numpy(load_rgb(path)).permute(2, 0, 1)[None]
        start = time.perf_counter()
        mesh = reconstruct_mesh(pipeline.model, image, resolution)
        seconds.append(time.perf_counter() - start)
        save_mesh(mesh, out / name, ["ply"])
    return sum(seconds) / len(seconds)


@dataclass
class Quality:
    """Train, reconstruct the test split, and score it against ground truth and the another-instance baseline."""

    data: Path = Path("data/gan-car")
    """Dataset (a missing preset path is generated first)."""
    train_args: str = ""
    """Extra ns-train flags, e.g. "--max-num-iterations 300"."""
    load_config: Optional[Path] = None
    """Skip training and benchmark this existing run instead."""
    output_dir: Path = Path("outputs/benchmark")
    """Where runs and meshes go."""
    resolution: int = 128
    """Marching-cubes resolution of the reconstructions."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <run>/quality.json)."""

    def main(self) -> Dict:
        from gansvr_ns.data.dataparser import ensure_dataset
        from gansvr_ns.eval.evaluate import another_instance_baseline, evaluate_predictions
        from gansvr_ns.eval.shifted import write_shifted_inputs
        from gansvr_ns.scripts.reconstruct import load_pipeline

        data = ensure_dataset(self.data)
        train_seconds = None
        config = self.load_config
        if config is None:
            config, train_seconds = train(data, self.output_dir, self.train_args)
        run = config.parent
        pipeline = load_pipeline(config)
        ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
        inputs = {i: data / i / "input.png" for i in ids}
        shifted = write_shifted_inputs(data, "test", run / "shifted_inputs")
        seconds = reconstruct_all(pipeline, inputs, run / "meshes", self.resolution)
        reconstruct_all(pipeline, shifted, run / "meshes_shifted", self.resolution)
        own = evaluate_predictions(run / "meshes", data, "test")["mean"]
        other = evaluate_predictions(run / "meshes_shifted", data, "test")["mean"]
        baseline = another_instance_baseline(data, "test")
        result = {
            "data": str(data), "run": str(config), "machine": machine(),
            "train_seconds": train_seconds, "reconstruct_seconds_per_image": seconds, "resolution": self.resolution,
            "test": own, "test_other_renderer": other, "another_instance_chamfer": baseline,
            "chamfer_ratio": own["chamfer_l1"] / baseline,
            "chamfer_ratio_other_renderer": other["chamfer_l1"] / baseline,
        }
        out = self.output or run / "quality.json"
        out.write_text(json.dumps(result, indent=2))
        print(quality_table(result))
        print(f"\nWrote {out}")
        return result


def quality_table(r: Dict) -> str:
    rows = [("test inputs", r["test"]), ("other renderer", r["test_other_renderer"])]
    lines = ["| inputs | Chamfer-L1 | / another instance | F@0.05 | IoU |", "| --- | --- | --- | --- | --- |"]
    for name, m in rows:
        ratio = m["chamfer_l1"] / r["another_instance_chamfer"]
        lines.append(f"| {name} | {m['chamfer_l1']:.4f} | {ratio:.2f} | {m['fscore@0.05']:.3f} | {m['iou']:.3f} |")
    lines.append(f"| another instance | {r['another_instance_chamfer']:.4f} | 1.00 | | |")
    train = "n/a" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f} min"
    lines.append(f"\ntrain: {train}; reconstruction: {r['reconstruct_seconds_per_image']:.2f} s per image "
                 f"at resolution {r['resolution']}")
    return "\n".join(lines)


def machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " + (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")


def gemm_flops(size: int = 1024, repeats: int = 20) -> float:
    """fp32 GEMM rate of this machine: 2 n^3 flops per n x n matmul, best of a few timed batches."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best


@dataclass
class Throughput:
    """Rays/s of a training step and its FLOP/s as a fraction of the machine's fp32 GEMM rate."""

    data: Path = Path("data/gan-car")
    """Dataset to draw batches from."""
    steps: int = 10
    """Timed training steps (after 3 warm-up steps)."""

    def main(self) -> Dict:
        from torch.utils.flop_counter import FlopCounterMode

        from gansvr_ns.data.dataparser import ensure_dataset
        from gansvr_ns.method_config import gansvr_config

        config = gansvr_config()
        config.pipeline.datamanager.data = ensure_dataset(self.data)
        pipeline = config.pipeline.setup(device="cpu", test_mode="val")
        optimizer = torch.optim.Adam(pipeline.parameters(), lr=1e-4)

        def step(i: int) -> None:
            _, losses, _ = pipeline.get_train_loss_dict(i)
            sum(losses.values()).backward()
            optimizer.step()
            optimizer.zero_grad()

        for i in range(3):
            step(i)
        counter = FlopCounterMode(display=False)
        with counter:
            step(3)
        flops_per_step = counter.get_total_flops()
        start = time.perf_counter()
        for i in range(self.steps):
            step(4 + i)
        seconds = (time.perf_counter() - start) / self.steps
        gemm = gemm_flops()
        rays = pipeline.datamanager.get_train_rays_per_batch()
        result = {
            "machine": machine(), "rays_per_step": rays, "seconds_per_step": seconds, "rays_per_second": rays / seconds,
            "flops_per_step": flops_per_step, "flops_per_second": flops_per_step / seconds,
            "gemm_flops_per_second": gemm,
            "fraction_of_gemm": flops_per_step / seconds / gemm,
        }
        print(json.dumps(result, indent=2))
        return result


@dataclass
class Inference:
    """Seconds per image of the reconstruction at resolutions 128 and 256."""

    load_config: Path
    """A gansvr run's config.yml."""
    images: int = 5
    """Images timed per resolution (the test split's inputs of the run's dataset)."""

    def main(self) -> Dict:
        from gansvr_ns.data.format import load_rgb, read_dataset
        from gansvr_ns.model.mesh import reconstruct_mesh
        from gansvr_ns.scripts.reconstruct import load_pipeline

        pipeline = load_pipeline(self.load_config)
        info = read_dataset(pipeline.datamanager.get_datapath())
        paths = [info.root / i / "input.png" for i in info.instances("test")][: self.images]
        images = [torch.from_numpy(load_rgb(p)).permute(2, 0, 1)[None] for p in paths]
        reconstruct_mesh(pipeline.model, images[0], 64)  # warm-up
        result = {"machine": machine()}
        for resolution in (128, 256):
            start = time.perf_counter()
            for image in images:
                reconstruct_mesh(pipeline.model, image, resolution)
            result[f"seconds_per_image_{resolution}"] = (time.perf_counter() - start) / len(images)
        print(json.dumps(result, indent=2))
        return result


Commands = Union[
    Annotated[Quality, tyro.conf.subcommand("quality")],
    Annotated[Throughput, tyro.conf.subcommand("throughput")],
    Annotated[Inference, tyro.conf.subcommand("inference")],
]

if __name__ == "__main__":
    tyro.cli(Commands).main()

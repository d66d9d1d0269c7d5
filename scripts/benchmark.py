"""Benchmarks of gansvr that print figures (none of them is a test).

    python scripts/benchmark.py quality [--data data/gan-car] [--train-args "--max-num-iterations 300"]
    python scripts/benchmark.py throughput [--data data/gan-car]
    python scripts/benchmark.py inference --load-config CONFIG
    python scripts/benchmark.py ablations [--quick] [--output outputs/ablations/ablations.json]
    python scripts/benchmark.py domain [--data data/gan-car] [--methods gansvr gansvr-voxel] [--load-configs NAME=PATH]
    python scripts/benchmark.py hull-bound [--data data/gan-car]
    python scripts/benchmark.py prior-bound [--data data/gan-car] [--load-config RUN/config.yml]
    python scripts/benchmark.py architecture-bound [--data data/gan-car] [--load-config RUN/config.yml]
    python scripts/benchmark.py supervision-bound [--data data/gan-car-exact] [--instances 8] [--train-args "..."]
    python scripts/benchmark.py encoder-probe [--data data/gan-car] [--load-config RUN/config.yml]
    python scripts/benchmark.py pose-search --load-config RUN/config.yml [--resolutions 40 64] [--image-sizes 64 0]
    python scripts/benchmark.py framing --load-config RUN/config.yml [--data data/gan-car]

quality:    trains with the real `ns-train gansvr` CLI, reconstructs the test split's input images and the same
            instances rendered by a different renderer (gansvr_ns/eval/shifted.py), and reports Chamfer-L1,
            F-score, IoU, the "another instance" baseline, train time and seconds per reconstructed image.
throughput: rays per second of a training step, and its FLOP/s (counted by torch's FlopCounterMode over a real
            step) as a fraction of this machine's fp32 GEMM rate, measured in the same run: all of the step's FLOPs,
            and those of its matrix products alone (the MLPs; the rest are the CNNs' convolutions).
inference:  seconds per image of the reconstruction at resolution 128 and 256.
ablations:  trains every variant of ABLATION_VARIANTS with `ns-train gansvr` at one iteration budget and seed list on
            a procedural car set with GAN-like flaws, and reports Chamfer-L1, F-score, IoU, train time and the pose
            error of the refined (or, without refinement, the rough) poses, mean and std over seeds. Resumable: a
            (variant, seed) already in the output JSON is skipped. `--quick` is the 20-minute version.
domain:     the real-photo gap. Renders the train split's instances with the other renderer of
            gansvr_ns/eval/shifted.py into a folder of unlabeled stand-in "real photos", trains (same step budget,
            schedules compressed to it) gansvr and gansvr-voxel, each without and with real-image alignment on that
            folder, and scores each on the test split's input images and on the test instances from the other renderer.
            Resumable: a run already scored in the output JSON is skipped; `--load-configs` scores existing runs.
hull-bound: what silhouettes alone can give: each test instance's visual hull carved from all of its own pseudo views
            under the rough and the true poses, scored like reconstructions (a reference, not a method).
prior-bound: what a shape prior without per-image detail can give: every test instance answered with the mean of the
            train split's ground-truth shapes, and with the mean of its own subtype's (where the generator lists
            subtypes), scored like reconstructions (a reference, not a method). With a run's config, the same
            averages of its reconstructions of the train split: what they keep is the run's shared bias.
latent-bound: how much of each test instance the run's decoder can show through its latent at all: a latent per
            instance fitted to all of its own pseudo views (true or rough poses), decoder frozen, scored like
            reconstructions against the encoder's latent of the input image (a reference, not a method).
architecture-bound: what the SDF field's architecture can hold: the field, with a free latent per shape, fitted to
            the train split's ground-truth occupancy and scored against those shapes, beside a run's reconstructions
            of the same shapes from their input images (a reference, not a method: it trains on 3D ground truth).
supervision-bound: how closely the pseudo views pin a shape down: the method trained on a few train instances, so
            that it sees each far more often, and scored on those same instances (a reference, not a method).
encoder-probe: can the model's image encoder, trained from scratch in the default step budget, tell the generator's
            subtypes apart on held-out instances when it is given the labels; and, for a trained run, do its latents
            (1-nearest neighbour) tell them apart, and how far apart are the latents of two views of one instance
            against those of two instances (a diagnostic, not a method).
pose-search: the pose search of a finished run, once more over its train views from their refined poses, at other
            grid resolutions and priors: the train cameras' rotation error against the true poses before and after,
            split into pitch, yaw and roll in each true camera's frame (a diagnostic; the run is left as it was).
framing:    what `gansvr-reconstruct`'s framing of masked photos is worth: the test split's input images made into
            "photos" (the object scaled and moved on a larger 4:3 canvas, as a cut-out with transparency and as the
            whole image with a mask file), reconstructed with `--frame never` and `--frame auto`, beside the inputs
            as they are, in place as cut-outs, and framed with `--frame always` (what the estimate costs); framed
            by the reconstruction (the default) and by the mask's box alone (`--no-refine-framing`).
masks:      how well `gansvr-reconstruct --estimate-masks` finds the object (no run needed): mean IoU with the true
            masks of the test split's images from the other renderer as they are, as JPEG, and scaled up as a photo's
            soft edges, and of the generator's own input images.
uncertainty-flaws: does a run's image uncertainty head give the generator's flawed pseudo views a higher sigma than
            its clean ones (mean sigma inside the mask per flaw kind; a diagnostic of the first claim).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, List, Literal, Optional, Tuple, Union

import torch
import tyro
from typing_extensions import Annotated

BIN = Path(sys.executable).parent


# ------------------------------------------------------------------------------------------------------------------
# Bad input, found before any long work: a ValueError (or FormatError) naming the path; `entrypoint` prints it


def check_run_config(config: Path) -> None:
    """A ValueError naming the file unless `config` is a gansvr (or gansvr-voxel) run's config.yml with a
    checkpoint, as `load_pipeline` will want it."""
    from gansvr_ns.scripts.reconstruct import run_checkpoint

    run_checkpoint(config)


def check_output(path: Optional[Path], option: str, folder: bool = False) -> None:
    """A ValueError naming the path when a file (`folder`: a folder) cannot be made at `path`: a folder (a file) is
    there, or the nearest existing folder above it is a file or not writable. None is a default, not checked."""
    from gansvr_ns.scripts import check_output_path

    if path is None:
        return
    existing = check_output_path(path, option, folder)
    if not path.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{existing}: not writable, so {option} {path} cannot be written")


def checked_dataset(data: Path) -> Path:
    """`data` as a dataset: a missing preset path (data/<preset>) generated first, then its dataset.json read; a
    missing folder that names no preset, or one without a valid dataset.json, is an error naming it."""
    from gansvr_ns.data.dataparser import ensure_dataset
    from gansvr_ns.data.format import read_dataset
    from gansvr_ns.data.presets import preset_names

    if not data.exists() and data.name not in preset_names():
        raise ValueError(f"{data}: dataset folder does not exist (and '{data.name}' is none of the presets "
                         f"{', '.join(preset_names())}, which are generated when missing)")
    read_dataset(ensure_dataset(data))
    return data


def train(data: Path, output_dir: Path, train_args: str, method: str = "gansvr") -> tuple[Path, float]:
    """Run `ns-train <method>`; return the run's config.yml and the wall time of the command."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    cmd = [str(BIN / "ns-train"), method, "--data", str(data), "--output-dir", str(output_dir),
           "--timestamp", stamp, *shlex.split(train_args)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return output_dir / data.name / method / stamp / "config.yml", seconds


def reconstruct_all(pipeline, images: Dict[str, Path], out: Path, resolution: int,
                    masks: Optional[Dict[str, Path]] = None) -> float:
    """Reconstruct every image to `out/<id>.ply` (gansvr or gansvr-voxel run), with `masks` on grey by its mask as a
    cut-out reads; returns the mean seconds per image."""
    from tqdm import tqdm

    from gansvr_ns.data.format import load_mask, load_rgb
    from gansvr_ns.model.mesh import save_mesh
    from gansvr_ns.scripts.reconstruct import encoder_image, mesh_reconstructor

    reconstruct_mesh = mesh_reconstructor(pipeline.model)
    seconds = []
    for name, path in tqdm(images.items(), desc="reconstructing", unit="image", leave=False):
        image = encoder_image(load_rgb(path), None if masks is None else load_mask(masks[name]))
        start = time.perf_counter()
        mesh = reconstruct_mesh(image, resolution)
        seconds.append(time.perf_counter() - start)
        save_mesh(mesh, out / name, ["ply"])
    return sum(seconds) / len(seconds)


def reconstruct_as_the_command(config: Path, out: Path, resolution: int, **options) -> float:
    """Reconstruct as `gansvr-reconstruct` does (framing, cameras and the fit to the mask where an image's mask is
    known; `options` are its settings, e.g. data=..., split="test", or images=[...], masks=[...]); returns its mean
    seconds per image."""
    from gansvr_ns.scripts.reconstruct import ReconstructConfig

    ReconstructConfig(load_config=config, output_dir=out, resolution=resolution, **options).main()
    return json.loads((out / "reconstruct.json").read_text())["seconds_per_image"]


def extent_ratios(pred_dir: Path, data: Path, ids: List[str]) -> Optional[List[float]]:
    """Mean over `ids` of each reconstruction's bounding-box size along x, y and z divided by its ground truth's (the
    canonical frame: x front, y left, z up); 1 is the right size, above 1 too fat. None when a mesh is missing."""
    import numpy as np
    import trimesh

    ratios = []
    for instance in ids:
        path = pred_dir / f"{instance}.ply"
        if not path.is_file():
            return None
        pred, gt = (trimesh.load(p, process=False) for p in (path, data / instance / "mesh.ply"))
        if len(pred.vertices) == 0:
            return None
        ratios.append(np.ptp(pred.vertices, axis=0) / np.ptp(gt.vertices, axis=0))
    return [float(r) for r in np.mean(ratios, axis=0)]


@contextmanager
def encoding_with(model, encode: Callable[[torch.Tensor], torch.Tensor]):
    """Within the block, `model` encodes images with `encode` (images -> latents) instead of its encoder."""
    model.encode = encode
    try:
        yield
    finally:
        del model.encode  # the instance attribute hid the class's method


def mean_train_latent(model, data: Path):
    """A block in which `model` encodes every image to the mean latent of the train split's input images."""
    from gansvr_ns.data.format import load_rgb

    ids = json.loads((data / "dataset.json").read_text())["splits"]["train"]
    images = torch.stack([torch.from_numpy(load_rgb(data / i / "input.png")).permute(2, 0, 1) for i in ids])
    with torch.no_grad():
        mean = model.encode(images).mean(dim=0, keepdim=True)
    return encoding_with(model, lambda images: mean.expand(len(images), -1))


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
    mean_latent: bool = True
    """Also reconstruct the test inputs with the mean latent of the train split's input images for every one of them:
    the gap to the images' own latents is what conditioning on the image adds."""

    def main(self) -> Dict:
        from gansvr_ns.data import format as fmt
        from gansvr_ns.eval.evaluate import another_instance_baseline, evaluate_predictions
        from gansvr_ns.eval.shifted import shifted_mask, write_shifted_inputs
        from gansvr_ns.scripts.reconstruct import encoder_background, load_pipeline, load_run_config

        if self.load_config is not None:
            check_run_config(self.load_config)
        check_output(self.output_dir, "--output-dir", folder=True)
        check_output(self.output, "--output")
        data = checked_dataset(self.data)
        train_seconds = None
        config = self.load_config
        if config is None:
            config, train_seconds = train(data, self.output_dir, self.train_args)
        run = config.parent
        pipeline = load_pipeline(config)
        ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
        inputs = {i: data / i / "input.png" for i in ids}
        input_masks = {i: data / i / "input_mask.png" for i in ids}
        if not all(path.is_file() for path in input_masks.values()):
            input_masks = None
        # as `gansvr-reconstruct --data` reads them: on grey by their input masks for a run trained on grey
        grey_run = encoder_background(load_run_config(config)) == "grey" and input_masks is not None
        shifted = write_shifted_inputs(data, "test", run / "shifted_inputs", masks=True)
        # as `gansvr-reconstruct` does by default: the inputs with a mask fitted to it
        seconds = reconstruct_as_the_command(config, run / "meshes", self.resolution, data=data, split="test")
        reconstruct_as_the_command(config, run / "meshes_no_fit", self.resolution, data=data, split="test",
                                   fit_steps=0)
        if input_masks is not None and not grey_run:
            reconstruct_as_the_command(config, run / "meshes_on_grey", self.resolution, data=data, split="test",
                                       background="grey")
        reconstruct_as_the_command(config, run / "meshes_shifted", self.resolution, images=list(shifted.values()))
        reconstruct_as_the_command(config, run / "meshes_shifted_cutouts", self.resolution,
                                   images=list(shifted.values()), masks=[shifted_mask(p) for p in shifted.values()])
        reconstruct_as_the_command(config, run / "meshes_shifted_estimated", self.resolution,
                                   images=list(shifted.values()), estimate_masks=True)
        own = evaluate_predictions(run / "meshes", data, "test")["mean"]
        no_fit = evaluate_predictions(run / "meshes_no_fit", data, "test")["mean"]
        on_grey = None
        if input_masks is not None:
            on_grey = own if grey_run else evaluate_predictions(run / "meshes_on_grey", data, "test")["mean"]
        other = evaluate_predictions(run / "meshes_shifted", data, "test")["mean"]
        cutouts = evaluate_predictions(run / "meshes_shifted_cutouts", data, "test")["mean"]
        estimated = evaluate_predictions(run / "meshes_shifted_estimated", data, "test")["mean"]
        baseline = another_instance_baseline(data, "test")
        result = {
            "data": str(data), "run": str(config), "machine": machine(),
            "train_seconds": train_seconds, "reconstruct_seconds_per_image": seconds, "resolution": self.resolution,
            "test": own, "test_no_fit": no_fit, "test_on_grey": on_grey, "test_other_renderer": other,
            "test_other_renderer_cutouts": cutouts, "test_other_renderer_estimated_masks": estimated,
            "estimated_mask_iou": estimated_mask_iou(run / "meshes_shifted_estimated", shifted),
            "another_instance_chamfer": baseline,
            "chamfer_ratio": own["chamfer_l1"] / baseline,
            "chamfer_ratio_no_fit": no_fit["chamfer_l1"] / baseline,
            "chamfer_ratio_other_renderer": other["chamfer_l1"] / baseline,
            "chamfer_ratio_other_renderer_cutouts": cutouts["chamfer_l1"] / baseline,
            "chamfer_ratio_other_renderer_estimated_masks": estimated["chamfer_l1"] / baseline,
            "extent_ratio": extent_ratios(run / "meshes", data, ids),
        }
        result["pose_rotation_error_deg"], result["rough_pose_rotation_error_deg"] = pose_rotation_errors(pipeline)
        if self.mean_latent:
            with mean_train_latent(pipeline.model, data):
                reconstruct_all(pipeline, inputs, run / "meshes_mean_latent", self.resolution,
                                input_masks if grey_run else None)
            result["test_mean_latent"] = evaluate_predictions(run / "meshes_mean_latent", data, "test")["mean"]
            result["chamfer_ratio_mean_latent"] = result["test_mean_latent"]["chamfer_l1"] / baseline
        out = self.output or run / "quality.json"
        print(quality_table(result))
        fmt.write_json(out, result)
        print(f"\nWrote {out}")
        return result


def estimated_mask_iou(out: Path, images: Dict[str, Path]) -> Optional[float]:
    """Mean IoU of the masks `gansvr-reconstruct --estimate-masks` wrote to `out` with the true masks of `images`
    (`write_shifted_inputs(..., masks=True)`); an image given none counts as 0. None when no image has a true mask."""
    from gansvr_ns.data import format as fmt
    from gansvr_ns.eval.shifted import shifted_mask
    from gansvr_ns.model.losses import silhouette_iou
    from gansvr_ns.scripts.reconstruct import ESTIMATED_MASK

    ious = []
    for path in images.values():
        if not shifted_mask(path).is_file():
            continue
        true, estimate = fmt.load_mask(shifted_mask(path)), out / ESTIMATED_MASK.format(name=path.stem)
        if not estimate.is_file():
            ious.append(0.0)
            continue
        found = fmt.load_mask(estimate)
        ious.append(float(silhouette_iou(torch.from_numpy(found).float(), torch.from_numpy(true).float())))
    return sum(ious) / len(ious) if ious else None


def quality_table(r: Dict) -> str:
    rows = [("test inputs", r["test"])]
    if r.get("test_no_fit"):
        rows.append(("test inputs, not fitted to their masks (--fit-steps 0)", r["test_no_fit"]))
    if r.get("test_on_grey"):
        rows.append(("test inputs on grey (by their input masks)", r["test_on_grey"]))
    rows.append(("other renderer", r["test_other_renderer"]))
    if r.get("test_other_renderer_cutouts"):
        rows.append(("other renderer, cut-outs (on grey by their masks)", r["test_other_renderer_cutouts"]))
    if r.get("test_other_renderer_estimated_masks"):
        iou = r.get("estimated_mask_iou")
        rows.append(("other renderer, masks estimated from the backdrop (--estimate-masks"
                     f"{'' if iou is None else f'; mask IoU {iou:.3f}'})", r["test_other_renderer_estimated_masks"]))
    if r.get("test_mean_latent"):
        rows.append(("test inputs, mean train latent", r["test_mean_latent"]))
    lines = ["| inputs | Chamfer-L1 | / another instance | F@0.05 | IoU |", "| --- | --- | --- | --- | --- |"]
    for name, m in rows:
        ratio = m["chamfer_l1"] / r["another_instance_chamfer"]
        lines.append(f"| {name} | {m['chamfer_l1']:.4f} | {ratio:.2f} | {m['fscore@0.05']:.3f} | {m['iou']:.3f} |")
    lines.append(f"| another instance | {r['another_instance_chamfer']:.4f} | 1.00 | | |")
    train = "n/a" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f} min"
    lines.append(f"\ntrain: {train}; reconstruction: {r['reconstruct_seconds_per_image']:.2f} s per image "
                 f"at resolution {r['resolution']}")
    if r.get("extent_ratio"):
        x, y, z = r["extent_ratio"]
        lines.append(f"size of the test reconstructions / their ground truth: length (x) {x:.3f}, width (y) {y:.3f}, "
                     f"height (z) {z:.3f}")
    refined, rough = r.get("pose_rotation_error_deg"), r.get("rough_pose_rotation_error_deg")
    if rough is not None:
        after = "not refined" if refined is None else f"refined {refined:.2f} deg"
        lines.append(f"rotation error of the train cameras against the true poses: rough {rough:.2f} deg, {after}")
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
    train_args: str = ""
    """ns-train flags applied to the default config, e.g. "--pipeline.model.sdf-field.hidden-dim 96"."""

    def main(self) -> Dict:
        from nerfstudio.engine.optimizers import Optimizers
        from torch.utils.flop_counter import FlopCounterMode

        from gansvr_ns.method_config import gansvr_config

        config = gansvr_config()
        if self.train_args:
            # bools take a value, as in ns-train (nerfstudio turns tyro's flag conversion off)
            flags = tyro.conf.FlagConversionOff[type(config)]
            config = tyro.cli(flags, default=config, args=shlex.split(self.train_args))
        config.pipeline.datamanager.data = checked_dataset(self.data)
        pipeline = config.pipeline.setup(device="cpu", test_mode="val")
        optimizers = Optimizers(config.optimizers, pipeline.get_param_groups())  # the trainer's, schedules included

        def step(i: int) -> None:  # nerfstudio's Trainer.train_iteration on a CPU
            optimizers.zero_grad_all()
            _, losses, _ = pipeline.get_train_loss_dict(i)
            functools.reduce(torch.add, losses.values()).backward()
            optimizers.optimizer_step_all()
            optimizers.scheduler_step_all(i)

        for i in range(3):
            step(i)
        counter = FlopCounterMode(display=False)
        with counter:
            step(3)
        flops_per_step = counter.get_total_flops()
        # the MLPs' share: matrix products (the SDF and colour MLPs with their eikonal double backward, and the small
        # linear heads); the rest is the three CNNs' convolutions
        by_op = {str(op): count for op, count in counter.get_flop_counts()["Global"].items()}
        mlp_flops_per_step = sum(by_op.get(op, 0) for op in ("aten.mm", "aten.addmm", "aten.bmm"))
        # The GEMM rate is measured before and after the timed steps and the higher one is used: on a shared machine
        # the rate drifts, and the higher one gives the lower, conservative fraction.
        gemm_before = gemm_flops()
        times = []
        for i in range(self.steps):
            start = time.perf_counter()
            step(4 + i)
            times.append(time.perf_counter() - start)
        gemm_after = gemm_flops()
        gemm = max(gemm_before, gemm_after)
        seconds = sum(times) / len(times)
        rays = pipeline.datamanager.get_train_rays_per_batch()
        result = {
            "machine": machine(), "train_args": self.train_args, "rays_per_step": rays, "seconds_per_step": seconds,
            "median_seconds_per_step": sorted(times)[len(times) // 2], "rays_per_second": rays / seconds,
            "flops_per_step": flops_per_step, "flops_per_second": flops_per_step / seconds,
            "gemm_flops_per_second": gemm, "gemm_flops_per_second_before_after": [gemm_before, gemm_after],
            "fraction_of_gemm": flops_per_step / seconds / gemm,
            "mlp_flops_per_step": mlp_flops_per_step, "mlp_flops_per_second": mlp_flops_per_step / seconds,
            "mlp_fraction_of_gemm": mlp_flops_per_step / seconds / gemm,
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


# ------------------------------------------------------------------------------------------------------------------
# Ablations (issue 6)

ABLATION_VARIANTS: Dict[str, List[str]] = {
    "full": [],
    "no_uncertainty": ["--pipeline.model.uncertainty", "none"],
    "no_pose_refinement": ["--pipeline.model.camera-optimizer.mode", "off"],
    "pose_network": ["--pipeline.model.pose-network", "True"],
    "mean_latent": ["--pipeline.model.condition-mode", "mean_latent"],
    "uncertainty_image": ["--pipeline.model.uncertainty", "image"],
    "uncertainty_field": ["--pipeline.model.uncertainty", "field"],
    "mask_uncertainty": ["--pipeline.model.mask-uncertainty", "view"],
    "paper_colour_sigma": ["--pipeline.model.colour-uncertainty", "pixel",
                           "--pipeline.model.uncertainty-weighting", "likelihood"],
    "hypernetwork": ["--pipeline.model.sdf-field.architecture", "hypernetwork"],
    "hypernetwork_equal_time": ["--pipeline.model.sdf-field.architecture", "hypernetwork"],
}
"""`ns-train gansvr` flags of every ablation variant, on top of the defaults ("full" is the defaults)."""

OPT_IN_VARIANTS = ("mask_uncertainty", "paper_colour_sigma")
"""Variants run only when named in `--variants`: the uncertainty of the silhouette term too, one sigma per view; the
paper's colour term, a sigma per pixel in |c - c_hat| / sigma + log sigma (the default until session 24; today's has
one sigma per view, weighting relatively)."""

ABLATION_EQUAL_TIME: Dict[str, Tuple[str, str]] = {"hypernetwork_equal_time": ("hypernetwork", "full")}
"""Variants trained for the CPU time of another: name -> (own-speed run, reference run). Its steps are the budget's
times train_seconds(reference) / train_seconds(own-speed run) of the same seed, so both must run before it."""


def flags_are_defaults(flags: List[str], config=None) -> bool:
    """Whether `--a.b-c VALUE` flag pairs only restate the default config's values (such a variant is the "full" run
    under another name and shares its runs)."""
    from gansvr_ns.method_config import gansvr_config

    if len(flags) % 2:
        return False
    node = config or gansvr_config()
    for option, value in zip(flags[::2], flags[1::2]):
        target = node
        for part in option.lstrip("-").replace("-", "_").split("."):
            if not hasattr(target, part):
                return False
            target = getattr(target, part)
        if str(target) != value:
            return False
    return True

ABLATION_DATA_FLAGS = [
    "--category", "car", "--seed", "0", "--pose-noise-deg", "10", "--color-flaw-fraction", "0.3",
    "--color-flaw-strength", "0.5", "--blob-fraction", "0.2", "--mask-flaw-fraction", "0.15",
]
"""`gansvr-generate procedural` flags of the ablation set: GAN-like colour drift, blobs and mask errors in a fraction
of the views and 10 degrees of rough-pose noise (each profile adds its size and split)."""


@dataclass(frozen=True)
class AblationProfile:
    """Defaults of the full and the quick ablation run."""

    data: Path
    size: Tuple[int, int, int]
    """Instances, views per instance, pixels."""
    iterations: Optional[int]
    """None: the default config's max_num_iterations."""
    seeds: Tuple[int, ...]
    resolution: int
    train_flags: Tuple[str, ...]
    split_fractions: Tuple[float, float, float]
    """Train, val, test fractions of the instances: larger test splits than the presets' for steadier means."""


ABLATION_PROFILES = {
    # Hundreds of train cars at the default's budget and schedules: with a few dozen cars per-image conditioning
    # cannot generalise (`encoder-probe`), so the third claim is only testable on a set this size.
    "full": AblationProfile(Path("data/ablation-car-512"), (512, 10, 64), None, (0, 1), 128, (), (0.85, 0.05, 0.1)),
    # ~7 variants x (250 steps of half the rays + start-up + scoring) in about 20 minutes on 2 quiet CPU cores
    "quick": AblationProfile(Path("data/ablation-car-quick"), (32, 12, 64), 250, (0,), 64,
                             ("--pipeline.datamanager.rays-per-view", "32"), (0.7, 0.1, 0.2)),
}

ABLATION_METRICS = ("chamfer", "chamfer_ratio", "fscore", "iou", "train_seconds", "pose_rotation_error_deg",
                    "rough_pose_rotation_error_deg")
"""Per-run numbers summarised over seeds. fscore is F@0.05; chamfer_ratio is Chamfer-L1 / the another-instance
baseline; train_seconds is the wall time of the ns-train command (start-up included); pose_rotation_error_deg (train
cameras, refined poses against the true ones) is None without pose refinement; rough_pose_rotation_error_deg is
that of the unrefined poses the model starts from."""


def default_iterations() -> int:
    from gansvr_ns.method_config import gansvr_config

    return gansvr_config().max_num_iterations


def schedule_flags(iterations: int, config=None) -> List[str]:
    """ns-train flags that compress the default step schedules of a method's TrainerConfig (default: gansvr's; lr
    decay, pose warm-up, pose search, NeuS cosine annealing where the model has it) to `iterations`, so that a short
    budget runs the whole default schedule instead of its first part."""
    from gansvr_ns.method_config import gansvr_config

    config = config or gansvr_config()
    scale = iterations / config.max_num_iterations
    flags = ["--max-num-iterations", str(iterations), "--steps-per-save", str(iterations)]
    for name, optimizer in config.optimizers.items():
        option = f"--optimizers.{name.replace('_', '-')}.scheduler"
        flags += [f"{option}.max-steps", str(iterations)]
        if optimizer["scheduler"].warmup_steps:
            flags += [f"{option}.warmup-steps", str(round(optimizer["scheduler"].warmup_steps * scale))]
    searches = tuple(getattr(config.pipeline.model, "pose_search_steps", ()))
    if searches:
        flags += ["--pipeline.model.pose-search-steps", *(str(max(1, round(s * scale))) for s in searches)]
    ramp = getattr(config.pipeline.model, "sdf_silhouette_ramp_steps", None)
    if ramp is not None:
        flags += ["--pipeline.model.sdf-silhouette-ramp-steps", str(max(1, round(ramp * scale)))]
    anneal = getattr(config.pipeline.model, "cos_anneal_end", None)
    if anneal is None:
        return flags
    return flags + ["--pipeline.model.cos-anneal-end", str(max(1, round(anneal * scale)))]


def ablation_run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def ablation_command(variant: str, seed: int, data: Path, output_dir: Path, common: List[str]) -> List[str]:
    """The `ns-train gansvr` command of one (variant, seed): common flags, then the variant's, then the seed."""
    return [str(BIN / "ns-train"), "gansvr", "--data", str(data), "--output-dir", str(output_dir),
            "--experiment-name", ablation_run_name(variant, seed), "--timestamp", "run", *common,
            *ABLATION_VARIANTS[variant], "--machine.seed", str(seed), "--pipeline.datamanager.seed", str(seed)]


def ablation_config_path(output_dir: Path, variant: str, seed: int) -> Path:
    return output_dir / ablation_run_name(variant, seed) / "gansvr" / "run" / "config.yml"


def generate_ablation_data(data: Path, profile: AblationProfile, extra: str) -> List[str]:
    """The `gansvr-generate procedural` command of a profile's ablation set (`extra` flags come last and win)."""
    instances, views, pixels = profile.size
    return [str(BIN / "gansvr-generate"), "procedural", "--out", str(data), *ABLATION_DATA_FLAGS,
            "--split-fractions", *map(str, profile.split_fractions), "--num-instances", str(instances),
            "--views", str(views), "--resolution", str(pixels), "--no-progress", *shlex.split(extra)]


def run_logged(cmd: List[str], log: Path) -> float:
    """Run a command with its output in `log`; returns its wall time; a failure names the log and shows its end."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed (exit {code}), log {log}:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - start


def pose_rotation_errors(pipeline) -> Tuple[Optional[float], Optional[float]]:
    """(refined, rough): mean rotation error in degrees of the train cameras' refined and rough poses against the
    true ones. Refined is None without pose refinement; both are None when the data has no true poses. A run with
    the pose network reads every train view for its corrections."""
    from gansvr_ns.data.datamanager import load_split
    from gansvr_ns.model.losses import rotation_error_deg

    model, views = pipeline.model, None
    if getattr(model, "pose_network", None) is not None and model.true_poses is not None:
        data = load_split(pipeline.datamanager.train_dataset, "Loading train views")
        views = (data.images, data.masks)
    refined = model.pose_errors(views).get("pose_rotation_error_deg")
    rough = None
    if model.true_poses is not None and model.train_poses is not None:
        rough = float(rotation_error_deg(model.train_poses[:, :3, :3], model.true_poses[:, :3, :3]).mean())
    return (None if refined is None else float(refined)), rough


def score_ablation_run(config: Path, data: Path, resolution: int, baseline: Optional[float]) -> Dict:
    """Reconstruct the test split's input images with a trained run and score them; add its pose errors."""
    from gansvr_ns.eval.evaluate import evaluate_predictions
    from gansvr_ns.scripts.reconstruct import load_pipeline

    pipeline = load_pipeline(config)
    ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
    meshes = config.parent / "meshes"
    seconds = reconstruct_all(pipeline, {i: data / i / "input.png" for i in ids}, meshes, resolution)
    refined, rough = pose_rotation_errors(pipeline)
    scores = evaluate_predictions(meshes, data, "test")
    mean = scores["mean"]
    return {
        "config": str(config), "chamfer": mean["chamfer_l1"], "fscore": mean["fscore@0.05"], "iou": mean["iou"],
        "chamfer_ratio": None if baseline is None else mean["chamfer_l1"] / baseline,
        "pose_rotation_error_deg": refined, "rough_pose_rotation_error_deg": rough,
        "empty_meshes": len(scores["empty"]), "reconstruct_seconds_per_image": seconds, "metrics": mean,
    }


def mean_std(values: List[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation sqrt(sum (x - mean)^2 / (n - 1)) of the values that are not None.

    The mean is None without values, the std None below two values."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    std = (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else None
    return mean, std


def summarise_seeds(seeds: Dict[str, Dict]) -> Dict[str, Dict[str, Optional[float]]]:
    """{"mean": {metric: ...}, "std": {metric: ...}} of ABLATION_METRICS over the per-seed results."""
    stats = {name: mean_std([run.get(name) for run in seeds.values()]) for name in ABLATION_METRICS}
    return {"mean": {k: v[0] for k, v in stats.items()}, "std": {k: v[1] for k, v in stats.items()}}


def _pm(mean: Optional[float], std: Optional[float], digits: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def ablation_table(result: Dict) -> str:
    """Markdown table of the variants (mean ± std over seeds; the std is left out for a single seed)."""
    columns = [("Chamfer-L1", "chamfer", 4), ("/ another instance", "chamfer_ratio", 2), ("F@0.05", "fscore", 3),
               ("IoU", "iou", 3), ("pose rot. error (deg)", "pose_rotation_error_deg", 2)]
    lines = ["| variant | seeds | " + " | ".join(c[0] for c in columns) + " | train (min) |",
             "| --- " * (len(columns) + 3) + "|"]
    for name, entry in result["variants"].items():
        mean, std = entry["mean"], entry["std"]
        cells = [_pm(mean[key], std[key], digits) for _, key, digits in columns]
        if mean["pose_rotation_error_deg"] is None and mean["rough_pose_rotation_error_deg"] is not None:
            cells[-1] = f"rough: {_pm(mean['rough_pose_rotation_error_deg'], std['rough_pose_rotation_error_deg'], 2)}"
        minutes = [None if v is None else v / 60 for v in (mean["train_seconds"], std["train_seconds"])]
        lines.append(f"| {name} | {len(entry['seeds'])} | " + " | ".join(cells) + f" | {_pm(*minutes, 1)} |")
    baseline = result.get("another_instance_chamfer")
    if baseline is not None:
        lines.append(f"| another instance | | {baseline:.4f} | 1.00 |" + " |" * (len(columns) - 1))
    return "\n".join(lines)


def load_ablation_results(output: Path, settings: Dict, entries: str = "variants") -> Dict:
    """The results saved so far in `output` (empty when absent, with no `entries`); saved under other settings is an
    error."""
    if not output.is_file():
        return {"settings": settings, entries: {}}
    saved = json.loads(output.read_text())
    if saved.get("settings") != settings:
        raise SystemExit(f"{output}: results of other settings ({saved.get('settings')}); "
                         f"give another --output or the same settings to resume")
    return saved


def run_ablations(output: Path, settings: Dict, variants: List[str], seeds: List[int],
                  run_one: Callable[[str, int], Dict], baseline: Optional[float] = None) -> Dict:
    """Run `run_one(variant, seed)` for every pair not yet in `output`, saving the JSON after each one.

    A variant's saved flags must equal its current ABLATION_VARIANTS entry, else the saved seeds would mix two
    different ablations."""
    result = load_ablation_results(output, settings)
    todo = [(v, s) for v in variants for s in seeds if str(s) not in result["variants"].get(v, {}).get("seeds", {})]
    for variant in variants:
        saved = result["variants"].get(variant)
        if saved is not None and saved["flags"] != ABLATION_VARIANTS[variant]:
            raise SystemExit(f"{output}: variant '{variant}' was run with flags {saved['flags']}, now "
                             f"{ABLATION_VARIANTS[variant]}; give another --output")
    skipped = len(variants) * len(seeds) - len(todo)
    if skipped:
        print(f"Resuming {output}: {skipped} (variant, seed) pair(s) done, {len(todo)} to run")
    same_as_full = {v for v in variants if v != "full" and flags_are_defaults(ABLATION_VARIANTS[v])}
    for k, (variant, seed) in enumerate(todo):
        print(f"[{k + 1}/{len(todo)}] {variant}, seed {seed}", flush=True)
        full = result["variants"].get("full", {}).get("seeds", {}).get(str(seed))
        if variant in same_as_full and full is not None:  # the same config and seed: the same deterministic run
            run = {**full, "same_run_as": "full"}
        elif variant in ABLATION_EQUAL_TIME:
            run = run_one(variant, seed, equal_time_scale(result, variant, seed))
        else:
            run = run_one(variant, seed)
        result = save_ablation_run(output, settings, baseline, (variant, seed, run))
    return save_ablation_run(output, settings, baseline)


def save_ablation_run(output: Path, settings: Dict, baseline: Optional[float],
                      added: Optional[Tuple[str, int, Dict]] = None) -> Dict:
    """Add one (variant, seed, run) to the results in `output` as they are on disk now, and write them back in
    ABLATION_VARIANTS order. Reading and writing under a lock lets invocations with different `--seeds` or
    `--variants` share one output, e.g. two side by side on two cores."""
    from gansvr_ns.data.format import write_json

    with file_lock(output.with_name(output.name + ".lock")):
        result = load_ablation_results(output, settings)
        result["another_instance_chamfer"] = baseline
        if added is not None:
            variant, seed, run = added
            entry = result["variants"].setdefault(variant, {"flags": ABLATION_VARIANTS[variant], "seeds": {}})
            entry["seeds"][str(seed)] = run
            entry["seeds"] = dict(sorted(entry["seeds"].items(), key=lambda kv: int(kv[0])))
            entry.update(summarise_seeds(entry["seeds"]))
        order = list(ABLATION_VARIANTS)
        result["variants"] = dict(sorted(result["variants"].items(), key=lambda kv: order.index(kv[0])))
        write_json(output, result)
    return result


@contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock on `path` (created if absent) where the platform has fcntl; no lock elsewhere."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def equal_time_scale(result: Dict, variant: str, seed: int) -> float:
    """train_seconds(reference) / train_seconds(own-speed run) of one seed, for an ABLATION_EQUAL_TIME variant."""
    own, reference = ABLATION_EQUAL_TIME[variant]
    seconds = []
    for name in (reference, own):
        run = result["variants"].get(name, {}).get("seeds", {}).get(str(seed))
        if run is None:
            raise SystemExit(f"variant '{variant}' needs the '{name}' run of seed {seed} first: "
                             f"run --variants {own} {reference} {variant}")
        seconds.append(run["train_seconds"])
    return seconds[0] / seconds[1]


@dataclass
class Ablations:
    """Train each ablation variant with `ns-train gansvr` at one budget, score it on the test split, summarise seeds."""

    quick: bool = False
    """The 20-minute version: a smaller dataset, 250 steps with half the rays, one seed, resolution 64."""
    output: Optional[Path] = None
    """Results JSON; it is resumed when it exists (default: outputs/ablations/ablations[-quick].json)."""
    data: Optional[Path] = None
    """Ablation dataset, generated when missing (default: data/ablation-car-512, quick: data/ablation-car-quick)."""
    generate_args: str = ""
    """Extra `gansvr-generate procedural` flags, e.g. "--num-instances 6 --views 4 --resolution 32"."""
    variants: List[str] = field(default_factory=lambda: [v for v in ABLATION_VARIANTS if v not in OPT_IN_VARIANTS])
    """Variants to run, names of ABLATION_VARIANTS (default: all but the opt-in ones, OPT_IN_VARIANTS)."""
    seeds: Optional[List[int]] = None
    """Seeds of every variant (default: 0 1, quick: 0)."""
    iterations: Optional[int] = None
    """Training steps of every run (default: the default config's, quick: 250); the default schedules are compressed
    to it."""
    train_args: str = ""
    """Extra ns-train flags for every variant (given with an equals sign: --train-args="...")."""
    output_dir: Path = Path("outputs/ablations")
    """Where the runs go: <output-dir>/<variant>-seed<k>/gansvr/run/."""
    resolution: Optional[int] = None
    """Marching-cubes resolution of the reconstructions (default: 128, quick: 64)."""
    dry_run: bool = False
    """Print the commands (data generation and ns-train of every pair still to run) and stop."""

    def main(self) -> Dict:
        profile = ABLATION_PROFILES["quick" if self.quick else "full"]
        unknown = [v for v in self.variants if v not in ABLATION_VARIANTS]
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(ABLATION_VARIANTS)}")
        data = self.data or profile.data
        output = self.output or Path(f"outputs/ablations/ablations{'-quick' if self.quick else ''}.json")
        seeds = self.seeds if self.seeds is not None else list(profile.seeds)
        iterations = self.iterations or profile.iterations or default_iterations()
        resolution = self.resolution or profile.resolution

        def flags_for(steps: int) -> List[str]:
            return schedule_flags(steps) + list(profile.train_flags) + shlex.split(self.train_args)

        common = flags_for(iterations)
        settings = {"data": str(data), "iterations": iterations, "common_flags": common, "resolution": resolution}
        if self.dry_run:
            return self.print_commands(data, profile, output, settings, seeds)
        check_output(self.output_dir, "--output-dir", folder=True)
        check_output(output, "--output")
        if not (data / "dataset.json").is_file():
            print(f"Generating {data}")
            run_logged(generate_ablation_data(data, profile, self.generate_args), output.parent / "generate.log")
        baseline = self.baseline(data)

        def run_one(variant: str, seed: int, time_scale: float = 1.0) -> Dict:
            config = ablation_config_path(self.output_dir, variant, seed)
            marker = config.parent / "ablation_train.json"
            steps = max(1, round(iterations * time_scale))
            if marker.is_file():  # trained before an interrupted scoring: score it again, do not retrain
                seconds = json.loads(marker.read_text())["train_seconds"]
            else:
                cmd = ablation_command(variant, seed, data, self.output_dir, flags_for(steps))
                seconds = run_logged(cmd, self.output_dir / ablation_run_name(variant, seed) / "ns-train.log")
                marker.write_text(json.dumps({"train_seconds": seconds}))
            scores = score_ablation_run(config, data, resolution, baseline)
            return {"train_seconds": seconds, "iterations": steps, **scores}

        result = run_ablations(output, settings, self.variants, seeds, run_one, baseline)
        print(ablation_table(result))
        print(f"\nWrote {output}")
        return result

    @staticmethod
    def baseline(data: Path) -> Optional[float]:
        from gansvr_ns.data.format import FormatError
        from gansvr_ns.eval.evaluate import another_instance_baseline

        try:
            return another_instance_baseline(data, "test")
        except FormatError as err:  # fewer than two test instances
            print(f"no another-instance baseline: {err}")
            return None

    def print_commands(self, data: Path, profile: AblationProfile, output: Path, settings: Dict,
                       seeds: List[int]) -> Dict:
        done = load_ablation_results(output, settings)["variants"]
        commands = {}
        if not (data / "dataset.json").is_file():
            print(shlex.join(generate_ablation_data(data, profile, self.generate_args)))
        for variant in self.variants:
            for seed in seeds:
                if str(seed) in done.get(variant, {}).get("seeds", {}):
                    print(f"# {variant}, seed {seed}: done in {output}")
                    continue
                if variant != "full" and "full" in self.variants and flags_are_defaults(ABLATION_VARIANTS[variant]):
                    print(f"# {variant}, seed {seed}: the same config as full, shares its run")
                    continue
                if variant in ABLATION_EQUAL_TIME:
                    own, reference = ABLATION_EQUAL_TIME[variant]
                    print(f"# {variant}, seed {seed}: --max-num-iterations scaled by the train time of {reference} "
                          f"over {own}, known once both ran")
                cmd = ablation_command(variant, seed, data, self.output_dir, settings["common_flags"])
                commands[ablation_run_name(variant, seed)] = cmd
                print(shlex.join(cmd))
        return commands


# ------------------------------------------------------------------------------------------------------------------
# Domain gap (issue 7): stand-in real photos from another renderer, with and without real-image alignment

DOMAIN_RUNS: Dict[str, Tuple[str, bool]] = {
    "gansvr": ("gansvr", False),
    "gansvr-aligned": ("gansvr", True),
    "gansvr-voxel": ("gansvr-voxel", False),
    "gansvr-voxel-aligned": ("gansvr-voxel", True),
}
"""Runs of the domain benchmark: name -> (ns-train method, with real-image alignment)."""

DOMAIN_INPUTS = ("test", "other_renderer")
"""Input sets scored per run: the test split's input images, and the test instances from the other renderer."""


def write_domain_inputs(data: Path, output_dir: Path) -> Tuple[Dict[str, Path], Dict[str, Dict[str, Path]]]:
    """Write the stand-in real photos, the train split's instances from the other renderer (seed 1), as a flat folder
    <output_dir>/real_images/<id>.png, and the test instances from the other renderer (seed 0, as `quality`) to
    <output_dir>/other_renderer_test/. Returns the photos {id: path} and the input sets {set: {test id: image}}."""
    from gansvr_ns.eval.shifted import write_shifted_inputs

    photos = write_shifted_inputs(data, "train", output_dir / "real_images", seed=1)
    ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
    inputs = {"test": {i: data / i / "input.png" for i in ids},
              "other_renderer": write_shifted_inputs(data, "test", output_dir / "other_renderer_test", seed=0)}
    return photos, inputs


def method_config(method: str):
    """The default TrainerConfig of a plugin method."""
    if method == "gansvr-voxel":
        from gansvr_ns.voxel.method_config import gansvr_voxel_config

        return gansvr_voxel_config()
    from gansvr_ns.method_config import gansvr_config

    return gansvr_config()


def parse_pairs(pairs: List[str], option: str) -> Dict[str, str]:
    """{NAME: VALUE} of `NAME=VALUE` command-line pairs; anything else is an error naming the option."""
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"{option}: expected NAME=VALUE, got '{pair}'")
        parsed[name] = value
    return parsed


def domain_plan(methods: List[str], loaded: Dict[str, str]) -> Dict[str, Dict]:
    """Runs to score: every DOMAIN_RUNS entry of `methods` (trained unless `loaded` names it), then the other loaded
    runs. Each is {"method", "aligned", "config"}, config None for a run to train."""
    plan = {}
    for name, (method, aligned) in DOMAIN_RUNS.items():
        if method in methods or name in loaded:
            plan[name] = {"method": method, "aligned": aligned, "config": loaded.get(name)}
    for name, config in loaded.items():
        plan.setdefault(name, {"method": None, "aligned": None, "config": config})
    return plan


def domain_source(run: Dict, flags: Optional[List[str]]) -> Dict:
    """What a run's saved results must have come from to be resumed: its config (loaded) or its ns-train flags."""
    if run["config"] is not None:
        return {"config": str(run["config"])}
    return {"method": run["method"], "flags": flags}


def resume_domain_run(runs: Dict[str, Dict], name: str, source: Dict, obtain: Callable[[], Dict],
                      score: Callable[[Path], Dict], save: Callable[[], None]) -> None:
    """Bring `runs[name]` to scored, saving after each stage: `obtain()` (train or load) gives its entry, `score`
    adds the metrics of its config. A run scored before is skipped; one obtained but not scored is scored without
    obtaining it again; one saved from another source is an error."""
    saved = runs.get(name)
    if saved is not None and saved["source"] != source:
        raise SystemExit(f"run '{name}' was saved from {saved['source']}, now {source}; give another --output")
    if saved is not None and all(inputs in saved for inputs in DOMAIN_INPUTS):
        print("  scored before, skipped")
        return
    if saved is None:
        saved = runs[name] = {**obtain(), "source": source}
        save()
    saved.update(score(Path(saved["config"])))
    save()


def score_domain_run(config: Path, data: Path, inputs: Dict[str, Dict[str, Path]], resolution: int,
                     baseline: Optional[float]) -> Dict:
    """Reconstruct each input set ({set: {test instance id: image}}) with a run into <run>/domain/<set>/ and score it
    against the test split's meshes."""
    from gansvr_ns.eval.evaluate import evaluate_predictions
    from gansvr_ns.scripts.reconstruct import load_pipeline

    pipeline = load_pipeline(config)
    scores = {}
    for name, images in inputs.items():
        out = config.parent / "domain" / name
        seconds = reconstruct_all(pipeline, images, out, resolution)
        evaluated = evaluate_predictions(out, data, "test")
        mean = evaluated["mean"]
        scores[name] = {**mean, "chamfer_ratio": None if baseline is None else mean["chamfer_l1"] / baseline,
                        "empty": len(evaluated["empty"]), "reconstruct_seconds_per_image": seconds}
    return scores


def domain_table(result: Dict) -> str:
    """Markdown table: one row per run, Chamfer-L1 / its ratio to the another-instance baseline / F@0.05 / IoU on the
    test inputs and on the other renderer's inputs, and the train time."""
    def cells(m: Dict) -> List[str]:
        ratio = "n/a" if m["chamfer_ratio"] is None else f"{m['chamfer_ratio']:.2f}"
        return [f"{m['chamfer_l1']:.4f}", ratio, f"{m['fscore@0.05']:.3f}", f"{m['iou']:.3f}"]

    metrics = ("Chamfer-L1", "ratio", "F@0.05", "IoU")
    heads = [f"{inputs} {metric}" for inputs in ("test", "other") for metric in metrics]
    lines = ["| run | " + " | ".join(heads) + " | train (min) |", "| --- " * (len(heads) + 2) + "|"]
    for name, run in result["runs"].items():
        if not all(inputs in run for inputs in DOMAIN_INPUTS):
            continue  # trained, not scored yet
        seconds = run.get("train_seconds")
        train = "n/a" if seconds is None else f"{seconds / 60:.1f}"
        lines.append(f"| {name} | " + " | ".join(cells(run["test"]) + cells(run["other_renderer"])) + f" | {train} |")
    baseline = result.get("another_instance_chamfer")
    if baseline is not None:
        lines.append(f"| another instance | {baseline:.4f} | 1.00 | | | {baseline:.4f} | 1.00 | | | |")
    lines.append("\ntest: the test split's input images; other: the test instances from another renderer; "
                 "ratio: Chamfer-L1 / the another-instance baseline")
    return "\n".join(lines)


@dataclass
class Domain:
    """Train gansvr and gansvr-voxel, each with and without real-image alignment, at one budget; score each on the test
    split's inputs and on the test instances from another renderer."""

    data: Path = Path("data/gan-car")
    """Dataset with ground-truth meshes (a missing preset path is generated first)."""
    methods: List[Literal["gansvr", "gansvr-voxel"]] = field(default_factory=lambda: ["gansvr", "gansvr-voxel"])
    """Methods whose DOMAIN_RUNS are trained (each with and without alignment)."""
    load_configs: List[str] = field(default_factory=list)
    """NAME=PATH: score the run of config.yml PATH as run NAME instead of training it (a name outside DOMAIN_RUNS
    adds a row)."""
    iterations: Optional[int] = None
    """Training steps of every run (default: gansvr's default); the default schedules are compressed to it."""
    train_args: str = ""
    """Extra ns-train flags of every run, accepted by both methods (given with an equals sign: --train-args="...")."""
    method_args: List[str] = field(default_factory=list)
    """METHOD=FLAGS: extra ns-train flags of one method's runs, e.g. "gansvr=--pipeline.model.num-samples-importance
    16"."""
    output_dir: Path = Path("outputs/domain")
    """Where the stand-in real photos, the other renderer's test inputs and the runs (<output-dir>/runs/<name>/) go."""
    output: Optional[Path] = None
    """Results JSON; it is resumed when it exists (default: <output-dir>/domain.json)."""
    resolution: int = 128
    """Marching-cubes resolution of the reconstructions."""

    def main(self) -> Dict:
        from gansvr_ns.data.format import write_json

        loaded = parse_pairs(self.load_configs, "--load-configs")
        extra = parse_pairs(self.method_args, "--method-args")
        unknown = set(extra) - {method for method, _ in DOMAIN_RUNS.values()}
        if unknown:
            raise SystemExit(f"--method-args: unknown method(s) {sorted(unknown)}")
        for config in loaded.values():
            check_run_config(Path(config))
        check_output(self.output_dir, "--output-dir", folder=True)
        output = self.output or self.output_dir / "domain.json"
        check_output(output, "--output")
        data = checked_dataset(self.data)
        iterations = self.iterations or default_iterations()
        result = load_ablation_results(output, {"data": str(data), "resolution": self.resolution}, entries="runs")
        real = self.output_dir / "real_images"
        photos, inputs = write_domain_inputs(data, self.output_dir)
        baseline = Ablations.baseline(data)
        result.update(machine=machine(), real_images=str(real), real_image_count=len(photos),
                      another_instance_chamfer=baseline)
        plan = domain_plan(self.methods, loaded)
        for k, (name, run) in enumerate(plan.items()):
            flags = None
            if run["config"] is None:
                flags = (schedule_flags(iterations, method_config(run["method"])) + shlex.split(self.train_args)
                         + shlex.split(extra.get(run["method"], ""))
                         + (["--pipeline.datamanager.real-images", str(real)] if run["aligned"] else []))
            print(f"[{k + 1}/{len(plan)}] {name}", flush=True)
            resume_domain_run(result["runs"], name, domain_source(run, flags),
                              lambda: self.obtain(name, run, flags, data),
                              lambda config: score_domain_run(config, data, inputs, self.resolution, baseline),
                              lambda: write_json(output, result))
        rest = {name: entry for name, entry in result["runs"].items() if name not in plan}
        result["runs"] = {**{name: result["runs"][name] for name in plan}, **rest}
        write_json(output, result)
        print(domain_table(result))
        print(f"\nstand-in real photos: {len(photos)} train instances from the other renderer in {real}; "
              f"{iterations} steps per trained run\nWrote {output}")
        return result

    def obtain(self, name: str, run: Dict, flags: Optional[List[str]], data: Path) -> Dict:
        """Train a run with `flags` (None: load run["config"]); returns its entry before scoring."""
        if flags is None:
            config, seconds = Path(run["config"]), None
        else:
            config, seconds = train(data, self.output_dir / "runs" / name, shlex.join(flags), run["method"])
        return {"method": run["method"], "aligned": run["aligned"], "config": str(config), "train_seconds": seconds}


def save_level_set(grid, level: float, first_centre: float, cell: float, path: Path) -> None:
    """Marching cubes of a cubic grid at `level`, written to `path`; index 0 of each axis lies at `first_centre`."""
    import trimesh
    from skimage.measure import marching_cubes

    vertices, faces, _, _ = marching_cubes(grid, level, spacing=(cell,) * 3)
    trimesh.Trimesh(vertices + first_centre, faces).export(path)


def reference_scores(pred_dir: Path, data: Path, baseline: float, split: str = "test") -> Dict[str, float]:
    """Mean metrics of the meshes in `pred_dir` on a split (the test split by default), with their Chamfer-L1 over the
    another-instance baseline."""
    from gansvr_ns.eval.evaluate import evaluate_predictions

    scores = evaluate_predictions(pred_dir, data, split)["mean"]
    return {**scores, "chamfer_ratio": scores["chamfer_l1"] / baseline}


def reference_table(header: str, rows: Dict[str, Dict], baseline: float) -> str:
    """Markdown table of reference meshes' scores (`rows`: name -> metrics with chamfer_ratio), baseline last."""
    lines = [f"| {header} | Chamfer-L1 | / another instance | F@0.05 | IoU |", "| --- | --- | --- | --- | --- |"]
    for name, m in rows.items():
        lines.append(f"| {name} | {m['chamfer_l1']:.4f} | {m['chamfer_ratio']:.2f} | {m['fscore@0.05']:.3f} "
                     f"| {m['iou']:.3f} |")
    lines.append(f"| another instance | {baseline:.4f} | 1.00 | | |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# What the masks alone can give: the visual hulls of the test instances from their own pseudo views


@dataclass
class HullBound:
    """Carve every test instance's visual hull from all of its own pseudo views, under the rough poses and (where
    the data has them) the true ones, and score these hulls like reconstructions. Not a method (it sees many views of
    the test object, not one image): a reference for what silhouettes, with the poses one has, can pin down."""

    data: Path = Path("data/gan-car")
    """Dataset (a missing preset path is generated first)."""
    resolution: int = 64
    """Carving grid resolution."""
    keep: List[float] = field(default_factory=lambda: [1.0, 0.95, 0.9])
    """Fractions of views a point must project inside the mask of (below 1 tolerates pose noise and mask flaws)."""
    output_dir: Path = Path("outputs/hull-bound")
    """Where the hull meshes go."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <output-dir>/hull_bound.json)."""

    def main(self) -> Dict:
        from nerfstudio.data.datasets.base_dataset import InputDataset

        from gansvr_ns.data.datamanager import load_split
        from gansvr_ns.data.dataparser import GanSvrDataParserConfig
        from gansvr_ns.data.format import write_json
        from gansvr_ns.data.hull import instance_hull_sdfs
        from gansvr_ns.eval.evaluate import another_instance_baseline

        check_output(self.output_dir, "--output-dir", folder=True)
        check_output(self.output, "--output")
        data = checked_dataset(self.data)
        outputs = GanSvrDataParserConfig(data=data).setup().get_dataparser_outputs(split="test")
        split = load_split(InputDataset(outputs), "Loading test views")
        ids = outputs.metadata["instance_ids"]
        poses = {"rough": outputs.cameras.camera_to_worlds.clone()}
        if outputs.metadata.get("true_poses") is not None:
            poses["true"] = outputs.metadata["true_poses"]
        baseline = another_instance_baseline(data, "test")
        result = {"data": str(data), "resolution": self.resolution, "another_instance_chamfer": baseline,
                  "views_per_instance": len(split.instance_cameras[0]), "hulls": {}}
        cell = 2.0 / self.resolution
        for pose_name, c2w in poses.items():
            split.cameras.camera_to_worlds = c2w
            for keep in self.keep:
                name = f"{pose_name} poses, keep {keep:g}"
                out = self.output_dir / f"{pose_name}-keep{keep:g}"
                out.mkdir(parents=True, exist_ok=True)
                grids = instance_hull_sdfs(split.cameras, split.masks, split.instance_cameras, self.resolution, keep)
                for instance, grid in zip(ids, grids):
                    if grid.isnan().any():  # nothing left: write no mesh, the evaluation counts it as empty
                        (out / f"{instance}.ply").unlink(missing_ok=True)
                        continue
                    save_level_set(grid.numpy(), 0.0, -1.0 + cell / 2, cell, out / f"{instance}.ply")
                result["hulls"][name] = reference_scores(out, data, baseline)
        output = self.output or self.output_dir / "hull_bound.json"
        write_json(output, result)
        print(reference_table("visual hull of the test instance's own views", result["hulls"], baseline))
        print(f"\n{result['views_per_instance']} views per test instance, {self.resolution}^3 grid\nWrote {output}")
        return result


# ------------------------------------------------------------------------------------------------------------------
# What the decoder's latent space can show: latents fitted to every view of a test instance


def fit_latent(model, cameras, images: torch.Tensor, masks: torch.Tensor, start: torch.Tensor, steps: int,
               rays: int = 1024, lr: float = 3e-2, seed: int = 0) -> Tuple[torch.Tensor, List[float]]:
    """Adam on a latent alone, from `start` (1, latent_dim), so that the model's rendering of it from `cameras`
    matches `images` (views, height, width, 3) inside `masks` (views, height, width) and its opacity the masks, with
    the method's own colour and silhouette weights (no uncertainty). Each step draws `rays` pixels at random, or takes
    every pixel when there are no more than that. The model's weights are not changed. Returns the fitted latent in
    the encoder's (unit-scaled) space and the loss of every step."""
    from gansvr_ns.model import losses
    from gansvr_ns.model.gansvr_model import unit_scale

    cfg = model.config
    num_views, height, width = masks.shape
    generator = torch.Generator().manual_seed(seed)
    every = torch.stack(torch.meshgrid(torch.arange(num_views), torch.arange(height), torch.arange(width),
                                       indexing="ij"), dim=-1).reshape(-1, 3)
    latent = start.detach().clone().to(model.device).requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=lr)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    selected = model.field.selected
    history = []
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        for _ in range(steps):
            picks = every if len(every) <= rays else every[torch.randint(len(every), (rays,), generator=generator)]
            view, y, x = picks.unbind(-1)
            coords = torch.stack([y, x], dim=-1).float() + 0.5
            bundle = cameras.generate_rays(camera_indices=view[:, None], coords=coords).to(model.device)
            model.field.selected = model.field.encode_latents(unit_scale(latent))
            outputs = model(bundle)
            mask = masks[view, y, x][:, None].float().to(model.device)
            loss = (cfg.rgb_loss_mult * losses.masked_l1(outputs["rgb"], images[view, y, x].to(model.device), mask)
                    + cfg.mask_loss_mult * losses.silhouette_bce(outputs["accumulation"], mask))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(loss.item())
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        model.field.selected = selected
    return unit_scale(latent.detach()), history


def record_views(record) -> Tuple[torch.Tensor, torch.Tensor]:
    """Images (views, height, width, 3) and masks (views, height, width) of every pseudo view of an instance record."""
    from gansvr_ns.data.format import load_mask, load_rgb

    images = torch.stack([torch.from_numpy(load_rgb(v.image_path)) for v in record.views])
    masks = torch.stack([torch.from_numpy(load_mask(v.mask_path)) for v in record.views])
    return images, masks


def instance_views(info, instance: str):
    """(cameras under the rough poses, the true poses or None, images (views, height, width, 3), masks (views, height,
    width)) of every pseudo view of one instance of a dataset."""
    from gansvr_ns.data import format as fmt
    from gansvr_ns.data.dataparser import build_outputs

    record = fmt.read_instance(info, instance)
    outputs = build_outputs(info, [record], "test")
    return (outputs.cameras, outputs.metadata["true_poses"], *record_views(record))


def fixed_latents(model, latents: Dict[str, torch.Tensor], order: List[str]):
    """A block in which the k-th image `model` encodes gets the latent `latents[order[k]]`, whatever the image."""
    queue = list(order)
    return encoding_with(model, lambda images: torch.cat([latents[queue.pop(0)] for _ in range(len(images))]))


@dataclass
class LatentBound:
    """Fit one latent per test instance to all of that instance's own pseudo views, with the run's decoder frozen
    and starting from the encoder's latent of its input image, and score the meshes of the fitted latents like
    reconstructions. Not a method (it sees every view of the test object, and with `true` the true poses, which the
    method never does): a reference for how much of each object the decoder can show through its latent at all,
    against what the encoder's latent of the one input image gives."""

    load_config: Path
    """config.yml of a gansvr run."""
    data: Optional[Path] = None
    """Dataset (default: the run's own)."""
    poses: List[Literal["true", "rough"]] = field(default_factory=lambda: ["true", "rough"])
    """Poses of the views to fit under: the true poses (where the data has them) and the rough ones."""
    steps: int = 100
    """Adam steps per instance."""
    rays: int = 1024
    """Pixels per step, drawn from all of the instance's views."""
    lr: float = 3e-2
    """Adam learning rate of the latent."""
    resolution: int = 64
    """Marching-cubes resolution of the meshes."""
    max_instances: Optional[int] = None
    """Use only the first this many test instances (every row is scored on them)."""
    output_dir: Optional[Path] = None
    """Where the meshes go (default: <run>/latent_bound)."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <output-dir>/latent_bound.json)."""

    def main(self) -> Dict:
        from tqdm import tqdm

        from gansvr_ns.data import format as fmt
        from gansvr_ns.eval.evaluate import another_instance_baseline
        from gansvr_ns.scripts.reconstruct import load_pipeline

        check_output(self.output_dir, "--output-dir", folder=True)
        check_output(self.output, "--output")
        pipeline = load_pipeline(self.load_config)
        model = pipeline.model
        if not hasattr(getattr(model, "field", None), "encode_latents"):
            raise SystemExit(f"{self.load_config}: not a gansvr run with a latent-conditioned SDF field")
        info = fmt.read_dataset(self.data or pipeline.datamanager.config.dataparser.data)
        ids = info.instances("test")[: self.max_instances]
        out_dir = self.output_dir or self.load_config.parent / "latent_bound"
        baseline = another_instance_baseline(info.root, "test")
        input_paths = {i: info.root / i / "input.png" for i in ids}
        with torch.no_grad():
            own = {i: model.encode(torch.from_numpy(fmt.load_rgb(path)).permute(2, 0, 1)[None])
                   for i, path in input_paths.items()}
        fitted: Dict[str, Dict[str, torch.Tensor]] = {pose_name: {} for pose_name in self.poses}
        moved: Dict[str, List[float]] = {pose_name: [] for pose_name in self.poses}
        last_loss: Dict[str, List[float]] = {pose_name: [] for pose_name in self.poses}
        for instance in tqdm(ids, desc="fitting latents", unit="instance"):
            cameras, true_poses, images, masks = instance_views(info, instance)
            rough_poses = cameras.camera_to_worlds
            for pose_name in self.poses:
                if pose_name == "true" and true_poses is None:
                    raise SystemExit(f"{info.root / instance / 'cameras.json'}: no true poses (transform_matrix_true)")
                cameras.camera_to_worlds = true_poses if pose_name == "true" else rough_poses
                latent, history = fit_latent(model, cameras, images, masks, own[instance], self.steps, self.rays,
                                             self.lr)
                fitted[pose_name][instance] = latent
                moved[pose_name].append(float((latent - own[instance]).norm()))
                last_loss[pose_name].append(sum(history[-10:]) / max(len(history[-10:]), 1))
        views = len(masks)
        answers = [("the encoder's latent of the input image", "own", own)]
        answers += [(f"latent fitted to its {views} views, {pose_name} poses", f"fitted-{pose_name}", fitted[pose_name])
                    for pose_name in self.poses]
        rows = {}
        for name, folder, latents in answers:
            with fixed_latents(model, latents, ids):
                reconstruct_all(pipeline, input_paths, out_dir / folder, self.resolution)
            rows[name] = reference_scores(out_dir / folder, info.root, baseline)
        result = {"config": str(self.load_config), "data": str(info.root), "instances": ids, "steps": self.steps,
                  "rays": self.rays, "lr": self.lr, "resolution": self.resolution, "another_instance_chamfer": baseline,
                  "rows": rows, "latent_moved": {k: sum(v) / len(v) for k, v in moved.items()},
                  "latent_norm": sum(float(z.norm()) for z in own.values()) / len(own),
                  "final_loss": {k: sum(v) / len(v) for k, v in last_loss.items()}}
        output = self.output or out_dir / "latent_bound.json"
        fmt.write_json(output, result)
        print(reference_table(f"test instances ({len(ids)}) answered with", rows, baseline))
        for pose_name, distance in result["latent_moved"].items():
            print(f"{pose_name} poses: the fitted latents moved {distance:.2f} from the encoder's (latents' norm "
                  f"{result['latent_norm']:.2f})")
        print(f"Wrote {output}")
        return result


# ------------------------------------------------------------------------------------------------------------------
# What a shape prior without per-image detail can give: average ground-truth shapes of the train split


@dataclass
class PriorBound:
    """Answer every test instance with an average of the train split's ground-truth shapes and score it like a
    reconstruction: the mean train shape (what a method that ignores its input image can at best give) and, where
    dataset.json lists the generator's `subtypes`, the mean train shape of the instance's own subtype (what naming the
    subtype from the image would give). A reference, not a method: it reads ground-truth meshes, which gansvr never
    trains on.

    With `load_config`, the same averages are also taken over the run's own reconstructions of the train split's input
    images. Against the averages of the truth this splits the run's error: what averaging over many instances
    removes is per-image scatter; what it keeps is a bias that every reconstruction shares."""

    data: Path = Path("data/gan-car")
    """Dataset with ground-truth meshes (a missing preset path is generated first)."""
    resolution: int = 64
    """Cells per axis of the occupancy grid over [-1, 1]^3 that the meshes are averaged on."""
    level: float = 0.5
    """A cell is inside the average shape when at least this fraction of the averaged meshes contain it."""
    output_dir: Path = Path("outputs/prior-bound")
    """Where the average meshes go (one copy per test instance, as `gansvr-eval` expects)."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <output-dir>/prior_bound.json)."""
    load_config: Optional[Path] = None
    """config.yml of a gansvr (or gansvr-voxel) run: also average its reconstructions of the train split's input
    images, overall and per subtype."""
    reconstruction_resolution: int = 64
    """Marching-cubes resolution of those reconstructions."""

    def main(self) -> Dict:
        import numpy as np
        import trimesh

        from gansvr_ns.data.format import write_json
        from gansvr_ns.eval.evaluate import another_instance_baseline
        from gansvr_ns.eval.metrics import grid_points, occupancy

        if self.load_config is not None:
            check_run_config(self.load_config)
        check_output(self.output_dir, "--output-dir", folder=True)
        check_output(self.output, "--output")
        data = checked_dataset(self.data)
        info = json.loads((data / "dataset.json").read_text())
        train, test = info["splits"]["train"], info["splits"]["test"]
        subtypes = (info.get("generator") or {}).get("subtypes") or {}
        points = grid_points(np.full(3, -1.0), np.full(3, 1.0), self.resolution)
        sources = {"": {i: data / i / "mesh.ply" for i in train}}
        if self.load_config is not None:
            recon_dir = self.output_dir / "train-reconstructions"
            reconstruct_split(self.load_config, data, train, recon_dir, self.reconstruction_resolution)
            sources["reconstructions"] = {i: recon_dir / f"{i}.ply" for i in train}
        groups = {"mean": {i: train for i in test}}
        if all(i in subtypes for i in [*train, *test]):
            groups["subtype-mean"] = {i: [j for j in train if subtypes[j] == subtypes[i]] for i in test}
        baseline = another_instance_baseline(data, "test")
        result = {"data": str(data), "resolution": self.resolution, "level": self.level,
                  "another_instance_chamfer": baseline, "priors": {}}
        if self.load_config is not None:
            result["config"] = str(self.load_config)
        cell = 2.0 / self.resolution
        for source, paths in sources.items():
            inside = {i: occupancy(trimesh.load(path, process=False), points) for i, path in paths.items()}
            for folder, members in groups.items():
                name = PRIOR_NAMES[source, folder]
                out = self.output_dir / (f"{source}-{folder}" if source else folder)
                out.mkdir(parents=True, exist_ok=True)
                for instance, averaged in members.items():
                    if not averaged:  # a subtype with no train instance: no mesh, the evaluation counts it as empty
                        (out / f"{instance}.ply").unlink(missing_ok=True)
                        continue
                    fraction = np.mean([inside[j] for j in averaged], axis=0).reshape((self.resolution,) * 3)
                    padded = np.pad(fraction, 1)  # closed surfaces where a shape touches the box
                    save_level_set(padded, self.level, -1.0 - cell / 2, cell, out / f"{instance}.ply")
                result["priors"][name] = reference_scores(out, data, baseline)
        output = self.output or self.output_dir / "prior_bound.json"
        write_json(output, result)
        print(reference_table("every test instance answered with", result["priors"], baseline))
        print(f"\n{len(train)} train shapes averaged on a {self.resolution}^3 grid\nWrote {output}")
        return result


PRIOR_NAMES = {
    ("", "mean"): "mean train shape",
    ("", "subtype-mean"): "mean train shape of its subtype",
    ("reconstructions", "mean"): "mean of the run's train reconstructions",
    ("reconstructions", "subtype-mean"): "mean of the run's train reconstructions of its subtype",
}
"""Row names of `prior-bound` by (source, grouping)."""


def reconstruct_split(config: Path, data: Path, ids: List[str], out: Path, resolution: int) -> None:
    """Reconstruct the input image of every instance of `ids` with the run of `config`, to `out/<id>.ply`."""
    from gansvr_ns.scripts.reconstruct import load_pipeline

    pipeline = load_pipeline(config)
    out.mkdir(parents=True, exist_ok=True)
    reconstruct_all(pipeline, {i: data / i / "input.png" for i in ids}, out, resolution)


# ------------------------------------------------------------------------------------------------------------------
# What the SDF architecture can hold: the decoder fitted to the train shapes themselves


def shape_samples(mesh_path: Path, count: int, near_std: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """`count` points of [-1, 1]^3 for one ground-truth mesh, half uniform in the box and half on its surface moved by
    N(0, near_std^2), and whether each is inside the mesh (float 0/1)."""
    import numpy as np
    import trimesh

    from gansvr_ns.eval.metrics import occupancy

    mesh = trimesh.load(mesh_path, process=False)
    rng = np.random.default_rng(seed)
    surface, _ = trimesh.sample.sample_surface(mesh, count // 2, seed=seed)
    points = np.concatenate([surface + rng.normal(0.0, near_std, surface.shape),
                             rng.uniform(-1.0, 1.0, (count - count // 2, 3))]).astype(np.float32)
    return torch.from_numpy(points), torch.from_numpy(occupancy(mesh, points).astype(np.float32))


def fit_shapes(field_config, latent_dim: int, points: torch.Tensor, inside: torch.Tensor, steps: int,
               instances_per_step: int, points_per_instance: int, sharpness: float, seed: int,
               progress: bool = True) -> Tuple[torch.nn.Module, torch.Tensor, List[float]]:
    """Fit a fresh `ConditionedSDFField` and one free latent per shape to the shapes' occupancy (`points`, `inside`:
    [shapes, N, 3] and [shapes, N]): BCE between sigmoid(-sharpness * sdf) and inside, plus the method's eikonal
    term, Adam with the method's field learning rate (5e-3 to 5e-4) and 1e-2 to 1e-3 for the latents. The latents
    are scaled as the encoder's are (zero mean, unit variance over their dimensions). Returns the field, the scaled
    latents and the loss of every step."""
    from tqdm import tqdm

    from gansvr_ns.model.field import ConditionedSDFField
    from gansvr_ns.model.gansvr_model import unit_scale
    from gansvr_ns.model.losses import eikonal

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    field_model = ConditionedSDFField(field_config, latent_dim)
    codes = torch.nn.Parameter(torch.randn(len(points), latent_dim, generator=generator))
    optimizer = torch.optim.Adam([{"params": field_model.parameters(), "lr": 5e-3}, {"params": [codes], "lr": 1e-2}])
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.1 ** (1.0 / max(steps, 1)))
    history = []
    for _ in tqdm(range(steps), desc="fitting shapes", unit="step", disable=not progress):
        shapes = torch.randint(len(points), (instances_per_step,), generator=generator)
        picks = torch.randint(points.shape[1], (instances_per_step, points_per_instance), generator=generator)
        x = torch.gather(points[shapes], 1, picks[..., None].expand(-1, -1, 3)).requires_grad_(True)
        target = torch.gather(inside[shapes], 1, picks)
        code = field_model.encode_latents(unit_scale(codes[shapes])).unsqueeze(1)
        sdf = field_model.sdf(x, code)[..., 0]
        (gradient,) = torch.autograd.grad(sdf.sum(), x, create_graph=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(-sharpness * sdf, target)
        loss = loss + 0.1 * eikonal(gradient)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
        history.append(loss.item())
    return field_model, unit_scale(codes.detach()), history


@dataclass
class ArchitectureBound:
    """Fit the method's SDF field, with a free latent per shape, to the occupancy of the train split's ground-truth
    meshes, and score the fitted shapes against those meshes. A reference, not a method (it trains on 3D ground
    truth, which gansvr never does): how well the decoder's architecture can hold the train shapes when nothing but
    its capacity limits it, against how well a run's reconstructions of the same shapes from their input images
    match them (`load_config`)."""

    data: Path = Path("data/gan-car")
    """Dataset with ground-truth meshes (a missing preset path is generated first)."""
    load_config: Optional[Path] = None
    """config.yml of a gansvr run: its SDF field's settings and latent width are fitted (default: the gansvr
    defaults), and its reconstructions of the same train instances are scored beside the fit."""
    steps: int = 2000
    """Adam steps (the default run's count)."""
    instances_per_step: int = 8
    """Shapes per step (the default run's instances per batch)."""
    points_per_instance: int = 2048
    """Points per shape and step."""
    points: int = 12000
    """Points drawn once per shape, half near its surface and half uniform in the box."""
    near_std: float = 0.02
    """Spread of the near-surface points around the surface."""
    sharpness: float = 50.0
    """Occupancy is sigmoid(-sharpness * sdf)."""
    max_instances: Optional[int] = None
    """Fit only the first this many train instances."""
    resolution: int = 64
    """Marching-cubes resolution of the fitted shapes and of the run's reconstructions."""
    seed: int = 0
    """Seed of the points, the latents' start and the batches."""
    output_dir: Path = Path("outputs/architecture-bound")
    """Where the fitted meshes go (`fitted/`) and, with `load_config`, the run's reconstructions (`run/`)."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <output-dir>/architecture_bound.json)."""

    def main(self) -> Dict:
        from tqdm import tqdm

        from gansvr_ns.data.format import write_json
        from gansvr_ns.eval.evaluate import another_instance_baseline
        from gansvr_ns.model.mesh import level_set_mesh, save_mesh
        from gansvr_ns.scripts.reconstruct import load_run_config

        if self.load_config is not None:
            check_run_config(self.load_config)
        check_output(self.output_dir, "--output-dir", folder=True)
        check_output(self.output, "--output")
        data = checked_dataset(self.data)
        ids = json.loads((data / "dataset.json").read_text())["splits"]["train"][: self.max_instances]
        if self.load_config is not None:
            model_config = load_run_config(self.load_config).pipeline.model
        else:
            model_config = method_config("gansvr").pipeline.model
        if not hasattr(model_config, "sdf_field"):
            raise SystemExit(f"{self.load_config}: not a gansvr run with an SDF field")
        samples = [shape_samples(data / i / "mesh.ply", self.points, self.near_std, self.seed + k)
                   for k, i in enumerate(tqdm(ids, desc="sampling shapes", unit="shape"))]
        points, inside = torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])
        begin = time.perf_counter()
        fitted, latents, history = fit_shapes(model_config.sdf_field, model_config.latent_dim, points, inside,
                                              self.steps, self.instances_per_step, self.points_per_instance,
                                              self.sharpness, self.seed)
        seconds = time.perf_counter() - begin
        fitted_dir = self.output_dir / "fitted"
        fitted_dir.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            for k, instance in enumerate(tqdm(ids, desc="extracting", unit="shape")):
                code = fitted.encode_latents(latents[k : k + 1])
                mesh = level_set_mesh(lambda x: fitted.sdf(x, code)[..., 0], self.resolution)
                save_mesh(mesh, fitted_dir / instance, ["ply"])
        baseline = another_instance_baseline(data, "test")
        rows = {"the architecture fitted to the shapes": fitted_dir}
        if self.load_config is not None:
            run_dir = self.output_dir / "run"
            reconstruct_split(self.load_config, data, ids, run_dir, self.resolution)
            rows["the run's reconstructions from their input images"] = run_dir
        scores = {name: reference_scores(folder, data, baseline, "train") for name, folder in rows.items()}
        result = {"data": str(data), "config": str(self.load_config) if self.load_config else None,
                  "instances": len(ids), "steps": self.steps, "fit_seconds": seconds,
                  "first_loss": sum(history[:50]) / max(len(history[:50]), 1),
                  "final_loss": sum(history[-50:]) / max(len(history[-50:]), 1), "another_instance_chamfer": baseline,
                  "rows": scores}
        output = self.output or self.output_dir / "architecture_bound.json"
        write_json(output, result)
        print(reference_table(f"train instances ({len(ids)})", scores, baseline))
        print(f"(ratios to the test split's another-instance baseline)\nfit: {self.steps} steps in {seconds:.0f} s, "
              f"final loss {result['final_loss']:.4f}\nWrote {output}")
        return result


# ------------------------------------------------------------------------------------------------------------------
# What the pseudo views can teach: the method trained on a few instances, scored on those same instances


def spread_over_subtypes(ids: List[str], subtypes: Dict[str, str], count: int) -> List[str]:
    """The first `count` of `ids`, taken in turn from each subtype (sorted by name) where all of them have one, else
    simply the first `count`."""
    if not all(i in subtypes for i in ids):
        return ids[:count]
    queues = {name: [i for i in ids if subtypes[i] == name] for name in sorted(set(subtypes[i] for i in ids))}
    picked: List[str] = []
    while len(picked) < min(count, len(ids)):
        for queue in queues.values():
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def write_subset(data: Path, train_ids: List[str], out: Path) -> Path:
    """A dataset at `out` whose train split is `train_ids` and whose val and test splits are `data`'s, the instance
    folders linked to `data`'s (nothing is copied)."""
    from gansvr_ns.data.format import write_json

    info = json.loads((data / "dataset.json").read_text())
    info["splits"] = {"train": train_ids, "val": info["splits"]["val"], "test": info["splits"]["test"]}
    out.mkdir(parents=True, exist_ok=True)
    for instance in [*train_ids, *info["splits"]["val"], *info["splits"]["test"]]:
        link = out / instance
        if not link.exists():
            link.symlink_to((data / instance).resolve(), target_is_directory=True)
    write_json(out / "dataset.json", info)
    return out


@dataclass
class SupervisionBound:
    """Train the method on a few instances of a dataset (the train split cut to `instances`, spread over the
    generator's subtypes), so that each is drawn far more often than in a full run, and score its reconstructions of
    those same instances from their input images. A reference, not a method: with the rough poses made exact (e.g.
    `data/gan-car-exact`) and the pose refinement off, it tells how closely the pseudo views themselves pin a shape
    down, with nothing to generalise."""

    data: Path = Path("data/gan-car")
    """Dataset with ground-truth meshes (a missing preset path is generated first)."""
    instances: int = 8
    """Train instances kept."""
    train_args: str = ""
    """Extra `ns-train gansvr` flags, e.g. "--pipeline.model.camera-optimizer.mode off" with exact poses."""
    resolution: int = 64
    """Marching-cubes resolution of the reconstructions."""
    output_dir: Path = Path("outputs/supervision-bound")
    """Where the cut dataset (`data/`), the run and the reconstructions (`meshes/`) go."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <output-dir>/supervision_bound.json)."""

    def main(self) -> Dict:
        from gansvr_ns.data.format import write_json
        from gansvr_ns.eval.evaluate import another_instance_baseline, evaluate_predictions

        if self.instances < 1:
            raise SystemExit(f"supervision-bound: --instances must be at least 1, got {self.instances}")
        check_output(self.output_dir, "--output-dir", folder=True)
        check_output(self.output, "--output")
        data = checked_dataset(self.data)
        info = json.loads((data / "dataset.json").read_text())
        subtypes = (info.get("generator") or {}).get("subtypes") or {}
        ids = spread_over_subtypes(info["splits"]["train"], subtypes, self.instances)
        subset = write_subset(data, ids, self.output_dir / "data" / f"{data.name}-{len(ids)}")
        config, seconds = train(subset, self.output_dir / "runs", self.train_args)
        meshes = self.output_dir / "meshes"
        reconstruct_split(config, subset, ids, meshes, self.resolution)
        baseline = another_instance_baseline(data, "test")
        evaluation = evaluate_predictions(meshes, subset, "train")
        scores = {**evaluation["mean"], "chamfer_ratio": evaluation["mean"]["chamfer_l1"] / baseline}
        result = {"data": str(data), "instances": ids, "subtypes": {i: subtypes.get(i) for i in ids},
                  "train_args": self.train_args, "config": str(config), "train_seconds": seconds,
                  "another_instance_chamfer": baseline, "scores": scores,
                  "per_instance": evaluation["per_instance"]}
        output = self.output or self.output_dir / "supervision_bound.json"
        write_json(output, result)
        name = f"its {len(ids)} train instances, from their own input images"
        print(reference_table("a run trained on only", {name: scores}, baseline))
        print(f"(ratio to the another-instance baseline of {data}'s test split; trained in {seconds / 60:.1f} min)\n"
              f"Wrote {output}")
        return result


# ------------------------------------------------------------------------------------------------------------------
# Can an image encoder tell the generator's subtypes apart? (a diagnostic of per-image conditioning)


def subtype_images(data: Path, ids: List[str]) -> Tuple[torch.Tensor, List[str], List[int]]:
    """Every input image and pseudo view of `ids` as a float [N, 3, H, W] tensor, the instance of each image, and
    the row of each instance's input image."""
    from gansvr_ns.data.format import load_rgb

    images, owners, input_rows = [], [], []
    for instance in ids:
        paths = [data / instance / "input.png", *sorted((data / instance / "views").glob("*.png"))]
        input_rows.append(len(images))
        images += [torch.from_numpy(load_rgb(path)).permute(2, 0, 1) for path in paths]
        owners += [instance] * len(paths)
    return torch.stack(images), owners, input_rows


def silhouette_retrieval_accuracy(data: Path, train: List[str], held_out: List[str],
                                  subtypes: Dict[str, str]) -> Optional[float]:
    """Fraction of held-out instances whose input mask's nearest train pseudo-view mask (pixels that differ) is of an
    instance of the same subtype; None when a held-out instance has no input_mask.png. Every train instance has masks
    from all around it, so the nearest one is usually seen from the input's viewpoint: a reference for how much of the
    subtype the input's silhouette shows, with no learning at all."""
    from gansvr_ns.data.format import load_mask

    if not all((data / i / "input_mask.png").is_file() for i in held_out):
        return None
    keys, owners = [], []
    for instance in train:
        for path in sorted((data / instance / "masks").glob("*.png")):
            keys.append(torch.from_numpy(load_mask(path)).flatten())
            owners.append(instance)
    keys = torch.stack(keys)
    hits = 0
    for instance in held_out:
        query = torch.from_numpy(load_mask(data / instance / "input_mask.png")).flatten()
        nearest = int((keys != query).sum(dim=1).argmin())
        hits += subtypes[owners[nearest]] == subtypes[instance]
    return hits / len(held_out)


@torch.no_grad()
def accuracy_of(encoder: torch.nn.Module, classifier: torch.nn.Module, images: torch.Tensor,
                labels: torch.Tensor) -> float:
    """Fraction of `images` whose predicted class is their label."""
    predicted = torch.cat([classifier(encoder(chunk)).argmax(dim=1) for chunk in images.split(64)])
    return float((predicted == labels).float().mean())


def view_spread(latents: torch.Tensor, owners: List[str]) -> Tuple[float, float]:
    """(within, between): mean Euclidean distance between latents of two images of one instance, and of two different
    instances. A latent that carries the object more than the viewpoint has `within` well below `between`."""
    owner = torch.tensor([sorted(set(owners)).index(o) for o in owners])
    same = owner[:, None] == owner[None]
    distances = torch.cdist(latents, latents)
    within = same & ~torch.eye(len(owners), dtype=torch.bool)
    return float(distances[within].mean()), float(distances[~same].mean())


def nearest_subtype_accuracy(queries: torch.Tensor, query_ids: List[str], keys: torch.Tensor, key_ids: List[str],
                             subtypes: Dict[str, str]) -> float:
    """Fraction of query latents whose nearest key latent (Euclidean) belongs to an instance of the same subtype."""
    nearest = torch.cdist(queries, keys).argmin(dim=1).tolist()
    return sum(subtypes[key_ids[j]] == subtypes[q] for j, q in zip(nearest, query_ids)) / len(query_ids)


@dataclass
class EncoderProbe:
    """Train the model's image encoder (its default architecture, from scratch) with a linear classifier on the
    generator's subtype labels, from every image of the train instances, and report the subtype accuracy on every
    image of the held-out (val and test) instances. With `--load-config`, also the 1-nearest-neighbour subtype
    accuracy of a trained run's latents: held-out input images against train input images. A diagnostic, not a
    method: the labels say whether an encoder can learn, in this step budget, the image cue that per-image
    conditioning needs; gansvr never sees them."""

    data: Path = Path("data/gan-car")
    """Dataset whose dataset.json lists the generator's `subtypes` (procedural sets do)."""
    steps: Optional[int] = None
    """Classifier training steps (default: gansvr's default step count; 0 skips the classifier, e.g. to probe only a
    run's latents with `--load-config`)."""
    batch_size: int = 4
    """Images per step (gansvr's encoder saw `instances_per_batch` = 4 images per step until session 15, and 8
    since; the probe rows of docs/benchmarks.md use 4 or 16)."""
    lr: float = 1e-4
    """Adam learning rate (gansvr's encoder starts at 1e-4)."""
    input_size: Optional[int] = None
    """Size the encoder resizes its images to (default: the model's `encoder_input_size`)."""
    report_every: int = 350
    """Steps between held-out accuracy reports."""
    load_config: Optional[Path] = None
    """A trained gansvr run whose encoder's latents are probed by nearest neighbours."""
    seed: int = 0
    """Seed of the initial weights and of the image order."""
    output: Optional[Path] = None
    """JSON file for the figures (default: outputs/encoder-probe/encoder_probe.json)."""

    def main(self) -> Dict:
        from collections import Counter

        from rich.progress import track

        from gansvr_ns.data.format import write_json
        from gansvr_ns.model.encoder import ImageEncoder
        from gansvr_ns.model.gansvr_model import GanSvrModelConfig

        if self.load_config is not None:
            check_run_config(self.load_config)
        output = self.output or Path("outputs/encoder-probe/encoder_probe.json")
        check_output(output, "--output")
        data = checked_dataset(self.data)
        info = json.loads((data / "dataset.json").read_text())
        train, held_out = info["splits"]["train"], info["splits"]["val"] + info["splits"]["test"]
        subtypes = (info.get("generator") or {}).get("subtypes") or {}
        missing = [i for i in [*train, *held_out] if i not in subtypes]
        if missing:
            raise SystemExit(f"{data / 'dataset.json'}: generator.subtypes does not list {missing[0]} (the probe needs "
                             "the generator's subtype of every instance, e.g. a procedural set)")
        names = sorted({subtypes[i] for i in train})
        train_images, train_owners, train_inputs = subtype_images(data, train)
        test_images, test_owners, test_inputs = subtype_images(data, held_out)
        train_labels, test_labels = (torch.tensor([names.index(subtypes[i]) if subtypes[i] in names else -1
                                                   for i in owners]) for owners in (train_owners, test_owners))
        chance = max(Counter(test_labels.tolist()).values()) / len(test_labels)
        input_chance = max(Counter(subtypes[i] for i in held_out).values()) / len(held_out)
        result = {"data": str(data), "machine": machine(), "subtypes": names, "train_images": len(train_images),
                  "held_out_images": len(test_images), "majority_accuracy": chance,
                  "input_majority_accuracy": input_chance, "batch_size": self.batch_size}

        retrieval = silhouette_retrieval_accuracy(data, train, held_out, subtypes)
        if retrieval is not None:
            result["silhouette_retrieval_accuracy"] = retrieval
            print(f"silhouette retrieval: {retrieval:.3f} of the held-out input masks have a nearest train pseudo-view "
                  f"mask of their subtype (majority {input_chance:.3f})")

        steps = default_iterations() if self.steps is None else self.steps
        model_config = GanSvrModelConfig()
        torch.manual_seed(self.seed)
        encoder = ImageEncoder(model_config.latent_dim, self.input_size or model_config.encoder_input_size,
                               norm=model_config.encoder_norm)
        classifier = torch.nn.Linear(model_config.latent_dim, len(names))
        optimizer = torch.optim.Adam([*encoder.parameters(), *classifier.parameters()], lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        seen = torch.randperm(len(train_images), generator=generator)[: len(test_images)]  # train images scored
        curve = []
        start = time.perf_counter()
        for step in track(range(1, steps + 1), description="Training the subtype classifier"):
            batch = torch.randint(0, len(train_images), (self.batch_size,), generator=generator)
            loss = torch.nn.functional.cross_entropy(classifier(encoder(train_images[batch])), train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % self.report_every == 0 or step == steps:
                train_accuracy, accuracy = (accuracy_of(encoder, classifier, images, labels)
                                            for images, labels in ((train_images[seen], train_labels[seen]),
                                                                   (test_images, test_labels)))
                curve.append({"step": step, "train_accuracy": train_accuracy, "held_out_accuracy": accuracy})
                print(f"step {step}: subtype accuracy on train images {train_accuracy:.3f}, held-out {accuracy:.3f} "
                      f"(majority {chance:.3f})", flush=True)
        result.update(steps=steps, train_seconds=time.perf_counter() - start, classifier=curve)

        if self.load_config is not None:
            from gansvr_ns.scripts.reconstruct import load_pipeline

            model = load_pipeline(self.load_config).model
            with torch.no_grad():
                keys, queries = (model.encode(images[rows]).cpu()
                                 for images, rows in ((train_images, train_inputs), (test_images, test_inputs)))
                held_out_latents = torch.cat([model.encode(chunk).cpu() for chunk in test_images.split(64)])
            accuracy = nearest_subtype_accuracy(queries, held_out, keys, train, subtypes)
            within, between = view_spread(held_out_latents, test_owners)
            result["run"] = {"config": str(self.load_config), "nearest_neighbour_accuracy": accuracy,
                             "held_out_inputs": len(held_out), "latent_distance_within_instance": within,
                             "latent_distance_between_instances": between}
            print(f"{self.load_config}: 1-NN subtype accuracy of its latents {accuracy:.3f} over {len(held_out)} "
                  f"held-out input images (majority {input_chance:.3f})")
            print(f"latent distance between two images of one held-out instance {within:.2f}, of two different "
                  f"instances {between:.2f}")
        write_json(output, result)
        print(f"Wrote {output}")
        return result


# ------------------------------------------------------------------------------------------------------------------
# Does the image uncertainty head flag the flawed pseudo views? (a diagnostic of the first claim)


@dataclass
class UncertaintyFlaws:
    """Mean sigma of a run's image uncertainty head inside the mask of pseudo views (and, for a head that also
    predicts the mask's sigma, that sigma within 4 px of the mask), grouped by the flaws that the
    procedural generator put into each view (the optional "flaws" list of a view in cameras.json); a view with several
    flaws counts under each. Higher sigma on flawed views than on clean ones means the head down-weights them."""

    load_config: Path
    """A gansvr run trained with the image uncertainty head (the default)."""
    data: Optional[Path] = None
    """Dataset with flaw labels (default: the run's own)."""
    split: str = "train"
    max_instances: int = 100
    """Instances of the split read, from its start."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <run>/uncertainty_flaws.json)."""

    def main(self) -> Dict:
        from tqdm import tqdm

        from gansvr_ns.data.format import read_dataset, read_instance, write_json
        from gansvr_ns.scripts.reconstruct import load_pipeline

        check_output(self.output, "--output")
        pipeline = load_pipeline(self.load_config)
        head = pipeline.model.image_uncertainty
        if head is None:
            raise SystemExit(f"{self.load_config}: the run has no image uncertainty head (--pipeline.model.uncertainty "
                             f"is {pipeline.model.config.uncertainty})")
        info = read_dataset(self.data or pipeline.datamanager.config.dataparser.data)
        ids = info.splits.get(self.split, [])[: self.max_instances]
        sigmas: Dict[str, List[float]] = {}
        mask_sigmas: Dict[str, List[float]] = {}
        for instance in tqdm(ids, desc="uncertainty", unit="instance"):
            record = read_instance(info, instance)  # its views' flaw labels are the generator's, not the format's
            labels = json.loads((record.folder / "cameras.json").read_text())["views"]
            images, masks = record_views(record)
            images, masks = images.permute(0, 3, 1, 2), masks[:, None]
            with torch.no_grad():
                maps = head(images.to(pipeline.device), masks.float().to(pipeline.device))
                near = torch.nn.functional.max_pool2d(masks.float(), 9, stride=1, padding=4).bool()[:, 0]
            for sigma, mask, band, entry in zip(maps, masks[:, 0], near, labels):
                if mask.any():
                    for kind in entry.get("flaws") or ["clean"]:
                        sigmas.setdefault(kind, []).append(float(sigma[0][mask].mean()))
                        if head.with_mask:
                            mask_sigmas.setdefault(kind, []).append(float(sigma[1][band].mean()))
        if len(sigmas) < 2:
            raise SystemExit(f"{info.root}: no views with flaw labels in the first {len(ids)} '{self.split}' "
                             f"instances")
        result = {"config": str(self.load_config), "data": str(info.root), "split": self.split,
                  "instances": len(ids), "kinds": {k: {"views": len(v), "mean_sigma_in_mask": sum(v) / len(v)}
                                                   for k, v in sorted(sigmas.items())}}
        for kind, values in mask_sigmas.items():
            result["kinds"][kind]["mean_mask_sigma_near_mask"] = sum(values) / len(values)
        output = self.output or self.load_config.parent / "uncertainty_flaws.json"
        write_json(output, result)
        columns = [("mean_sigma_in_mask", "colour sigma in mask")]
        if mask_sigmas:
            columns.append(("mean_mask_sigma_near_mask", "mask sigma within 4 px of the mask"))
        clean = result["kinds"].get("clean", {})
        print("| views | count | " + " | ".join(f"{title} | / clean" for _, title in columns) + " |")
        print("| --- | --- |" + " --- | --- |" * len(columns))
        for kind, entry in result["kinds"].items():
            cells = []
            for key, _ in columns:
                ratio = f"{entry[key] / clean[key]:.2f}" if key in clean else ""
                cells += [f"{entry[key]:.4f}", ratio]
            print(f"| {kind} | {entry['views']} | " + " | ".join(cells) + " |")
        print(f"\nWrote {output}")
        return result


# ------------------------------------------------------------------------------------------------------------------
# How precisely the pose search places the train views, at other settings than a run's


def pose_error_axes(refined: torch.Tensor, true: torch.Tensor) -> Dict[str, float]:
    """Root-mean-square rotation error (degrees) of camera-to-world poses against the true ones, about each true
    camera's own axes: pitch about its right axis (for an orbit: elevation), yaw about its up axis (azimuth), roll
    about its viewing axis; and the mean geodesic error."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    from gansvr_ns.model.losses import rotation_error_deg

    refined, true = refined[:, :3, :3].double().cpu(), true[:, :3, :3].double().cpu()
    world = torch.from_numpy(Rotation.from_matrix((refined @ true.transpose(1, 2)).numpy()).as_rotvec())
    local = torch.einsum("nji,nj->ni", true, world)  # the rotation vector in the true camera's axes
    rms = np.degrees(local.square().mean(dim=0).sqrt().numpy())
    return {"mean_deg": float(rotation_error_deg(refined, true).mean()), "pitch_rms_deg": float(rms[0]),
            "yaw_rms_deg": float(rms[1]), "roll_rms_deg": float(rms[2])}


@dataclass
class PoseSearch:
    """Run a finished gansvr run's pose search once more over its train views, from the refined poses it ended with,
    at each combination of `resolutions` and `priors`, and score the train poses against the true ones before and
    after. A diagnostic of the search's own precision: the true poses are read only to score it, and the run on disk
    is not changed."""

    load_config: Path
    """config.yml of a gansvr run with pose refinement, on a dataset with true poses."""
    resolutions: List[int] = field(default_factory=lambda: [40, 64])
    """Grid resolutions at which to voxelise each shape (`--pipeline.model.pose-search-resolution`)."""
    priors: Optional[List[float]] = None
    """Preferences for small turns (`--pipeline.model.pose-search-prior`; default: the run's)."""
    image_sizes: Optional[List[int]] = None
    """Longest mask sides to compare silhouettes at (`--pipeline.model.pose-search-image-size`; default: the run's)."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <run>/pose_search.json)."""

    def main(self) -> Dict:
        from gansvr_ns.data.format import write_json
        from gansvr_ns.scripts.reconstruct import load_pipeline

        check_output(self.output, "--output")
        pipeline = load_pipeline(self.load_config, test_mode="val")  # "val" loads the train views
        model = pipeline.model
        if model.true_poses is None or model.train_poses is None:
            raise SystemExit(f"{self.load_config}: its dataset has no true poses to score the search against")
        if model.config.camera_optimizer.mode == "off":
            raise SystemExit(f"{self.load_config}: a run without pose refinement has no pose search")
        true = model.true_poses.to(model.device)
        start = model.searched_rotations.clone()
        result = {"config": str(self.load_config), "start": pose_error_axes(model.refined_poses(), true), "runs": []}
        names = ("pose_search_resolution", "pose_search_prior", "pose_search_image_size")
        saved = {name: getattr(model.config, name) for name in names}
        settings = itertools.product(self.resolutions, self.priors or [saved["pose_search_prior"]],
                                     self.image_sizes or [saved["pose_search_image_size"]])
        try:
            for resolution, prior, image_size in settings:
                model.searched_rotations.copy_(start)
                for name, value in zip(names, (resolution, prior, image_size)):
                    setattr(model.config, name, value)
                begin = time.perf_counter()
                stats = pipeline.search_poses(0)
                result["runs"].append({"resolution": resolution, "prior": prior, "image_size": image_size,
                                       "seconds": time.perf_counter() - begin, **stats,
                                       **pose_error_axes(model.refined_poses(), true)})
        finally:
            model.searched_rotations.copy_(start)
            for name, value in saved.items():
                setattr(model.config, name, value)
        output = self.output or self.load_config.parent / "pose_search.json"
        write_json(output, result)
        print("| search | rotation error (deg) | pitch rms | yaw rms | roll rms | silhouette IoU | seconds |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        s = result["start"]
        print(f"| none (the run's refined poses) | {s['mean_deg']:.2f} | {s['pitch_rms_deg']:.2f} | "
              f"{s['yaw_rms_deg']:.2f} | {s['roll_rms_deg']:.2f} | | |")
        for r in result["runs"]:
            search = f"{r['resolution']}^3, prior {r['prior']:g}, masks {r['image_size'] or 'full'}"
            print(f"| {search} | {r['mean_deg']:.2f} | {r['pitch_rms_deg']:.2f} | "
                  f"{r['yaw_rms_deg']:.2f} | {r['roll_rms_deg']:.2f} | {r.get('pose_search_iou_before', 0):.3f} -> "
                  f"{r.get('pose_search_iou_after', 0):.3f} | {r['seconds']:.0f} |")
        print(f"\nWrote {output}")
        return result


# ------------------------------------------------------------------------------------------------------------------
# What framing a photo is worth


def write_photos(data: Path, ids: List[str], out: Path, canvas: Tuple[int, int], scales: Tuple[float, float],
                 seed: int) -> Dict[str, Dict[str, float]]:
    """Each instance's input image as three images named by its id: `out/in-place/` the input as a cut-out (its
    input mask as transparency), `out/cutout/` that cut-out scaled by a random factor of `scales` and put at a random
    place of a transparent canvas of `canvas` (height, width) pixels, up to a fifth of it off the canvas, and
    `out/photo/` the whole input image scaled and placed alike on a mid-grey canvas, with its mask in
    `out/photo-masks/`. Returns where each instance's input is on its photo: `factor`, the scale drawn (canvas pixels
    per input pixel), `scale_x` and `scale_y`, the scale of the resized image on each axis, and `x` and `y`, the
    canvas pixel of its top-left corner."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folders = {name: out / name for name in ("in-place", "cutout", "photo", "photo-masks")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    height, width = canvas
    placements = {}
    for i in ids:
        rgb = Image.open(data / i / "input.png").convert("RGB")
        mask = Image.open(data / i / "input_mask.png").convert("L")
        in_place = rgb.copy()
        in_place.putalpha(mask)
        in_place.save(folders["in-place"] / f"{i}.png")
        factor = float(rng.uniform(*scales))
        size = (round(rgb.width * factor), round(rgb.height * factor))
        scaled, scaled_mask = rgb.resize(size, Image.Resampling.LANCZOS), mask.resize(size, Image.Resampling.BILINEAR)
        x = int(rng.integers(-size[0] // 5, max(width - size[0] + size[0] // 5, 1)))
        y = int(rng.integers(-size[1] // 5, max(height - size[1] + size[1] // 5, 1)))
        placements[i] = {"factor": factor, "scale_x": size[0] / rgb.width, "scale_y": size[1] / rgb.height,
                         "x": x, "y": y}
        photo, photo_mask = Image.new("RGB", (width, height), (128, 128, 128)), Image.new("L", (width, height), 0)
        photo.paste(scaled, (x, y))
        photo_mask.paste(scaled_mask, (x, y))
        photo.save(folders["photo"] / f"{i}.png")
        photo_mask.save(folders["photo-masks"] / f"{i}.png")
        cutout = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        cutout.paste(scaled, (x, y), scaled_mask)
        cutout.putalpha(photo_mask)
        cutout.save(folders["cutout"] / f"{i}.png")
    return placements


def camera_errors(meshes: Dict[str, Dict], data: Path, placements: Optional[Dict[str, Dict[str, float]]] = None
                  ) -> Optional[Dict[str, float]]:
    """How far the cameras that `gansvr-reconstruct` estimated (`meshes`: its reconstruct.json's entries by instance
    id) are from the input images' own: the angle between the rotations (the input's pose in cameras.json, its true
    pose where given), the focal length's error as a fraction and the principal point's error in pixels of the input.
    Each image is the instance's input, or (`placements`, from `write_photos`) the input placed on a photo, whose
    camera is the input's carried by the placement. None when no image has a camera and a true pose."""
    import numpy as np

    from gansvr_ns.model.losses import rotation_error_deg

    info = json.loads((data / "dataset.json").read_text())
    intrinsics = info["intrinsics"]
    estimated, true, focals, centres = [], [], [], []
    for i, entry in meshes.items():
        camera = entry.get("camera")
        cameras = json.loads((data / i / "cameras.json").read_text()).get("input", {})
        pose = cameras.get("transform_matrix_true", cameras.get("transform_matrix"))
        if camera is None or pose is None:
            continue
        place = (placements or {}).get(i, {"scale_x": 1.0, "scale_y": 1.0, "x": 0.0, "y": 0.0})
        estimated.append(np.asarray(camera["transform_matrix"])[:3, :3])
        true.append(np.asarray(pose)[:3, :3])
        true_fx = intrinsics["fx"] * place["scale_x"]
        focals.append(abs(camera["fx"] / true_fx - 1.0))
        true_cx = place["x"] + intrinsics["cx"] * place["scale_x"]
        true_cy = place["y"] + intrinsics["cy"] * place["scale_y"]
        centres.append(np.hypot((camera["cx"] - true_cx) / place["scale_x"],
                                (camera["cy"] - true_cy) / place["scale_y"]))
    if not estimated:
        return None
    rotations = rotation_error_deg(torch.tensor(np.array(estimated)), torch.tensor(np.array(true))).numpy()
    return {"cameras": len(rotations), "median_rotation_error_deg": float(np.median(rotations)),
            "within_10_deg": float(np.mean(rotations <= 10.0)),
            "median_focal_error": float(np.median(focals)), "median_centre_error_px": float(np.median(centres))}


@dataclass
class Framing:
    """What `gansvr-reconstruct`'s framing of masked images is worth, on the test split's input images made into
    photos (`write_photos`): Chamfer-L1 over the another-instance baseline of each way of giving them to a run, and
    how far each framed photo's scale is from the one that undoes the photo's own (the input's framing)."""

    load_config: Path
    """config.yml of a gansvr (or gansvr-voxel) run."""
    data: Path = Path("data/gan-car")
    """Dataset whose test split's input images (and input masks) make the photos."""
    output_dir: Optional[Path] = None
    """Where the photos, meshes and figures go (default: <run folder>/framing)."""
    resolution: int = 128
    """Marching-cubes resolution of the reconstructions."""
    canvas: Tuple[int, int] = (180, 240)
    """(height, width) of the photos in pixels."""
    scales: Tuple[float, float] = (1.3, 2.6)
    """Range of the factor that each input image is scaled by onto its photo."""
    seed: int = 7
    """Seed of the photos' scales and places."""

    def main(self) -> Dict:
        import numpy as np

        from gansvr_ns.data.format import write_json
        from gansvr_ns.eval.evaluate import another_instance_baseline
        from gansvr_ns.scripts.reconstruct import ReconstructConfig

        check_run_config(self.load_config)
        check_output(self.output_dir, "--output-dir", folder=True)
        data = checked_dataset(self.data)
        ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
        out = self.output_dir or self.load_config.parent / "framing"
        placements = write_photos(data, ids, out / "images", self.canvas, self.scales, self.seed)
        factors = {i: place["factor"] for i, place in placements.items()}
        images = {name: [out / "images" / name / f"{i}.png" for i in ids] for name in ("in-place", "cutout", "photo")}
        masks = [out / "images" / "photo-masks" / f"{i}.png" for i in ids]
        box_only = {"refine_framing": False}
        rows = {
            "the input images as they are": {"data": data},
            "the input images, `--frame always`": {"data": data, "frame": "always"},
            "the input images, `--frame always --no-refine-framing`": {"data": data, "frame": "always", **box_only},
            "the inputs as cut-outs in place, `--frame auto`": {"images": images["in-place"]},
            "photos, cut-outs, `--frame never`": {"images": images["cutout"], "frame": "never"},
            "photos, cut-outs, `--frame auto`": {"images": images["cutout"]},
            "photos, cut-outs, `--frame auto --no-refine-framing`": {"images": images["cutout"], **box_only},
            "photos, whole images, `--frame never`": {"images": images["photo"], "frame": "never"},
            "photos, whole images and `--masks`, `--frame auto`": {"images": images["photo"], "masks": masks},
            "photos, whole images and `--masks`, `--frame auto --no-refine-framing`": {
                "images": images["photo"], "masks": masks, **box_only},
        }
        baseline = another_instance_baseline(data, "test")
        result = {"config": str(self.load_config), "data": str(data), "canvas": list(self.canvas),
                  "scales": list(self.scales), "seed": self.seed, "photo_scales": factors,
                  "another_instance_chamfer": baseline, "rows": {}}
        for k, (name, options) in enumerate(rows.items()):
            pred = out / f"meshes-{k}"
            ReconstructConfig(load_config=self.load_config, output_dir=pred, resolution=self.resolution,
                              **options).main()
            meshes = json.loads((pred / "reconstruct.json").read_text())["meshes"]
            row = reference_scores(pred, data, baseline)
            framed = {i: meshes[i]["framing_scale"] for i in ids if meshes[i]["framing_scale"] is not None}
            row["framed"], row["framing_scales"] = len(framed), framed
            photos = "images" in options and options["images"] is not images["in-place"]
            if framed and photos:
                # a framed photo's ideal scale undoes its own: 1 / factor (the input's framing is the data's)
                errors = [abs(np.log(scale * factors[i])) for i, scale in framed.items()]
                row["median_scale_error"] = float(np.expm1(np.median(errors)))
            row["camera"] = camera_errors({i: meshes[i] for i in ids}, data, placements if photos else None)
            result["rows"][name] = row
        output = out / "framing.json"
        write_json(output, result)
        print("| images | framed | scale error (median) | Chamfer-L1 | / another instance | F@0.05 | IoU "
              "| camera: rotation error (median), within 10 deg, focal error, centre error (px) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, m in result["rows"].items():
            error = f"{100 * m['median_scale_error']:.1f}%" if "median_scale_error" in m else ""
            camera = m["camera"]
            camera = "" if camera is None else (
                f"{camera['median_rotation_error_deg']:.1f} deg, {100 * camera['within_10_deg']:.0f}%, "
                f"{100 * camera['median_focal_error']:.1f}%, {camera['median_centre_error_px']:.1f}")
            print(f"| {name} | {m['framed']} of {len(ids)} | {error} | {m['chamfer_l1']:.4f} | "
                  f"{m['chamfer_ratio']:.2f} | {m['fscore@0.05']:.3f} | {m['iou']:.3f} | {camera} |")
        print(f"| another instance | | | {baseline:.4f} | 1.00 | | | |")
        print(f"\nWrote {output}")
        return result


def photo_copy(rgb, mask, scale: int, quality: Optional[int]):
    """`rgb` (float [H, W, 3]) and its `mask` as a photo would give them: scaled up `scale` times (bicubic: the
    soft edges of a photo's object) and, with a `quality`, through JPEG at that quality."""
    import io

    import numpy as np
    from PIL import Image

    image = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    if scale != 1:
        size = (image.width * scale, image.height * scale)
        image = image.resize(size, Image.BICUBIC)
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BILINEAR)) > 127
    if quality is not None:
        encoded = io.BytesIO()
        image.save(encoded, "JPEG", quality=quality)
        image = Image.open(encoded).convert("RGB")
    return np.asarray(image, dtype=np.float32) / 255, mask


@dataclass
class Masks:
    """How well `gansvr-reconstruct --estimate-masks` finds the object (`backdrop_mask`): mean IoU with the true masks
    of the test split's images from the other renderer (`write_shifted_inputs`; a checkerboard or a gradient backdrop)
    as they are, through JPEG, and scaled up as a photo's soft edges; and of the generator's own input images."""

    data: List[Path] = field(default_factory=lambda: [Path("data/gan-car")])
    """Datasets (missing preset paths are generated first)."""
    output_dir: Path = Path("outputs/masks")
    """Where the other renderer's images go."""
    qualities: List[int] = field(default_factory=lambda: [90, 75])
    """JPEG qualities."""
    scale: int = 4
    """Factor of the scaled-up copies."""
    output: Optional[Path] = None
    """JSON file for the figures (default: <output-dir>/masks.json)."""

    def main(self) -> Dict:
        import numpy as np

        from gansvr_ns.data import format as fmt
        from gansvr_ns.data.backdrop import backdrop_mask
        from gansvr_ns.eval.shifted import shifted_mask, write_shifted_inputs
        from gansvr_ns.model.losses import silhouette_iou

        check_output(self.output_dir, "--output-dir", folder=True)
        out = self.output or self.output_dir / "masks.json"
        check_output(out, "--output")
        datasets = [checked_dataset(data) for data in self.data]
        rows = {"the other renderer's images, PNG": (1, None)}
        rows.update({f"the same, JPEG quality {q}": (1, q) for q in self.qualities})
        rows[f"the same scaled up {self.scale}x, PNG"] = (self.scale, None)
        rows.update({f"the same scaled up {self.scale}x, JPEG quality {q}": (self.scale, q) for q in self.qualities})
        result = {"machine": machine(), "datasets": {}}
        for data in datasets:
            ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
            shifted = write_shifted_inputs(data, "test", self.output_dir / data.name, masks=True)
            sources = {name: [(fmt.load_rgb(path), fmt.load_mask(shifted_mask(path)), *copy)
                              for path in shifted.values()] for name, copy in rows.items()}
            if all((data / i / "input_mask.png").is_file() for i in ids):
                sources["the generator's input images"] = [
                    (fmt.load_rgb(data / i / "input.png"), fmt.load_mask(data / i / "input_mask.png"), 1, None)
                    for i in ids]
            figures = {}
            for name, items in sources.items():
                ious, seconds = [], 0.0
                for rgb, true, scale, quality in items:
                    rgb, true = photo_copy(rgb, true, scale, quality)
                    start = time.perf_counter()
                    found = backdrop_mask(rgb)
                    seconds += time.perf_counter() - start
                    ious.append(0.0 if found is None else float(silhouette_iou(
                        torch.from_numpy(found).float(), torch.from_numpy(true).float())))
                figures[name] = {"mean_iou": float(np.mean(ious)), "lowest_iou": float(np.min(ious)),
                                 "refused": sum(i == 0.0 for i in ious), "images": len(ious),
                                 "seconds_per_image": seconds / len(ious)}
            result["datasets"][data.name] = figures
        fmt.write_json(out, result)
        names = list(result["datasets"])
        print("| images | " + " | ".join(f"{n}: mean IoU (lowest)" for n in names) + " | seconds per image |")
        print("| --- | " + " | ".join("---" for _ in names) + " | --- |")
        for row in next(iter(result["datasets"].values())):
            cells = [result["datasets"][n].get(row) for n in names]
            text = [f"{c['mean_iou']:.3f} ({c['lowest_iou']:.2f})" if c else "" for c in cells]
            seconds = max(c["seconds_per_image"] for c in cells if c)
            print(f"| {row} | " + " | ".join(text) + f" | {seconds:.3f} |")
        print(f"\nWrote {out}")
        return result


Commands = Union[
    Annotated[Quality, tyro.conf.subcommand("quality")],
    Annotated[Throughput, tyro.conf.subcommand("throughput")],
    Annotated[Inference, tyro.conf.subcommand("inference")],
    Annotated[Ablations, tyro.conf.subcommand("ablations")],
    Annotated[Domain, tyro.conf.subcommand("domain")],
    Annotated[HullBound, tyro.conf.subcommand("hull-bound")],
    Annotated[PriorBound, tyro.conf.subcommand("prior-bound")],
    Annotated[LatentBound, tyro.conf.subcommand("latent-bound")],
    Annotated[ArchitectureBound, tyro.conf.subcommand("architecture-bound")],
    Annotated[SupervisionBound, tyro.conf.subcommand("supervision-bound")],
    Annotated[EncoderProbe, tyro.conf.subcommand("encoder-probe")],
    Annotated[UncertaintyFlaws, tyro.conf.subcommand("uncertainty-flaws")],
    Annotated[PoseSearch, tyro.conf.subcommand("pose-search")],
    Annotated[Framing, tyro.conf.subcommand("framing")],
    Annotated[Masks, tyro.conf.subcommand("masks")],
]


def entrypoint() -> None:
    """Run a subcommand; bad input ends with one line on stderr and exit code 2, never a traceback."""
    from gansvr_ns.data.datamanager import DataError

    command = tyro.cli(Commands)
    try:
        command.main()
        return
    except (ValueError, OSError) as err:  # FormatError is a ValueError; OSError: a path that cannot be read or written
        message = str(err)
    except DataError as err:  # the datamanager's one line, "gansvr: <file>: <what is wrong>"
        message = str(err.code).removeprefix("gansvr: ")
    except subprocess.CalledProcessError as err:  # its own stderr, above, said why
        message = f"{Path(err.cmd[0]).name} {err.cmd[1]} failed (exit code {err.returncode}); its error is above"
    print(f"benchmark.py: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    entrypoint()

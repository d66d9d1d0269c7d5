"""`gansvr-reconstruct`: turn images into meshes with a trained gansvr run.

    gansvr-reconstruct --load-config outputs/gan-car/gansvr/RUN/config.yml --images car.png --output-dir meshes
    gansvr-reconstruct --load-config CONFIG --data data/gan-car --split test --output-dir meshes

With `--data`, every instance of the split is reconstructed from its `input.png` and written as
`<instance id>.ply`, the naming `gansvr-eval` expects. Images given with `--images` are written as
`<image stem>.ply` (stems that repeat, or that are a dataset instance's id, get their folder's name, then
their extension, then a number added).

An image whose object is masked (by its transparency, or by a file of `--masks`) is first framed as the run's
training inputs frame theirs (`gansvr_ns/data/framing.py`): a photo's object is anywhere and of any size. Its
reconstruction then tells the framing better than the mask's box can (`gansvr_ns/model/framing_search.py`), and the
image is framed and encoded once more.

For every image whose object mask is known, `reconstruct.json` also records a camera (`--estimate-camera`): the pose
of the training input whose view of the reconstruction fits the mask best, with intrinsics in the image's own pixels,
so that the mesh drawn with it lies over the image's object. The latent the encoder read and that camera are then
fitted to the mask for a few gradient steps (`--fit-steps`, `gansvr_ns/model/mask_fit.py`), and the mesh is the
fitted latent's.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Literal, NamedTuple, Optional, Set, Tuple

import numpy as np
import torch
import tyro
import yaml
from rich.console import Console
from rich.progress import track

from gansvr_ns.data import format as fmt
from gansvr_ns.data.framing import frame_image, frame_mask

CONSOLE = Console()
GANSVR_METHODS = ("gansvr", "gansvr-voxel")


MIN_RESOLUTION = 8
"""The coarsest marching-cubes grid accepted (points per axis over [-1, 1]^3)."""
FRAMING_TOLERANCE = 3.0
"""`--frame auto` keeps an image's scale, and its object's position on an axis, where they are within this many
spreads of the training inputs' (`frame_image`)."""
ESTIMATED_MASK = "{name}_estimated_mask.png"
"""File name, in the output folder, of the object mask estimated for an image's output `name` (`--estimate-masks`):
not `<name>_mask.png`, a usual name for a photo's own mask, which an output folder beside the photos would replace."""
MAX_FRAMING_MASKS = 1000
"""Training masks read to learn how the run's inputs frame their object (`training_inputs`)."""


class Job(NamedTuple):
    """One image to reconstruct: the output name, the image, its object mask file if any, whether it is a dataset's
    input (`--data`), whether it is framed before it is encoded, whether it is put on grey by its mask, whether
    its camera is estimated, and the object mask estimated from its backdrop if any (`--estimate-masks`)."""

    name: str
    image: Path
    mask: Optional[Path]
    dataset_input: bool
    framed: bool = False
    grey: bool = False
    camera: bool = False
    estimated: Optional[np.ndarray] = None

    def object_mask(self) -> Optional[np.ndarray]:
        """Its object mask: the estimated one, its mask file, or its transparency (None for an image with none)."""
        return self.estimated if self.estimated is not None else object_mask(self.image, self.mask)


@dataclass
class ReconstructConfig:
    """Reconstruct a mesh from each image with a trained gansvr run."""

    load_config: Path
    """config.yml of a gansvr training run."""
    output_dir: Path
    """Folder for the meshes."""
    images: List[Path] = field(default_factory=list)
    """Images to reconstruct (any size; RGB, or RGBA whose transparency masks the object)."""
    masks: List[Path] = field(default_factory=list)
    """Object masks of `images`, one per image in the same order (a value > 127 is object)."""
    estimate_masks: bool = False
    """Estimate the object mask of each image of `images` that has none (no file of `masks`, no transparency) from
    its backdrop (`gansvr_ns/data/backdrop.py`): for photos of an object on a plain, graded or patterned backdrop
    that runs out to the image's border. The estimate is written as `<name>_estimated_mask.png` and used as a file
    of `masks` is. An image whose border is not mostly one backdrop gets none and is encoded as it is."""
    frame: Literal["auto", "always", "never"] = "auto"
    """Crop and scale each image so that its object sits where, and as large as, in the run's training inputs.
    auto: the images of `images` with a mask (a file of `masks`, or transparency) whose object is not already framed
    so; always: every image, dataset inputs by their input_mask.png too (an image without a mask is an error); never:
    every image as it is."""
    background: Literal["auto", "grey", "keep"] = "auto"
    """What the encoder sees around an image's object. auto: the grey that a cut-out's transparency reads as, for the
    images of `images` given a file of `masks` (read like cut-outs) and for every image with a mask of a run trained
    on grey (`--pipeline.datamanager.condition-background grey`); the rest as it is. grey: every image with a mask,
    dataset inputs by their input_mask.png too. keep: every image as it is (a cut-out's transparency still reads as
    grey)."""
    refine_framing: bool = True
    """Frame a framed image once more, by where its reconstruction, seen from the training inputs' cameras, puts the
    object (gansvr runs; `gansvr_ns/model/framing_search.py`); otherwise by its mask's box alone."""
    estimate_camera: bool = True
    """Write a camera for each image whose object mask is known (gansvr runs) to reconstruct.json: the pose of the
    training input whose view of the reconstruction fits the mask best (the object's frame, OpenGL), with fx, fy, cx,
    cy in the image's own pixels. It costs one search of the reconstruction's silhouettes per image (about 0.15 s on
    a CPU)."""
    fit_steps: int = 40
    """Gradient steps fitting each reconstruction to its image's object mask, for the images given a camera: the
    latent the encoder read and the camera move so that the mesh's silhouette, drawn with the camera, covers the mask
    (`gansvr_ns/model/mask_fit.py`; the camera written is the fitted one). About 0.5 s per image on a CPU; 0 turns it
    off."""
    overlay: bool = False
    """Also write `<name>_overlay.png` for every image given a camera: the image with the mesh drawn by that camera
    over it, tinted and outlined, to check the camera and the mesh against the image."""
    data: Optional[Path] = None
    """A dataset whose split's input images to reconstruct, named by instance id."""
    split: Literal["train", "val", "test"] = "test"
    """Split of `data` to reconstruct."""
    resolution: int = 128
    """Marching-cubes grid resolution over [-1, 1]^3 (at least 8)."""
    format: List[Literal["ply", "obj", "glb"]] = field(default_factory=lambda: ["ply"])
    """Mesh formats to write."""

    def main(self) -> None:
        jobs = self.jobs()
        framing, cameras = None, None
        if any(job.framed for job in jobs):
            framing, cameras = training_inputs(self.load_config)
        elif any(job.camera for job in jobs):
            try:
                framing, cameras = training_inputs(self.load_config)
            except ValueError as err:
                CONSOLE.print(f"[yellow]No cameras estimated: {err}[/yellow]", soft_wrap=True)
                jobs = [job._replace(camera=False) for job in jobs]
        model = load_model(self.load_config)
        from gansvr_ns.model.mesh import mesh_silhouette, overlay, save_mesh

        reconstruct_mesh = mesh_reconstructor(model)
        sdf_fn = model_sdf(model) if self.refine_framing or any(job.camera for job in jobs) else None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        timings, summary = [], {}
        for job in track(jobs, description="Reconstructing", console=CONSOLE, transient=True):
            start = time.perf_counter()
            photo = fmt.load_rgb(job.image)
            photo_mask = job.object_mask() if job.framed or job.grey or job.camera else None
            rgb, mask, scale, fit = self.framed_image(job, photo, photo_mask, framing, cameras, model,
                                                      sdf_fn if self.refine_framing else None)
            image = encoder_image(rgb, mask if job.grey else None)
            camera = fitted = None
            if job.camera and sdf_fn is not None:
                camera = estimate_camera(image, mask, photo_mask, scale is not None, framing, cameras, model, sdf_fn)
            if camera is not None and self.fit_steps > 0:
                from gansvr_ns.model.mask_fit import fit_to_mask

                with torch.no_grad():
                    latent = model.encode(image)
                fitted = fit_to_mask(model.field, latent, camera, photo_mask, self.fit_steps)
                camera = fitted.camera
                mesh = reconstruct_mesh(image, self.resolution, latent=fitted.latent)
            else:
                mesh = reconstruct_mesh(image, self.resolution)
            timings.append(time.perf_counter() - start)
            written = save_mesh(mesh, self.output_dir / job.name, self.format)
            estimated = None
            if job.estimated is not None:
                estimated = self.output_dir / ESTIMATED_MASK.format(name=job.name)
                fmt.save_mask(estimated, job.estimated)
                written.append(estimated)
            if self.overlay and camera is not None:
                written.append(self.output_dir / f"{job.name}_overlay.png")
                silhouette = mesh_silhouette(mesh.vertices, mesh.faces, camera.c2w, camera.intrinsics,
                                             camera.image_size)
                fmt.save_rgb(written[-1], overlay(photo, silhouette))
            summary[job.name] = {"image": str(job.image),
                                 "estimated_mask": None if estimated is None else str(estimated),
                                 "framing_scale": scale,
                                 "framing_fit": None if fit is None else fit.iou, "on_grey": job.grey,
                                 "camera": None if camera is None else camera.to_json(),
                                 "mask_fit": None if fitted is None else {
                                     "steps": self.fit_steps, "iou_before": round(fitted.iou_before, 4),
                                     "iou_after": round(fitted.iou_after, 4)},
                                 "faces": int(len(mesh.faces)), "files": [str(p) for p in written]}
        seconds_per_image = sum(timings) / max(len(timings), 1)
        fmt.write_json(self.output_dir / "reconstruct.json", {
            "config": str(self.load_config), "resolution": self.resolution,
            "seconds_per_image": seconds_per_image, "meshes": summary,
        })
        empty = [name for name, entry in summary.items() if entry["faces"] == 0]
        if empty:
            CONSOLE.print(
                f"[yellow]{len(empty)} mesh(es) are empty, the SDF has no zero level set in [-1, 1]^3: "
                f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}[/yellow]",
                soft_wrap=True,
            )
        # under `auto`, an image of --images that is not framed has no mask
        unmasked = [job.name for job in jobs if self.frame == "auto" and not job.dataset_input and not job.framed]
        if unmasked:
            advice = ("no mask could be estimated from their backdrop: give --masks, or a cut-out with transparency"
                      if self.estimate_masks else "give --masks, a cut-out with transparency, or --estimate-masks for "
                      "photos on a plain backdrop")
            CONSOLE.print(
                f"[yellow]{len(unmasked)} image(s) have no object mask and were encoded as they are "
                f"({', '.join(unmasked[:3])}{' ...' if len(unmasked) > 3 else ''}); a photo reconstructs better framed "
                f"as the training inputs: {advice}.[/yellow]",
                soft_wrap=True,
            )
        framed = sum(entry["framing_scale"] is not None for entry in summary.values())
        CONSOLE.print(
            f"Wrote {len(jobs)} mesh(es) to {self.output_dir} "
            f"({seconds_per_image:.2f} s per image at resolution {self.resolution}"
            f"{f'; {framed} framed as the training inputs' if framed else ''})"
        )

    def framed_image(self, job: Job, rgb: np.ndarray, mask: Optional[np.ndarray], framing, cameras, model,
                     sdf_fn: Optional[Callable]):
        """The image `rgb` of `job` (H, W, 3), framed where the job is (by its object `mask`'s box, then by its
        reconstruction with `sdf_fn`), its mask placed alike (None where the image has none, or it is not read:
        images neither framed, put on grey nor given a camera), the framing scale and the framing search's
        `FramingFit` (None where not framed, or not by the reconstruction)."""
        if not job.framed:
            return rgb, mask, None, None
        tolerance = 0.0 if self.frame == "always" else FRAMING_TOLERANCE
        framed, scale = frame_image(rgb, mask, framing, tolerance)
        if scale is None:  # framed like the training inputs already: left as it is
            return rgb, mask, None, None
        boxed = frame_mask(mask, framing, tolerance)
        if sdf_fn is None:
            return framed, boxed, scale, None
        from gansvr_ns.model.framing_search import search_framing

        model.select_condition(encoder_image(framed, boxed if job.grey else None))
        fit = search_framing(sdf_fn, boxed, framing, cameras)
        if fit is None:
            return framed, boxed, scale, None
        framed, scale = frame_image(rgb, mask, fit.framing, tolerance=0.0)
        return framed, frame_mask(mask, fit.framing, tolerance=0.0), scale, fit

    def jobs(self) -> List[Job]:
        """The images to reconstruct; every image and mask is checked to be readable, and every mask to be its image's
        size, before any work starts (`checked`)."""
        jobs: List[Job] = []
        if self.data is not None:
            info = fmt.read_dataset(self.data)
            for i in info.instances(self.split):
                image, mask = info.root / i / "input.png", info.root / i / "input_mask.png"
                jobs.append(Job(i, image, mask if mask.is_file() else None, dataset_input=True))
        if self.masks and len(self.masks) != len(self.images):
            raise ValueError(f"--masks: {len(self.masks)} masks for {len(self.images)} images (one per image)")
        names = output_names(self.images, taken={job.name for job in jobs})
        for k, (name, path) in enumerate(zip(names, self.images)):
            jobs.append(Job(name, path, self.masks[k] if self.masks else None, dataset_input=False))
        if not jobs:
            raise ValueError("nothing to reconstruct: give --images or --data")
        if self.resolution < MIN_RESOLUTION:
            raise ValueError(f"--resolution {self.resolution}: must be at least {MIN_RESOLUTION}")
        if self.fit_steps < 0:
            raise ValueError(f"--fit-steps {self.fit_steps}: must be 0 (no fit) or more")
        if not self.format:
            raise ValueError("--format: give at least one of ply, obj, glb")
        if self.overlay and not self.estimate_camera:
            raise ValueError("--overlay draws each mesh by its image's camera: it needs --estimate-camera")
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ValueError(f"{self.output_dir}: --output-dir exists and is not a folder")
        run = load_run_config(self.load_config)
        if self.overlay and run.method_name != "gansvr":
            raise ValueError(f"--overlay draws each mesh by its image's camera, which a {run.method_name} run does not "
                             "estimate (gansvr runs do)")
        grey_run = encoder_background(run) == "grey"
        camera = self.estimate_camera and run.method_name == "gansvr"
        if self.estimate_masks:  # about a second per 12-megapixel photo
            jobs = track(jobs, description="Estimating masks", console=CONSOLE, transient=True)
        jobs = [self.checked(self.with_estimated_mask(job), grey_run, camera) for job in jobs]
        self.check_outputs(jobs)
        return jobs

    def check_outputs(self, jobs: List[Job]) -> None:
        """Refuse to write over an input: a mesh, estimated mask or overlay of a job at the path of an image or
        mask that is read."""
        inputs = {path.resolve() for job in jobs for path in (job.image, job.mask) if path is not None}
        for job in jobs:
            outputs = [self.output_dir / f"{job.name}.{suffix}" for suffix in self.format]
            if job.estimated is not None:
                outputs.append(self.output_dir / ESTIMATED_MASK.format(name=job.name))
            if self.overlay:
                outputs.append(self.output_dir / f"{job.name}_overlay.png")
            for path in outputs:
                if path.resolve() in inputs:
                    raise ValueError(f"{path}: an input file, which the output of {job.image} would replace "
                                     "(choose another --output-dir)")

    def with_estimated_mask(self, job: Job) -> Job:
        """`job` with the object mask estimated from its backdrop, where `estimate_masks` asks for one and it has
        no mask (a dataset input, a file of `masks` or transparency) and the estimate is not refused."""
        if not self.estimate_masks or job.dataset_input or job.mask is not None:
            return job
        if fmt.load_alpha_mask(job.image) is not None:
            return job
        from gansvr_ns.data.backdrop import backdrop_mask

        return job._replace(estimated=backdrop_mask(fmt.load_rgb(job.image)))

    def checked(self, job: Job, grey_run: bool = False, camera: bool = False) -> Job:
        """`job` with whether it is framed (see `frame`), put on grey (see `background`; `grey_run`: the run's
        encoder was trained on grey) and given a camera (`camera`: wanted for every image with a mask), once its image
        and the mask it is framed or put on grey by are read. A mask that could only give a camera, and cannot (of
        another size than its image, or empty), gives none."""
        size = fmt.image_size_of(job.image)
        fmt.load_rgb(job.image)
        frames = self.frame == "always" or (self.frame == "auto" and not job.dataset_input)
        given = (job.mask is not None or job.estimated is not None) and not job.dataset_input
        grey = self.background == "grey" or (self.background == "auto" and (grey_run or given))
        if not (frames or grey or camera):
            return job
        mask = job.object_mask()
        if mask is None:
            if frames and self.frame == "always":
                raise ValueError(f"{job.image}: no object mask to frame it by (give --masks, an image with "
                                 "transparency, or --frame auto)")
            return job
        if not (frames or grey) and (mask.shape != size or not mask.any()):
            return job
        if mask.shape != size:
            turned = [name for name, path in (("image", job.image), ("mask", job.mask)) if fmt.exif_turned(path)]
            note = f"; the {' and the '.join(turned)} as turned by its EXIF orientation" if turned else ""
            raise ValueError(f"{job.mask}: mask of {mask.shape[1]}x{mask.shape[0]} px for an image of "
                             f"{size[1]}x{size[0]} px ({job.image}{note})")
        if not mask.any():
            raise ValueError(f"{job.mask or job.image}: the object mask is empty"
                             f"{', nothing to frame' if frames else ''}")
        return job._replace(framed=frames, grey=grey, camera=camera)


def output_names(images: List[Path], taken: Set[str]) -> List[str]:
    """A distinct output name for each of `images`, none of them in `taken` (the dataset inputs' ids): its stem, or
    where stems repeat its folder's name and stem, then with its extension, then numbered."""
    def candidates(path: Path) -> List[str]:
        folder = path.absolute().parent.name
        extension = path.suffix.lstrip(".")
        return [path.stem, f"{folder}_{path.stem}", f"{path.stem}_{extension}", f"{folder}_{path.stem}_{extension}"]

    options = [candidates(path) for path in images]
    counts = [Counter(level) for level in zip(*options)]  # how many images have each name, level by level
    names: List[str] = []
    used = set(taken)
    for own in options:
        # the first level at which no other image has the same name, so that repeats are all renamed alike
        name = next((candidate for level, candidate in enumerate(own) if candidate not in used
                     and counts[level][candidate] == 1), None)
        number = 2
        while name is None or name in used:
            name, number = f"{own[0]}_{number}", number + 1
        names.append(name)
        used.add(name)
    return names


def encoder_image(rgb: np.ndarray, mask: Optional[np.ndarray] = None) -> torch.Tensor:
    """An (H, W, 3) image as the encoder reads it, (1, 3, H, W): off its object `mask`, where given, the grey that a
    cut-out's transparency reads as."""
    if mask is not None:
        rgb = np.where(mask[..., None], rgb, np.float32(fmt.TRANSPARENT_BACKGROUND)).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]


def estimate_camera(image: torch.Tensor, mask: np.ndarray, photo_mask: np.ndarray, framed: bool, framing, cameras,
                    model, sdf_fn: Callable):
    """The camera (`framing_search.ImageCamera`, in the pixels of the image as given, whose object mask is
    `photo_mask`) from a search on `mask`, the object mask of `image`, the image the encoder reads (as `framed_image`
    gives them: `framed`, or the image as given), resized to the training inputs' size as the encoder resizes the
    image. None where the search finds nothing."""
    from gansvr_ns.model.framing_search import ORBIT_OFFSETS, image_camera, search_framing

    height, width = framing.image_size
    seen = mask
    if seen.shape != (height, width):
        seen = torch.nn.functional.interpolate(torch.from_numpy(mask).float()[None, None], size=(height, width),
                                               mode="bilinear", antialias=True)[0, 0].numpy() > 0.5
    model.select_condition(image)
    fit = search_framing(sdf_fn, seen, framing, cameras, orbit_offsets=ORBIT_OFFSETS)
    if fit is None:
        return None
    if framed:  # its mask is the photo's moved and scaled
        return image_camera(fit, cameras, photo_mask)
    camera = image_camera(fit, cameras, seen)  # the image as given, resized by the encoder: scale the pixels back
    sy, sx = photo_mask.shape[0] / height, photo_mask.shape[1] / width
    fx, fy, cx, cy = camera.intrinsics
    return dataclasses.replace(camera, intrinsics=(fx * sx, fy * sy, cx * sx, cy * sy),
                               image_size=(int(photo_mask.shape[0]), int(photo_mask.shape[1])))


def encoder_background(run) -> str:
    """What the encoder of a run (its config, `load_run_config`) was trained to see around the object: "image" or
    "grey" (`condition_background`)."""
    return getattr(run.pipeline.datamanager, "condition_background", "image")


def object_mask(image: Path, mask: Optional[Path]):
    """The object mask of an image: its mask file if given, else its transparency (None for an image with neither)."""
    return fmt.load_mask(mask, zero_one=True) if mask is not None else fmt.load_alpha_mask(image)


def training_inputs(config_path: Path):
    """How the run's training inputs frame their object (`framing_from_masks`) and the cameras that took them
    (`InputCameras`): from the input masks and input poses of up to MAX_FRAMING_MASKS train instances of the run's
    dataset, or, where an instance has none, its first view's (with one train instance, all its views'). A dataset
    that is not on this machine is a ValueError."""
    from gansvr_ns.data.framing import framing_from_masks
    from gansvr_ns.model.framing_search import InputCameras

    config = relocate_run(load_run_config(config_path), config_path)
    data = run_dataset(config)
    if data is None or not Path(data).is_dir():
        raise ValueError(f"{data}: the run's dataset is missing; framing an image, or estimating its camera, reads "
                         "the run's training inputs (or pass --frame never --no-estimate-camera)")
    info = fmt.read_dataset(data)
    records = [fmt.read_instance(info, i, check_images=False) for i in info.instances("train")[:MAX_FRAMING_MASKS]]
    paths = [record.input_mask_path or record.views[0].mask_path for record in records]
    poses = [record.input_camera.get("transform_matrix", record.views[0].transform_matrix) for record in records]
    if len(paths) < 2:  # one train instance: its views' masks
        paths = [view.mask_path for record in records for view in record.views]
        poses = [view.transform_matrix for record in records for view in record.views]
    try:
        framing = framing_from_masks(fmt.load_mask(path) for path in paths)
    except ValueError as err:
        raise ValueError(f"{info.root}: {err}") from None
    intrinsics = torch.tensor([info.intrinsics[key] for key in ("fx", "fy", "cx", "cy")], dtype=torch.float32)
    c2w = torch.tensor(np.array([np.asarray(pose, dtype=np.float64)[:3] for pose in poses]), dtype=torch.float32)
    return framing, InputCameras(c2w=c2w, intrinsics=intrinsics)


def model_sdf(model) -> Optional[Callable]:
    """The SDF (points (N, 3) on the CPU -> (N,) on the CPU) of the model's selected image, for gansvr runs; None for
    a model without an SDF field."""
    field = getattr(model, "field", None)
    if not hasattr(field, "forward_geonetwork"):
        return None
    return lambda points: field.forward_geonetwork(points.to(model.device))[:, 0].cpu()


def load_run_config(config_path: Path):
    """The TrainerConfig of a gansvr (or gansvr-voxel) run's config.yml; a missing file, one that is not a run config
    or a run of another method is a ValueError naming the file."""
    if not config_path.is_file():
        raise ValueError(f"{config_path}: config file not found")
    try:
        config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_path}: not a nerfstudio run config ({err.__class__.__name__})") from None
    method = getattr(config, "method_name", None)
    if method not in GANSVR_METHODS:
        raise ValueError(f"{config_path}: a '{method}' run, not a gansvr run")
    return config


def load_pipeline(config_path: Path, test_mode: Literal["inference", "val", "test"] = "inference"):
    """Load a gansvr run on CUDA when available, else CPU; errors name the file. `test_mode` is nerfstudio's: the
    default loads no views, "val" and "test" load the train views too."""
    checkpoint = run_checkpoint(config_path)
    from nerfstudio.utils.eval_utils import eval_setup

    try:
        _, pipeline, _, _ = eval_setup(config_path, test_mode=test_mode,
                                       update_config_callback=functools.partial(relocate_run, config_path=config_path))
    except Exception:
        read_checkpoint(checkpoint, torch.device("cpu"))  # a corrupt checkpoint is named in one line
        raise
    return pipeline


def load_model(config_path: Path):
    """The model of a gansvr run, to reconstruct images with: set up with its dataset (`load_pipeline`) when the
    dataset is on this machine, else (gansvr runs) from the run's latest checkpoint alone (`model_from_checkpoint`),
    so that a run copied without its training data still turns images into meshes."""
    config = relocate_run(load_run_config(config_path), config_path)
    data = run_dataset(config)
    if data is not None and Path(data).exists():
        return load_pipeline(config_path).model
    if config.method_name != "gansvr":  # gansvr-voxel's mesh level follows what its dataset supervised it with
        raise ValueError(f"{data}: the run's dataset is missing (a {config.method_name} run is loaded with it)")
    return model_from_checkpoint(config, config.get_checkpoint_dir())


def run_checkpoint(config_path: Path) -> Path:
    """The latest checkpoint of the gansvr (or gansvr-voxel) run whose config.yml is `config_path`, read from beside
    it; a ValueError naming the file or folder otherwise (`load_run_config`, `latest_checkpoint`)."""
    return latest_checkpoint(relocate_run(load_run_config(config_path), config_path).get_checkpoint_dir())


def latest_checkpoint(checkpoint_dir: Path) -> Path:
    """A run's latest `step-*.ckpt` in `checkpoint_dir` (nerfstudio pads the step, so names sort by it); a
    ValueError naming the folder when it has none."""
    checkpoints = sorted(checkpoint_dir.glob("step-*.ckpt")) if checkpoint_dir.is_dir() else []
    if not checkpoints:
        raise ValueError(f"{checkpoint_dir}: no checkpoint (step-*.ckpt) of this run")
    return checkpoints[-1]


def read_checkpoint(checkpoint: Path, device: torch.device) -> Tuple[Dict, int]:
    """The pipeline state and step of a nerfstudio checkpoint; a corrupt or foreign file is a ValueError naming it."""
    try:
        loaded = torch.load(checkpoint, map_location=device, weights_only=False)
        return loaded["pipeline"], loaded["step"]
    except Exception as err:  # torch raises many error types for a corrupt or foreign file
        raise ValueError(f"{checkpoint}: not a nerfstudio checkpoint ({err.__class__.__name__})") from None


def model_from_checkpoint(config, checkpoint_dir: Path):
    """Set up a run's model without its dataset and load its latest checkpoint (on CUDA when available). What the
    model reads from the dataset at setup (the number of train cameras, the start shape) is in the checkpoint; the
    viewer's list of instances is not, and stays empty. A folder without a checkpoint is a ValueError naming it."""
    from gansvr_ns.data.dataparser import object_scene_box

    checkpoint = latest_checkpoint(checkpoint_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    saved, step = read_checkpoint(checkpoint, device)
    state = {key.removeprefix("module.")[len("_model."):]: value for key, value in saved.items()
             if key.removeprefix("module.").startswith("_model.")}
    per_camera = ("searched_rotations", "camera_optimizer.pose_adjustment", "uncertainty_field.view_embedding.weight")
    num_train = next((len(state[key]) for key in per_camera if key in state), 1)
    metadata = {}
    if any(key.startswith("alignment.") for key in state):
        metadata["real_images"] = True
    if "instance_codes.weight" in state:
        metadata["instance_ids"] = [str(i) for i in range(len(state["instance_codes.weight"]))]
    model = config.pipeline.model.setup(
        scene_box=object_scene_box(), num_train_data=num_train, metadata=metadata, device=device, grad_scaler=None,
    )
    model.update_to_step(step)  # as nerfstudio's `VanillaPipeline.load_pipeline` does
    model.load_state_dict(state)
    return model.to(device).eval()


def relocate_run(config, config_path: Path):
    """Make a run's paths work from any working directory. ns-train stores its paths as given, usually relative to
    the directory it ran in, and nerfstudio reads them relative to the current one. The checkpoints are read from
    beside `config_path` (the run folder `<output_dir>/<experiment>/<method>/<timestamp>` holds both, and may have
    been moved or renamed). A relative dataset path that does not exist here is read from the directory the run was
    trained in, where the run folder's stored relative path ends, when the dataset is there. The encoder's starting
    weights file is not read (the checkpoint holds the trained weights)."""
    if hasattr(config.pipeline.model, "encoder_weights"):
        config.pipeline.model.encoder_weights = None
    run_dir = config_path.resolve().parent
    # an absolute path: nerfstudio's checkpoint folder, base dir / relative_model_dir, is then this one in any layout
    config.relative_model_dir = run_dir / config.relative_model_dir
    if run_dir.parent.name != config.method_name:  # not a run folder's layout: the dataset path stays as stored
        return config
    base = config.get_base_dir()
    depth = len(base.parts)
    trained_in = None
    if not base.is_absolute() and len(run_dir.parts) > depth and run_dir.parts[-depth:] == base.parts:
        trained_in = Path(*run_dir.parts[:-depth])
    config.output_dir = run_dir.parents[2]
    config.experiment_name = run_dir.parents[1].name
    config.timestamp = run_dir.name
    data = run_dataset(config)
    if trained_in is not None and data is not None and not Path(data).is_absolute() and not Path(data).exists():
        if (trained_in / data).exists():
            config.pipeline.datamanager.data = config.pipeline.datamanager.dataparser.data = trained_in / data
    return config


def run_dataset(config) -> Optional[Path]:
    """The dataset path a run's config names (the datamanager's `data`, which overrides its dataparser's)."""
    manager = config.pipeline.datamanager
    return manager.data if manager.data is not None else getattr(manager.dataparser, "data", None)


def mesh_reconstructor(model) -> Callable:
    """(image, resolution) -> mesh of the run's method: the model's own `reconstruct_mesh` (gansvr-voxel: marching
    cubes on the occupancy grid), else gansvr's SDF extraction."""
    if hasattr(model, "reconstruct_mesh"):
        return model.reconstruct_mesh
    from gansvr_ns.model.mesh import reconstruct_mesh

    return functools.partial(reconstruct_mesh, model)


def entrypoint() -> None:
    config = tyro.cli(ReconstructConfig)
    try:
        config.main()
    except (ValueError, fmt.FormatError) as err:
        print(f"gansvr-reconstruct: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entrypoint()

"""The gansvr DataManager: per step, a few instances, rays from their pseudo views, and their input images.

Every image and mask is preloaded as a tensor, so a training step does no disk I/O. A step draws
`instances_per_batch` instances of the train split, `views_per_instance` of each one's pseudo views and
`rays_per_view` random pixels of each view. Besides the rays' RGB and mask values, the batch carries the
instances' conditioning images (for the encoder), one more view of each instance (for the optional
latent-consistency loss) and the drawn views (for the image-space uncertainty head).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
from jaxtyping import Float
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import DataManager, DataManagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.model_components.ray_generators import RayGenerator
from rich.progress import track
from torch import Tensor, nn

from gansvr_ns.data import format as fmt
from gansvr_ns.data.dataparser import GanSvrDataParserConfig
from gansvr_ns.data.hull import instance_hull_sdfs, mean_hull_sdf, silhouette_axes
from gansvr_ns.model.alignment import load_real_images


@dataclass
class GanSvrDataManagerConfig(DataManagerConfig):
    """Samples rays of a few instances per step, with their conditioning images."""

    _target: Type = field(default_factory=lambda: GanSvrDataManager)
    dataparser: GanSvrDataParserConfig = field(default_factory=GanSvrDataParserConfig)
    """Reads the pseudo-view dataset."""
    instances_per_batch: int = 4
    """Instances drawn per training step (the encoder's batch size)."""
    views_per_instance: int = 4
    """Pseudo views drawn per instance per step."""
    rays_per_view: int = 64
    """Random pixels drawn per drawn view."""
    object_ray_fraction: float = 0.5
    """Fraction of each view's pixels drawn inside the bounding box of its mask (grown by `object_box_margin`),
    the rest uniformly over the image. An object fills a fraction of a pseudo view, and only rays near it carry
    geometry and colour gradients; the uniform part keeps the empty background in the silhouette loss."""
    object_box_margin: int = 3
    """Pixels added on every side of the mask's bounding box."""
    edge_ray_fraction: float = 0.0
    """Fraction of each view's pixels drawn from the band of `edge_band` pixels on either side of its mask's outline,
    where the silhouette decides the shape; taken from the uniform share (`object_ray_fraction` + this is at most 1).
    0 turns it off."""
    edge_band: int = 2
    """Half-width in pixels of the band around each mask's outline that `edge_ray_fraction` draws from."""
    condition_view_probability: float = 0.5
    """Chance that an instance is conditioned on one of its own pseudo views instead of its input image during
    training: every view shows the same object, so this multiplies the encoder's training images."""
    condition_augment: float = 0.0
    """Chance that a training conditioning image is photometrically randomised before the encoder reads it: its
    brightness, contrast and saturation jittered and its colour channels shuffled, and, where its mask is known (a
    pseudo view, or an input with `input_mask.png`), its background replaced by a random smooth colour field. The
    rays' targets are untouched. What the encoder can then rely on is the object's shape, not the generator's palette
    and backdrops (`augment_conditions`). 0 turns it off."""
    consistency_augment: float = 1.0
    """Chance that the second image drawn of each instance (for the model's latent contrast and consistency terms) is
    randomised as `condition_augment` describes, independently of the conditioning image: two images of one instance
    then share their shape, not their paint, and the contrast term learns to match shapes."""
    augment_repaint: float = 0.0
    """Chance that a randomised image whose mask is known gets its object repainted in one colour first (its luminance
    times a random tint): the shading and outline stay, the paint of its parts (windows, lights) goes."""
    augment_block_backdrop: float = 0.0
    """Chance that a randomised image whose mask is known gets a backdrop of random flat blocks (2-8 per side) instead
    of the smooth colour field: a textured background with hard edges, as photos and other renderers have."""
    condition_background: Literal["image", "grey"] = "image"
    """What the encoder sees around the object. image: its images as they are; grey: every image it reads whose mask
    is known (an input with `input_mask.png`, or a pseudo view) with the background made the grey that a cut-out's
    transparency reads as (`fmt.TRANSPARENT_BACKGROUND`), in training, evaluation and the viewer alike.
    `gansvr-reconstruct` then does the same to every image it has a mask of (`on_grey`)."""
    condition_jitter_scale: float = 0.0
    """Std of the log of a random scale that every training conditioning image (and second image) is resized by
    about its centre, its edge pixels extended where it shrinks: the error of framing a photo by its object's box,
    about 8% (`gansvr_ns/data/framing.py`), so that the encoder learns not to read the object's size from its image
    alone (`jitter_framing`). 0 turns it off."""
    condition_jitter_shift: float = 0.0
    """Std of a random shift of every training conditioning image (and second image) on each axis, as a fraction of
    its size, with `condition_jitter_scale`. 0 turns it off."""
    instance_hull_resolution: int = 32
    """Grid resolution of each train instance's own visual hull (its masks under the rough poses), handed to the
    model with every batch for its hull prior (`hull_prior_mult`). 0 skips carving them (the gansvr pipeline does so
    when the hull prior is off)."""
    eval_split: Literal["val", "test"] = "val"
    """Held-out instances used for evaluation during training."""
    seed: int = 0
    """Seed of the ray and instance sampling."""
    real_images: Optional[Path] = None
    """Optional folder of unlabeled photos of the category: turns on real-image domain alignment of the encoder."""


class DataError(SystemExit):
    """Bad input data: ends `ns-train` and the other tools with this one line instead of a traceback."""


def check_sampling(config: GanSvrDataManagerConfig) -> None:
    """A ValueError naming the option when the ray sampling's settings draw nothing or out of range."""
    option = "--pipeline.datamanager.{}".format
    for name in ("instances_per_batch", "views_per_instance", "rays_per_view"):
        if getattr(config, name) < 1:
            raise ValueError(f"{option(name.replace('_', '-'))} must be at least 1, got {getattr(config, name)}")
    if config.object_box_margin < 0:
        raise ValueError(f"{option('object-box-margin')} must be 0 or more, got {config.object_box_margin}")
    for name in ("object_ray_fraction", "edge_ray_fraction"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"{option(name.replace('_', '-'))} must be within [0, 1], got {getattr(config, name)}")
    if config.edge_ray_fraction > 0 and config.object_ray_fraction + config.edge_ray_fraction > 1.0:
        raise ValueError(f"object_ray_fraction ({config.object_ray_fraction}) + edge_ray_fraction "
                         f"({config.edge_ray_fraction}) must be at most 1")


def view_tensors(
    images: Tensor, masks: Tensor, device: torch.device | str
) -> Tuple[Float[Tensor, "num_views 3 height width"], Float[Tensor, "num_views 1 height width"]]:
    """Preloaded views (uint8 images [N, H, W, 3], masks [N, H, W]) as the image heads read them: float images in
    [0, 1], channels first, and float masks with a channel axis, on `device`."""
    return images.permute(0, 3, 1, 2).float().div(255.0).to(device), masks[:, None].float().to(device)


@dataclass
class SplitData:
    """One split held in memory: cameras, views, masks and the input image of every instance."""

    cameras: Cameras
    images: Tensor  # uint8 [num_cameras, H, W, 3]
    masks: Tensor  # bool [num_cameras, H, W]
    inputs: Tensor  # float [num_instances, 3, H, W]
    camera_instance: Tensor  # long [num_cameras]
    instance_cameras: List[Tensor]  # camera indices of each instance
    input_masks: Optional[List[Optional[Tensor]]] = None  # bool [H, W] of each input image where the dataset has one
    boxes: Optional[Tensor] = None  # long [num_cameras, 4]: inclusive y0, x0, y1, x1 of each mask (`mask_boxes`)
    edges: Optional[Tuple[Tensor, Tensor]] = None  # each mask's outline band (`edge_pixels`), when edge rays are drawn

    def __post_init__(self):
        if self.boxes is None:
            self.boxes = mask_boxes(self.masks)


def mask_boxes(masks: Tensor) -> Tensor:
    """Inclusive bounding boxes (y0, x0, y1, x1) of boolean masks [N, H, W]; the whole image for an empty mask."""
    height, width = masks.shape[1:]
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    ys, xs = torch.arange(height), torch.arange(width)
    big = torch.tensor(max(height, width))
    y0 = torch.where(rows, ys, big).min(dim=1).values
    x0 = torch.where(cols, xs, big).min(dim=1).values
    y1 = torch.where(rows, ys, -1).max(dim=1).values
    x1 = torch.where(cols, xs, -1).max(dim=1).values
    empty = ~rows.any(dim=1)
    full = torch.tensor([0, 0, height - 1, width - 1])
    return torch.where(empty[:, None], full, torch.stack([y0, x0, y1, x1], dim=1))


def edge_pixels(masks: Tensor, band: int) -> Tuple[Tensor, Tensor]:
    """The pixels within `band` pixels (a square neighbourhood) of each mask's outline: those whose neighbourhood
    holds both object and background. Returns flat pixel indices [N, K], padded with the last valid one, and
    their counts [N] (0 for an empty mask; the image border counts as background)."""
    if band < 1:
        raise ValueError(f"edge_band must be at least 1, got {band}")
    grid = masks[:, None].float()
    window = dict(kernel_size=2 * band + 1, stride=1, padding=band)
    grown = torch.nn.functional.max_pool2d(grid, **window)
    shrunk = -torch.nn.functional.max_pool2d(-grid, **window)
    # the image border counts as background: a mask cut by the border still has its outline there
    shrunk[..., :band, :] = shrunk[..., -band:, :] = shrunk[..., :, :band] = shrunk[..., :, -band:] = 0.0
    inside_band = (grown > shrunk)[:, 0].flatten(1)
    counts = inside_band.sum(dim=1)
    order = torch.sort(inside_band.to(torch.uint8), dim=1, descending=True, stable=True).indices
    width = max(int(counts.max()), 1)
    index = order[:, :width]
    last = index.gather(1, (counts - 1).clamp(min=0)[:, None])
    index = torch.where(torch.arange(width) < counts[:, None], index, last)
    return index.to(torch.int32), counts


def sample_edge_pixels(edges: Tuple[Tensor, Tensor], cams: Tensor, width: int,
                       generator: torch.Generator) -> Tuple[Tensor, Tensor, Tensor]:
    """A random pixel (y, x) of each camera's outline band (`edge_pixels`), and whether the camera has one."""
    index, counts = edges
    count = counts[cams]
    pick = (torch.rand(len(cams), generator=generator) * count).long().clamp(max=index.shape[1] - 1)
    flat = index[cams, pick].long()
    return flat // width, flat % width, count > 0


def sample_pixels(
    boxes: Tensor, size: Tuple[int, int], in_box: Tensor, margin: int, generator: torch.Generator
) -> Tuple[Tensor, Tensor]:
    """Pixel (y, x) per ray: uniform in its view's box grown by `margin` where `in_box`, else in the whole image.

    boxes: [num_rays, 4] inclusive (y0, x0, y1, x1) of each ray's view; in_box: bool [num_rays].
    """
    height, width = size
    y0 = (boxes[:, 0] - margin).clamp(min=0)
    x0 = (boxes[:, 1] - margin).clamp(min=0)
    y1 = (boxes[:, 2] + margin).clamp(max=height - 1)
    x1 = (boxes[:, 3] + margin).clamp(max=width - 1)
    u = torch.rand(len(boxes), 2, generator=generator)
    y_box = y0 + (u[:, 0] * (y1 - y0 + 1)).long().clamp(max=y1 - y0)
    x_box = x0 + (u[:, 1] * (x1 - x0 + 1)).long().clamp(max=x1 - x0)
    y_any = torch.randint(0, height, (len(boxes),), generator=generator)
    x_any = torch.randint(0, width, (len(boxes),), generator=generator)
    return torch.where(in_box, y_box, y_any), torch.where(in_box, x_box, x_any)


def augment_conditions(
    images: Float[Tensor, "batch 3 height width"], masks: List[Optional[Tensor]], probability: float,
    generator: torch.Generator, repaint: float = 0.0, block_backdrop: float = 0.0,
) -> Float[Tensor, "batch 3 height width"]:
    """Photometric randomisation of conditioning images in [0, 1] (see `condition_augment`); each image is changed
    with `probability`. Brightness and contrast are scaled by 0.7-1.3, saturation by 0.4-1.6, the colour channels
    shuffled; where `masks[i]` is given (bool [H, W], True on the object), the background becomes a random colour
    field, bilinear over a 3 x 3 grid of random colours (with chance `block_backdrop`: flat blocks over a 2-8 grid
    instead), and with chance `repaint` the object is first repainted as its luminance times a random tint. Returns
    a new tensor; `images` is not changed. With both chances 0 the draws are those of the plain randomisation."""
    if probability <= 0.0:
        return images
    out = images.clone()
    height, width = images.shape[-2:]
    for i in range(len(images)):
        if torch.rand((), generator=generator).item() >= probability:
            continue
        mask = None if masks[i] is None else masks[i].to(torch.bool)
        if mask is not None and repaint > 0.0 and torch.rand((), generator=generator).item() < repaint:
            tint = 0.4 + 1.2 * torch.rand(3, 1, 1, generator=generator)
            out[i] = torch.where(mask, out[i].mean(dim=0, keepdim=True) * tint, out[i])
        brightness, contrast, saturation = (torch.tensor([0.7, 0.7, 0.4]) + torch.tensor([0.6, 0.6, 1.2])
                                            * torch.rand(3, generator=generator))
        image = out[i] * brightness
        mean = image.mean()
        image = mean + (image - mean) * contrast
        gray = image.mean(dim=0, keepdim=True)
        image = gray + (image - gray) * saturation
        image = image[torch.randperm(3, generator=generator)]
        if mask is not None:
            if block_backdrop > 0.0 and torch.rand((), generator=generator).item() < block_backdrop:
                cells = int(torch.randint(2, 9, (), generator=generator))
                field = torch.rand(1, 3, cells, cells, generator=generator)
                field = nn.functional.interpolate(field, size=(height, width), mode="nearest")[0]
            else:
                field = torch.rand(1, 3, 3, 3, generator=generator)
                field = nn.functional.interpolate(field, size=(height, width), mode="bilinear", align_corners=True)[0]
            image = torch.where(mask, image, field)
        out[i] = image.clamp(0.0, 1.0)
    return out


def jitter_framing(
    images: Float[Tensor, "batch 3 height width"], log_scale_std: float, shift_std: float, generator: torch.Generator,
) -> Float[Tensor, "batch 3 height width"]:
    """Each image scaled by s = exp(N(0, log_scale_std^2)) about its centre and moved by t ~ N(0, shift_std^2) of its
    size on each axis: the point at q (image coordinates in [-1, 1]) goes to s q + 2 t. Bilinear, the edge pixels
    extended beyond the image. With both stds 0 the images come back unchanged and nothing is drawn."""
    if log_scale_std <= 0.0 and shift_std <= 0.0:
        return images
    count = len(images)
    scale = torch.exp(log_scale_std * torch.randn(count, generator=generator))
    shift = 2.0 * shift_std * torch.randn(count, 2, generator=generator)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = -shift / scale[:, None]  # the output at p reads the image at (p - 2 t) / s
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def on_grey(image: Tensor, mask: Optional[Tensor]) -> Tensor:
    """A (3, H, W) image in [0, 1] with every pixel off its object `mask` (bool [H, W]) made the grey that a cut-out's
    transparency reads as; the image itself where the mask is not known (None)."""
    if mask is None:
        return image
    return torch.where(mask.to(image.device)[None], image, torch.full_like(image, fmt.TRANSPARENT_BACKGROUND))


def load_split(dataset: InputDataset, progress_label: str, grey_inputs: bool = False) -> SplitData:
    """Read every view, mask and input image of a split into tensors; with `grey_inputs`, the input images on grey
    where their masks are known (`on_grey`)."""
    outputs = dataset._dataparser_outputs
    meta = outputs.metadata
    images, masks = [], []
    for image_path, mask_path in track(
        list(zip(outputs.image_filenames, outputs.mask_filenames)), description=progress_label, transient=True
    ):
        images.append(torch.from_numpy(fmt.to_uint8(fmt.load_rgb(image_path))))
        masks.append(torch.from_numpy(fmt.load_mask(mask_path)))
    inputs = [torch.from_numpy(fmt.load_rgb(p)).permute(2, 0, 1) for p in meta["input_images"]]
    input_masks = [None if p is None else torch.from_numpy(fmt.load_mask(p)) for p in meta["input_masks"]]
    if grey_inputs:
        inputs = [on_grey(image, mask) for image, mask in zip(inputs, input_masks)]
    camera_instance = meta["camera_instance"]
    return SplitData(
        cameras=outputs.cameras,
        images=torch.stack(images),
        masks=torch.stack(masks),
        inputs=torch.stack(inputs),
        input_masks=input_masks,
        camera_instance=camera_instance,
        instance_cameras=[torch.nonzero(camera_instance == k)[:, 0] for k in range(len(meta["instance_ids"]))],
    )


class GanSvrDataManager(DataManager):
    """Serves rays, per-ray targets and conditioning images; see the module docstring."""

    config: GanSvrDataManagerConfig

    def __init__(
        self,
        config: GanSvrDataManagerConfig,
        device: torch.device | str = "cpu",
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        **kwargs,
    ):
        self.config = config
        self.device = device
        self.test_mode = test_mode
        if config.data is not None:
            config.dataparser.data = config.data
        try:
            self._load(config, test_mode)
        except (fmt.FormatError, ValueError) as err:
            raise DataError(f"gansvr: {err}") from None
        self.train_ray_generator = RayGenerator(self.train_dataset.cameras.to(device))
        self.eval_ray_generator = RayGenerator(self.eval_dataset.cameras.to(device))

    def _load(self, config: GanSvrDataManagerConfig, test_mode: str) -> None:
        check_sampling(config)
        self.dataparser = config.dataparser.setup()
        self.includes_time = False
        self.train_dataparser_outputs = self.dataparser.get_dataparser_outputs(split="train")
        self.train_dataset = InputDataset(self.train_dataparser_outputs)
        # The model builds its alignment modules from this flag, so a loaded run rebuilds the same modules.
        self.train_dataset.metadata["real_images"] = config.real_images is not None
        self.eval_dataset = InputDataset(self.dataparser.get_dataparser_outputs(split=config.eval_split))
        self.rng = random.Random(config.seed)
        super().__init__()
        self.train_data = self.eval_data = self.real_images = self.instance_hulls = None
        if test_mode != "inference":
            grey = config.condition_background == "grey"
            self.train_data = load_split(self.train_dataset, "Loading train views", grey)
            if config.edge_ray_fraction > 0:
                self.train_data.edges = edge_pixels(self.train_data.masks, config.edge_band)
            self.eval_data = load_split(self.eval_dataset, "Loading eval views", grey)
            # the model may start its SDF from these; a loaded run keeps them in its checkpoint instead
            views = (self.train_data.cameras, self.train_data.masks, self.train_data.instance_cameras)
            self.train_dataset.metadata["silhouette_axes"] = silhouette_axes(*views)
            self.train_dataset.metadata["hull_sdf"] = mean_hull_sdf(*views)
            if config.instance_hull_resolution > 0:
                self.instance_hulls = instance_hull_sdfs(*views, resolution=config.instance_hull_resolution)
            if config.real_images is not None:
                self.real_images = load_real_images(Path(config.real_images), self.train_data.images.shape[1:3])

    # nerfstudio's DataManager.__init__ calls these to build iterators; the batches are drawn on demand instead.
    def setup_train(self):
        pass

    def setup_eval(self):
        pass

    def get_train_rays_per_batch(self) -> int:
        return self.config.instances_per_batch * self.config.views_per_instance * self.config.rays_per_view

    def get_eval_rays_per_batch(self) -> int:
        return self.get_train_rays_per_batch()

    def get_datapath(self):
        return self.config.dataparser.data

    def get_param_groups(self) -> Dict[str, List]:
        return {}

    def next_train(self, step: int) -> Tuple[RayBundle, Dict]:
        self.train_count += 1
        ray_bundle, batch = self._ray_batch(
            self.train_data, self.train_ray_generator, self.config.condition_view_probability,
            self.config.condition_augment, self.config.consistency_augment, jitter=True,
        )
        if self.real_images is not None:
            picks = [self.rng.randrange(len(self.real_images)) for _ in range(len(batch["condition_images"]))]
            batch["real_images"] = self.real_images[picks].to(self.device)
        if self.instance_hulls is not None:
            batch["instance_hulls"] = self.instance_hulls[batch["instances"]].to(self.device)
        return ray_bundle, batch

    def next_eval(self, step: int) -> Tuple[RayBundle, Dict]:
        self.eval_count += 1
        return self._ray_batch(self.eval_data, self.eval_ray_generator, 0.0)

    def next_eval_image(self, step: int) -> Tuple[Cameras, Dict]:
        """One whole held-out view, with its instance's input image as the condition."""
        data = self.eval_data
        assert data is not None, "eval data is not loaded in inference mode"
        index = self.rng.randrange(len(data.camera_instance))
        return self.eval_image(index)

    def eval_image(self, index: int) -> Tuple[Cameras, Dict]:
        """Camera `index` of the eval split and its batch (image, mask, condition image)."""
        data = self.eval_data
        instance = int(data.camera_instance[index])
        camera = data.cameras[index : index + 1].to(self.device)
        batch = {
            "image": data.images[index].float().div(255.0).to(self.device),
            "mask": data.masks[index, ..., None].float().to(self.device),
            "condition_images": data.inputs[instance : instance + 1].to(self.device),
            "instance": instance,
        }
        batch["view_images"], batch["view_masks"] = view_tensors(
            data.images[index : index + 1], data.masks[index : index + 1], self.device)
        return camera, batch

    def _ray_batch(self, data: SplitData, ray_generator: RayGenerator, view_probability: float,
                   augment: float = 0.0, second_augment: float = 0.0, jitter: bool = False):
        """Draw instances, views and pixels; return the rays and the batch of targets and images.

        The rays' metadata `instance` indexes the batch's `condition_images`; `ray_view` indexes `view_images` and
        `view_masks`. `jitter` (training batches) moves and scales the encoder's images by the config's framing jitter.
        """
        assert data is not None, "no data is loaded in inference mode"
        cfg = self.config
        gen = self._torch_rng()
        chosen = self.rng.sample(range(len(data.instance_cameras)), min(cfg.instances_per_batch, len(data.inputs)))
        cams, view_instance, conds, cond_masks, others, other_masks = [], [], [], [], [], []
        for slot, k in enumerate(chosen):
            own = data.instance_cameras[k]
            picks = own[torch.randperm(len(own), generator=gen)[: cfg.views_per_instance]]
            cams.append(picks)
            view_instance.append(torch.full((len(picks),), slot, dtype=torch.long))
            view = int(own[self.rng.randrange(len(own))])
            if self.rng.random() < view_probability:
                conds.append(self._encoder_view(data, view))
                cond_masks.append(data.masks[view])
            else:
                conds.append(data.inputs[k])  # on grey since loading, with `condition_background` grey
                cond_masks.append(None if data.input_masks is None else data.input_masks[k])
            other = int(own[self.rng.randrange(len(own))])
            others.append(self._encoder_view(data, other))
            other_masks.append(data.masks[other])
        cams, view_instance = torch.cat(cams), torch.cat(view_instance)
        styles = {"repaint": cfg.augment_repaint, "block_backdrop": cfg.augment_block_backdrop}
        height, width = data.images.shape[1:3]
        ray_view = torch.arange(len(cams)).repeat_interleave(cfg.rays_per_view)
        ray_cam = cams[ray_view]
        num_in_box = round(cfg.rays_per_view * cfg.object_ray_fraction)
        in_box = (torch.arange(cfg.rays_per_view) < num_in_box).repeat(len(cams))
        y, x = sample_pixels(data.boxes[ray_cam], (height, width), in_box, cfg.object_box_margin, gen)
        num_edge = round(cfg.rays_per_view * cfg.edge_ray_fraction)
        if num_edge > 0 and data.edges is not None:  # the last rays of each view (drawn last: the rest stay as above)
            on_edge = (torch.arange(cfg.rays_per_view) >= cfg.rays_per_view - num_edge).repeat(len(cams))
            y_edge, x_edge, has_edge = sample_edge_pixels(data.edges, ray_cam, width, gen)
            on_edge &= has_edge
            y, x = torch.where(on_edge, y_edge, y), torch.where(on_edge, x_edge, x)
        ray_bundle = ray_generator(torch.stack([ray_cam, y, x], dim=-1).to(self.device))
        mask = data.masks[ray_cam, y, x][:, None].float().to(self.device)
        # the colour terms weigh each ray by its mask: rays outside it need no colour (GanSvrModel.render_colour)
        ray_bundle.metadata = {"instance": view_instance[ray_view][:, None].to(self.device), "colour_rays": mask > 0}
        batch = {
            "image": data.images[ray_cam, y, x].float().div(255.0).to(self.device),
            "mask": mask,
            "condition_images": augment_conditions(torch.stack(conds), cond_masks, augment, gen, **styles),
            "view_cameras": cams,
            "ray_view": ray_view.to(self.device),
            "ray_pixel": torch.stack([y, x], dim=-1).to(self.device),
            "instances": torch.tensor(chosen, dtype=torch.long),
        }
        batch["view_images"], batch["view_masks"] = view_tensors(data.images[cams], data.masks[cams], self.device)
        # the second image of each instance is a conditioning image too, randomised with `consistency_augment` (last:
        # every other draw from `gen` stays as it was without it)
        batch["consistency_images"] = augment_conditions(
            torch.stack(others), other_masks, second_augment, gen, **styles)
        for key in ("condition_images", "consistency_images"):  # the framing jitter's draws last, as above
            if jitter:
                batch[key] = jitter_framing(batch[key], cfg.condition_jitter_scale, cfg.condition_jitter_shift, gen)
            batch[key] = batch[key].to(self.device)
        return ray_bundle, batch

    def _encoder_view(self, data: SplitData, camera: int) -> Tensor:
        """Pseudo view `camera` as the encoder reads it: (3, H, W) in [0, 1], on grey with `condition_background`
        grey."""
        image = data.images[camera].permute(2, 0, 1).float().div(255.0)
        return on_grey(image, data.masks[camera]) if self.config.condition_background == "grey" else image

    def _torch_rng(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.rng.getrandbits(63))

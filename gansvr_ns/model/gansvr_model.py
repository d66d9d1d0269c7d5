"""The gansvr model: image -> latent -> conditioned SDF -> NeuS-style volume rendering, with uncertainty.

Conditioning: before rays are rendered, `condition(images)` encodes the batch's conditioning images; each
ray's metadata `instance` says which of them it belongs to. Rays without that metadata (viewer, eval images,
export) use the selected instance (`gansvr_ns.model.instances`), whose latent code is `field.selected`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
from jaxtyping import Float
from nerfstudio.cameras.lie_groups import exp_map_SO3xR3
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.model_components.ray_samplers import NeuSSampler
from nerfstudio.model_components.scene_colliders import SphereCollider
from nerfstudio.models.base_model import Model
from nerfstudio.utils import poses as pose_utils
from torch import Tensor, nn
from torch.nn import Parameter

from gansvr_ns.compat import allow_nerfstudio_checkpoints, patch_nerfstudio_tools
from gansvr_ns.data.datamanager import view_tensors
from gansvr_ns.data.hull import trilinear_instances
from gansvr_ns.model import losses, pose_search
from gansvr_ns.model.alignment import DomainAlignment, alignment_losses
from gansvr_ns.model.encoder import setup_encoder
from gansvr_ns.model.field import ConditionedSDFField, LatentCode, SDFFieldConfig
from gansvr_ns.model.instances import ImageConditionedModelConfig, InstanceSelection
from gansvr_ns.model.poses import PoseCorrectionNet, refine_poses, refine_rays
from gansvr_ns.model.rendering import composite, neus_alpha, weights_from_alpha
from gansvr_ns.model.uncertainty import ImageUncertaintyHead, UncertaintyField

allow_nerfstudio_checkpoints()
patch_nerfstudio_tools()


@dataclass
class GanSvrModelConfig(ImageConditionedModelConfig):
    """Single-view reconstruction learned from pseudo views (every weight and schedule is here)."""

    _target: Type = field(default_factory=lambda: GanSvrModel)
    enable_collider: bool = False
    """nerfstudio's near/far collider is replaced by the unit-sphere collider of the object frame."""
    sdf_field: SDFFieldConfig = field(default_factory=SDFFieldConfig)
    """The conditioned SDF field."""
    num_samples: int = 32
    """Uniform samples per ray."""
    num_samples_importance: int = 16
    """Importance samples per ray, spread over the upsampling steps (16: two rounds of 8; 32 scored the same on
    `gan-car` for a slower step, docs/benchmarks.md)."""
    num_upsample_steps: int = 2
    """NeuS upsampling steps."""
    base_variance: float = 64.0
    """Sharpness of the fixed-variance SDF-to-alpha used while upsampling."""
    init_variance: float = 0.3
    """Initial learned sharpness parameter v: s = exp(10 v)."""
    cos_anneal_end: int = 500
    """Steps over which the NeuS cosine annealing ratio grows from 0 to 1."""
    init_shape: Literal["sphere", "ellipsoid", "hull"] = "hull"
    """What every instance's SDF starts as (the MLP learns the residual): the sphere of `sdf_field.init_radius`;
    the ellipsoid of the average visual hull of the training masks under the rough poses; or that average hull
    itself as a signed distance grid (gansvr_ns/data/hull.py; 2D data and rough poses only)."""
    min_sharpness: Tuple[float, float] = (0.0, 0.0)
    """Floor of the NeuS sharpness s, rising geometrically from the first to the second value over
    `sharpness_ramp_steps` steps ((0, 0): s is learned freely). A blurred SDF lets the rendered silhouette grow
    while the zero level set, which becomes the mesh, shrinks; the floor keeps the two together."""
    sharpness_ramp_steps: int = 1000
    """Steps over which the sharpness floor rises."""
    uncertainty: Literal["image", "field", "none"] = "image"
    """Per-pixel uncertainty of the pseudo views: the paper's image-space head, a rendered field, or none. The
    viewer's "uncertainty" output shows the head applied to the rendered image, or the rendered field; with none
    there is no such output (a constant map would claim a confidence the model does not have)."""
    sigma_min: float = 0.02
    """Smallest uncertainty sigma."""
    mask_uncertainty: Literal["off", "pixel", "view"] = "off"
    """With the image head, a sigma for the silhouette term too: the head also reads each view's mask and predicts a
    second sigma map, used per pixel or averaged over the view. It weights each ray's silhouette BCE by its relative
    confidence (1/sigma over the batch's mean 1/sigma, so the term keeps `mask_loss_mult` as its total weight) and
    learns from BCE / sigma + log sigma. A wrong mask (dilated, eroded, with holes) leaves the image right, so the
    colour's sigma cannot see it. Off by default: per pixel it took the ablation's Chamfer from 1.16x to 1.46x the
    another-instance baseline (docs/benchmarks.md, Ablations)."""
    uncertainty_weighting: Literal["relative", "likelihood"] = "relative"
    """How the colour's sigma weights the L1 colour term: "likelihood" is the paper's |c - c_hat| / sigma + log sigma
    (the term's total weight grows as sigma falls); "relative" weights each ray by 1/sigma over the batch's mean
    1/sigma (the total weight stays `rgb_loss_mult`, as without uncertainty), and sigma learns from the same
    likelihood with the residual held fixed: the likelihood's colour gradient, scaled per batch. With one sigma per
    view (`colour_uncertainty`), "likelihood" weighted the colour about 8 times as much as without uncertainty and
    the cars lost 0.03-0.04x the another-instance baseline in two seeds; "relative" scored as before
    (docs/benchmarks.md, session 24)."""
    colour_uncertainty: Literal["view", "pixel"] = "view"
    """With the image head, where the colour's sigma varies: once per view (the pixel map's mean inside the view's
    mask), or per pixel (the paper's module). A per-pixel sigma makes the colour collapse: it learns the residual of
    the untrained colour, which follows each pixel's brightness, and 1/sigma then fits the colour to the darkest
    pixels (on `gan-car` the meshes came out a nearly black constant, and a 500- or 1000-step warm-up with the plain
    L1 did not stop it once the weighting began). One sigma per view cannot weight a view's dark pixels above its
    bright ones, and still gives the views whose colours drifted or carry a blob a higher sigma than the clean ones
    (docs/benchmarks.md, session 24)."""
    rgb_loss_mult: float = 1.0
    """Weight of the (uncertainty-weighted) L1 colour loss inside the mask."""
    mask_loss_mult: float = 10.0
    """Weight of the silhouette BCE between rendered opacity and mask. The masks are the cleanest geometric signal;
    the uncertainty-weighted RGB gradient is scaled by 1/sigma, so the silhouette needs the larger weight (the
    authors weight mask:rgb as 20:1)."""
    sdf_silhouette_mult: float = 0.0
    """Weight of a silhouette term on the SDF's zero level set itself (`losses.sdf_silhouette`, the mask loss of IDR
    and of the authors' code): the smallest SDF among each ray's samples should be negative on the mask and positive
    off it. The opacity BCE (`mask_loss_mult`) reaches the surface through the NeuS blur of width about 1/s, and
    weighs every pixel near an outline, so a blurred surface can trade pixels inside the mask for pixels outside it
    and round the corners off; this term tends to a hinge that is zero for every ray already on the right side.
    0 turns it off."""
    sdf_silhouette_alpha: Tuple[float, float] = (50.0, 800.0)
    """Sharpness alpha of the SDF silhouette term, rising geometrically from the first to the second value over
    `sdf_silhouette_ramp_steps` (the authors start at 50 and double it during training)."""
    sdf_silhouette_ramp_steps: int = 1500
    """Steps over which the SDF silhouette term's alpha rises (the run's length by default)."""
    normal_smoothness_mult: float = 0.0
    """Weight of a smoothness term on the surface normals (`losses.normal_smoothness`): at each training ray's most
    heavily weighted sample, the SDF's unit normal against the normal at a point `normal_smoothness_radius` away in a
    random direction, weighted by the ray's opacity. Against the dents and ridges the colour term carves into the
    shapes to paint texture with shading. 0 turns it off."""
    normal_smoothness_radius: float = 0.02
    """Standard deviation of the random offset of the normal smoothness term, in object units (the unit sphere)."""
    eikonal_loss_mult: float = 0.1
    """Weight of the eikonal loss."""
    latent_variance_mult: float = 1.0
    """Weight of a hinge keeping each (normalised) latent dimension's spread over the batch's instances at least
    0.5 (mean_d relu(0.5 - std_d)). Without it the encoder learns one code for every image: the mean shape lowers the
    loss first, and a collapsed encoder no longer receives instance-specific gradients. 0 turns it off."""
    hull_prior_mult: float = 0.0
    """Weight of a truncated L1 between each drawn instance's SDF and the signed distance to its own visual hull
    (carved from its masks under the rough poses by the datamanager: 2D data only, never a 3D ground truth), at
    `hull_prior_points` points per instance, half uniform in the box and half nearest the hull's surface. Each step
    then checks the whole shape of every drawn instance, where the rendering losses see only its rays; a visual hull
    cannot show concavities, which the rendering losses may still carve. 0 turns it off."""
    hull_prior_points: int = 1024
    """Points per instance and step of the hull prior."""
    hull_prior_truncation: float = 0.1
    """The hull prior matches signed distances within this band around the hull's surface, only signs beyond it."""
    latent_consistency_mult: float = 0.0
    """Weight of |z_a - z_b|^2 between latents of two images of one instance (0 turns the term off). The second image
    is randomised with `--pipeline.datamanager.consistency-augment`, the conditioning image with
    `--pipeline.datamanager.condition-augment`; randomising both keeps the paint and backdrop, which two views of one
    instance share, from being an easy invariant."""
    latent_contrast_mult: float = 0.2
    """Weight of an InfoNCE term (`losses.info_nce`) between the latents of two images of each drawn instance (its
    conditioning image and another of its pseudo views): each latent must pick its own instance's second latent among
    the batch's by cosine similarity. Unlike `latent_consistency_mult`, it cannot be met by one code for every image.
    The second images are photometrically randomised (`--pipeline.datamanager.consistency-augment`), so that matching
    the paint does not suffice. It made the latents tell the types of car apart better and the shapes closer to the
    truth (docs/benchmarks.md, session 18). 0 turns the term off."""
    latent_contrast_temperature: float = 0.1
    """Temperature of the InfoNCE term's cosine similarities."""
    second_image_gradient: bool = True
    """Whether the latent terms' gradients flow back through the encoder's reading of the second images too. Off, the
    second images are encoded without gradient (a target, as in MoCo's key encoder without its momentum), which skips
    half of the encoder's backward pass."""
    instance_codes: bool = False
    """Auto-decoding: each train instance has a free latent code, learned from its pseudo views alone, and its rays
    are rendered with that code; the encoder learns to predict the codes from the conditioning images
    (`code_regression_mult`) and is what reconstructs new images. A free code receives the same gradient every time
    its instance is drawn, where the latent of a still untrained encoder is noise that the SDF learns to ignore
    (it then fits one average shape for every image)."""
    code_regression_mult: float = 1.0
    """Weight of the squared error between the encoder's latent of a conditioning image and its instance's code."""
    encoder_render_fraction: float = 0.0
    """With `instance_codes`: chance that a drawn instance is rendered with the encoder's latent instead of its code
    (the SDF then also learns from the latents it reconstructs with)."""
    pose_network: bool = False
    """Amortised pose refinement on top of the per-camera corrections: a small CNN reads each drawn pseudo view and
    its rough pose and predicts a rotation of the view about the object centre
    (`gansvr_ns.model.poses.PoseCorrectionNet`). Its weights learn from every drawn view, where a per-camera
    correction learns only when its camera is drawn (about five times in a default run). Before the pose search it
    took the ablation benchmark's Chamfer from 1.16x to 1.03x the another-instance baseline. With the search it gains
    nothing measurable there or on `gan-car`, and it costs time (4% of a step on two threads; 13.9 against 10.9 min
    for the ablation runs at one thread), so it is off by default (docs/benchmarks.md, Ablations). Off when the camera
    optimizer is off."""
    pose_search_steps: Tuple[int, ...] = ()
    """Steps at which to search every train view's pose (`gansvr_ns.model.pose_search`): each instance's current
    shape is voxelised and, for each of its views, the small rotation about the object centre whose silhouette
    overlaps the view's mask best is kept, before the per-camera corrections. Empty: no search. Off when the camera
    optimizer is off."""
    pose_search_resolution: int = 64
    """Grid resolution over [-1, 1]^3 at which the pose search voxelises each shape. 64 rather than 40 (until session
    19): searched again from a finished run's refined poses (5.65 deg from the truth), a 40^3 grid left 5.90 deg and a
    64^3 one 4.78 (`scripts/benchmark.py pose-search`); a pass takes about 2.4 times as long."""
    pose_search_image_size: int = 64
    """The pose search compares silhouettes with masks area-resized so that their longer side is at most this many
    pixels (`pose_search.shrink_masks`): about one pixel per cell of the 64^3 grid over the object, whatever size the
    dataset's views are. 0 compares them at the views' own size."""
    pose_search_span: float = 15.0
    """Largest yaw and pitch (degrees) the pose search tries in one pass."""
    pose_search_prior: float = 0.02
    """The pose search's preference for small turns: a candidate's score is its silhouette IoU minus this times
    (its angle in degrees / 10)^2. On the train views of a finished default run, searching from the refined poses
    left 7.25 deg of error without it and 6.82 deg with 0.02 (8.91 before; 100 cars)."""
    condition_mode: Literal["per_image", "mean_latent"] = "per_image"
    """per_image: the SDF is conditioned on each image's latent; mean_latent: on the mean of the batch's latents
    (an ablation without per-image conditioning)."""


def unit_scale(latents: Float[Tensor, "batch latent_dim"]) -> Float[Tensor, "batch latent_dim"]:
    """Zero mean and unit variance over the latent dimensions (layer norm without parameters)."""
    return nn.functional.layer_norm(latents, latents.shape[-1:])


def _expand(index: Tensor, width: int) -> Tensor:
    """A (rays, samples) index for gathering (rays, samples, width) values along the samples."""
    return index[..., None].expand(-1, -1, width)


def geometric_ramp(bounds: Tuple[float, float], step: int, ramp_steps: int) -> float:
    """lo * (hi / lo)^t with t = step / ramp_steps in [0, 1]; 0 when the ramp is off (lo <= 0)."""
    lo, hi = bounds
    if lo <= 0.0:
        return 0.0
    t = min(1.0, step / max(ramp_steps, 1))
    return lo * (hi / lo) ** t


def check_model_config(cfg: GanSvrModelConfig) -> None:
    """End the program in one line naming the option (`DataError`) when a setting of the model could only crash
    partway through training or train on NaN: a size or count too small to build or sample with, or a scale that
    must be positive."""
    from gansvr_ns.data.datamanager import DataError

    field_cfg = cfg.sdf_field
    least = {
        "num-samples": (cfg.num_samples, 2), "num-upsample-steps": (cfg.num_upsample_steps, 1),
        "latent-dim": (cfg.latent_dim, 2), "encoder-input-size": (cfg.encoder_input_size, 8),
        "eval-num-rays-per-chunk": (cfg.eval_num_rays_per_chunk, 1),
        "pose-search-resolution": (cfg.pose_search_resolution, 2),
        "pose-search-image-size": (cfg.pose_search_image_size, 0),
        "hull-prior-points": (cfg.hull_prior_points, 2),
        "sdf-field.hidden-dim": (field_cfg.hidden_dim, 1), "sdf-field.num-layers": (field_cfg.num_layers, 1),
        "sdf-field.color-layers": (field_cfg.color_layers, 1),
        "sdf-field.color-hidden-dim": (field_cfg.color_hidden_dim, 1),
        "sdf-field.base-grid-resolution": (field_cfg.base_grid_resolution, 2),
    }
    positive = {
        "latent-contrast-temperature": cfg.latent_contrast_temperature, "sigma-min": cfg.sigma_min,
        "pose-search-span": cfg.pose_search_span, "sdf-silhouette-alpha": min(cfg.sdf_silhouette_alpha),
        "sdf-field.softplus-beta": field_cfg.softplus_beta, "sdf-field.init-radius": field_cfg.init_radius,
    }
    problems = [f"--pipeline.model.{name} must be at least {low}, got {value}"
                for name, (value, low) in least.items() if value < low]
    problems += [f"--pipeline.model.{name} must be positive, got {value:g}"
                 for name, value in positive.items() if not value > 0]
    if cfg.num_samples_importance < 1 or cfg.num_samples_importance % max(cfg.num_upsample_steps, 1):
        problems.append("--pipeline.model.num-samples-importance must be a positive multiple of --pipeline.model."
                        f"num-upsample-steps ({cfg.num_upsample_steps}), got {cfg.num_samples_importance}")
    if field_cfg.latent_grid_resolution == 1 or field_cfg.latent_grid_resolution < 0:
        problems.append("--pipeline.model.sdf-field.latent-grid-resolution must be 0 (no grid) or at least 2, got "
                        f"{field_cfg.latent_grid_resolution}")
    if cfg.mask_uncertainty != "off" and cfg.uncertainty != "image":
        problems.append(f"--pipeline.model.mask-uncertainty {cfg.mask_uncertainty} comes from the image uncertainty "
                        f"head: it needs --pipeline.model.uncertainty image, not {cfg.uncertainty}")
    if problems:
        raise DataError(f"gansvr: {problems[0]}")


class GanSvrModel(InstanceSelection, Model):
    """See the module docstring."""

    config: GanSvrModelConfig

    def populate_modules(self):
        check_model_config(self.config)
        super().populate_modules()
        cfg = self.config
        self.encoder = setup_encoder(cfg)
        self.field = ConditionedSDFField(cfg.sdf_field, cfg.latent_dim)
        self.sampler = NeuSSampler(
            num_samples=cfg.num_samples,
            num_samples_importance=cfg.num_samples_importance,
            num_upsample_steps=cfg.num_upsample_steps,
            base_variance=cfg.base_variance,
        )
        self.collider = SphereCollider(center=torch.zeros(3), radius=1.0)
        self.variance = nn.Parameter(torch.tensor(cfg.init_variance))
        self.camera_optimizer = cfg.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")
        self.pose_network = None
        if cfg.pose_network and cfg.camera_optimizer.mode != "off":
            self.pose_network = PoseCorrectionNet()
        # rotations about the object centre found by the pose search, applied before the per-camera corrections
        self.register_buffer("searched_rotations", torch.eye(3).repeat(self.num_train_data, 1, 1))
        self._ray_adjustment: Optional[Tensor] = None
        self._view_errors: Optional[Dict[str, Tensor]] = None
        self.image_uncertainty = None
        if cfg.uncertainty == "image":
            with_mask = cfg.mask_uncertainty != "off"
            self.image_uncertainty = ImageUncertaintyHead(sigma_min=cfg.sigma_min, with_mask=with_mask)
        self.uncertainty_field = None
        if cfg.uncertainty == "field":
            self.uncertainty_field = UncertaintyField(
                cfg.sdf_field.geo_feat_dim, cfg.latent_dim, self.num_train_data, sigma_min=cfg.sigma_min
            )
        self.cos_anneal_ratio = 1.0 if cfg.cos_anneal_end <= 0 else 0.0
        self.sharpness_floor = geometric_ramp(cfg.min_sharpness, cfg.sharpness_ramp_steps, cfg.sharpness_ramp_steps)
        self.sdf_silhouette_alpha = geometric_ramp(cfg.sdf_silhouette_alpha, 0, cfg.sdf_silhouette_ramp_steps)
        self._batch_code: Optional[LatentCode] = None
        self._batch_latents: Optional[Tensor] = None
        self._image_latents: Optional[Tensor] = None
        self._second_latents: Optional[Tensor] = None
        """Latents of the training batch's second images (`condition`), for the consistency and contrast terms."""
        metadata = self.kwargs.get("metadata") or {}
        if cfg.init_shape == "ellipsoid" and metadata.get("silhouette_axes") is not None:
            self.field.set_init_axes(metadata["silhouette_axes"])
        if cfg.init_shape == "hull" and metadata.get("hull_sdf") is not None:
            self.field.set_base_grid(metadata["hull_sdf"])
        self.instance_codes = None
        if cfg.instance_codes and metadata.get("instance_ids"):
            self.instance_codes = nn.Embedding(len(metadata["instance_ids"]), cfg.latent_dim)
            nn.init.normal_(self.instance_codes.weight)
        self._encoder_latents: Optional[Tensor] = None
        self._code_targets: Optional[Tensor] = None
        self.alignment = DomainAlignment(cfg.latent_dim) if metadata.get("real_images") else None
        self.true_poses = metadata.get("true_poses")
        self.train_poses = metadata.get("rough_poses")
        self.setup_instances(metadata.get("catalog", []))

    # ------------------------------------------------------------------------------------------
    # Conditioning.

    def encode(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch latent_dim"]:
        """Latents with zero mean and unit variance over their dimensions: the scale of the conditioning stays put
        (an unbounded latent pushed apart by the spread hinge drives the SDF MLP's units into their dead zone)."""
        return unit_scale(self.encoder(images.to(self.device)))

    @property
    def uses_second_images(self) -> bool:
        """Whether a latent term (consistency or contrast) reads the latents of the batch's second images."""
        return self.config.latent_consistency_mult > 0 or self.config.latent_contrast_mult > 0

    def encode_second(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch latent_dim"]:
        """Latents of second images on their own: without gradient unless `second_image_gradient`."""
        with torch.set_grad_enabled(self.config.second_image_gradient and torch.is_grad_enabled()):
            return self.encode(images)

    def condition(
        self, images: Float[Tensor, "batch 3 height width"], instances: Optional[Tensor] = None,
        second_images: Optional[Float[Tensor, "batch 3 height width"]] = None,
    ) -> Tensor:
        """Encode the batch's conditioning images; rays refer to them by their metadata `instance`. With
        `instance_codes`, training batches pass their train `instances` and are rendered with their codes. In
        training, `second_images` (a second image of each instance) are encoded in the same pass when the latent
        consistency or contrast term needs them (one batch of 2B images is cheaper than two of B; without
        `second_image_gradient`, in a pass of their own without gradient)."""
        self._second_latents = None
        if second_images is not None and self.training and self.uses_second_images:
            if self.config.second_image_gradient:
                latents, self._second_latents = self.encode(torch.cat([images, second_images])).split(len(images))
            else:
                latents, self._second_latents = self.encode(images), self.encode_second(second_images)
        else:
            latents = self.encode(images)
        self._image_latents = latents  # the encoder's, which the real-image alignment compares with real photos'
        self._encoder_latents = self._code_targets = None
        if self.instance_codes is not None and instances is not None and self.training:
            self._encoder_latents = latents
            codes = unit_scale(self.instance_codes(instances.to(self.device)))  # in the encoder's latent space
            self._code_targets = codes.detach()
            use_encoder = torch.rand(len(latents), 1, device=self.device) < self.config.encoder_render_fraction
            latents = torch.where(use_encoder, latents, codes)
        if self.config.condition_mode == "mean_latent":
            latents = latents.mean(dim=0, keepdim=True).expand_as(latents)
        self._batch_latents = latents
        self._batch_code = self.field.encode_latents(latents)
        return latents

    def prepare_views(self, batch: Dict) -> None:
        """Before a training batch's rays are rendered: with the pose network, predict the correction of each drawn
        view from its image, mask and rough pose, and keep it per ray (and the views' pose errors for the metrics)."""
        self._ray_adjustment = self._view_errors = None
        if self.pose_network is None or "view_cameras" not in batch or self.train_poses is None:
            return
        cameras = batch["view_cameras"].to(self.device)
        rough = self.train_poses.to(self.device)[cameras, :3]
        tangent = self.pose_network(batch["view_images"], batch["view_masks"], rough)
        adjustment = exp_map_SO3xR3(tangent)
        self._ray_adjustment = adjustment[batch["ray_view"]]
        if self.true_poses is not None:
            refined = refine_poses(self.camera_optimizer, rough, cameras, self.searched_rotations)
            refined = pose_utils.multiply(adjustment.detach(), refined)
            self._view_errors = self._errors(refined, self.true_poses.to(self.device)[cameras])

    def selection_for(self, image: Float[Tensor, "1 3 height width"]) -> LatentCode:
        """The latent code of one image, rendered for rays without an `instance`."""
        return self.field.encode_latents(self.encode(image))

    @torch.no_grad()
    def select_latent(self, latent: Float[Tensor, "1 latent_dim"]) -> None:
        """Condition the rays without an `instance` on a latent (unit-scaled, as `encode` gives them)."""
        self.selection = self.field.encode_latents(latent.to(self.device))
        self._selection_key = None

    @property
    def selection(self) -> LatentCode:
        return self.field.selected

    @selection.setter
    def selection(self, code: LatentCode) -> None:
        self.field.selected = code

    def get_outputs_for_camera(self, camera, obb_box=None) -> Dict[str, Tensor]:
        """The selected instance's rendering; with the image-space uncertainty head, its colour sigma map of the
        rendered image as "uncertainty" (and, with `mask_uncertainty`, the mask sigma map of the rendered image and
        opacity as "mask_uncertainty"), each per pixel or once per view as the losses read them; the "field" mode
        renders one along the rays."""
        outputs = super().get_outputs_for_camera(camera, obb_box=obb_box)
        if self.image_uncertainty is not None:
            rgb = outputs["rgb"]
            to_maps = lambda t: t.permute(2, 0, 1)[None].to(self.device)  # noqa: E731
            with torch.no_grad():
                sigma = self._head_maps(to_maps(rgb), to_maps(outputs["accumulation"]))[0].to(rgb.device)
            outputs["uncertainty"] = sigma[0, :, :, None]
            if self.image_uncertainty.with_mask:
                outputs["mask_uncertainty"] = sigma[1, :, :, None]
        return outputs

    def _ray_code(self, ray_bundle: RayBundle) -> LatentCode:
        index = (ray_bundle.metadata or {}).get("instance")
        if index is None or self._batch_code is None:
            return self.field.selected.unsqueeze(1)
        return self._batch_code.take(index[:, 0]).unsqueeze(1)

    # ------------------------------------------------------------------------------------------
    # Rendering.

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = {"fields": list(self.field.parameters()) + [self.variance], "encoder": list(self.encoder.parameters())}
        heads = [m for m in (self.image_uncertainty, self.uncertainty_field) if m is not None]
        if heads:
            groups["uncertainty"] = [p for m in heads for p in m.parameters()]
        if self.alignment is not None:
            groups["alignment"] = list(self.alignment.parameters())
        if self.instance_codes is not None:
            groups["codes"] = list(self.instance_codes.parameters())
        if self.pose_network is not None:
            groups["pose_network"] = list(self.pose_network.parameters())
        self.camera_optimizer.get_param_groups(param_groups=groups)
        return groups

    def get_training_callbacks(self, attrs: TrainingCallbackAttributes) -> List[TrainingCallback]:
        def set_anneal(step: int) -> None:
            self.cos_anneal_ratio = min(1.0, step / max(self.config.cos_anneal_end, 1))
            self.sharpness_floor = geometric_ramp(self.config.min_sharpness, step, self.config.sharpness_ramp_steps)
            self.sdf_silhouette_alpha = geometric_ramp(self.config.sdf_silhouette_alpha, step,
                                                       self.config.sdf_silhouette_ramp_steps)

        return super().get_training_callbacks(attrs) + [
            TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], update_every_num_iters=1,
                             func=set_anneal)
        ]

    def inv_s(self) -> Tensor:
        """NeuS sharpness s = exp(10 v), learned, at least the current floor (`min_sharpness`)."""
        return torch.exp(self.variance * 10.0).clamp(max(self.sharpness_floor, 1e-6), 1e6)

    def sample_with_geometry(self, ray_bundle: RayBundle, code: LatentCode) -> Tuple[RaySamples, Tensor, Tensor]:
        """NeuS sampling, the steps of nerfstudio's `NeuSSampler`, keeping the field's output and gradient at every
        sample it evaluates: uniform samples, then `num_upsample_steps` rounds of importance samples drawn from the
        SDF's fixed-sharpness opacity. The rendered samples are exactly the ones evaluated, so nothing is evaluated
        twice (`NeuSSampler` queries the SDF without gradients and the renderer queries the same points again).
        Returns the sorted samples with their geometry (SDF in column 0) and SDF gradients."""
        sampler = self.sampler
        # the SDF gradients stay differentiable when anything may backpropagate through the rendering: in training,
        # and when a caller outside it (e.g. fitting a latent to views) renders with autograd on
        create_graph = self.training or torch.is_grad_enabled()

        def evaluate(samples: RaySamples) -> Tuple[Tensor, Tensor]:
            return self.field.sdf_and_gradient(samples.frustums.get_start_positions(), code, create_graph)

        ray_samples = sampler.uniform_sampler(ray_bundle, num_samples=sampler.num_samples)
        geometry, gradients = evaluate(ray_samples)
        per_step = sampler.num_samples_importance // sampler.num_upsample_steps
        for step in range(sampler.num_upsample_steps):
            sdf = geometry[..., 0].detach()
            alphas = sampler.rendering_sdf_with_fixed_inv_s(ray_samples, sdf, inv_s=sampler.base_variance * 2**step)
            weights = ray_samples.get_weights_and_transmittance_from_alphas(alphas[..., None], weights_only=True)
            weights = torch.cat((weights, torch.zeros_like(weights[:, :1])), dim=1)
            new_samples = sampler.pdf_sampler(ray_bundle, ray_samples, weights, num_samples=per_step)
            new_geometry, new_gradients = evaluate(new_samples)
            ray_samples, order = sampler.merge_ray_samples(ray_bundle, ray_samples, new_samples)
            geometry = torch.cat([geometry, new_geometry], dim=1).gather(1, _expand(order, geometry.shape[-1]))
            gradients = torch.cat([gradients, new_gradients], dim=1).gather(1, _expand(order, 3))
        return ray_samples, geometry, gradients

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        if self.training:
            refine_rays(self.camera_optimizer, ray_bundle, self._ray_adjustment, self.searched_rotations)
        code = self._ray_code(ray_bundle)
        ray_samples, geometry, gradients = self.sample_with_geometry(ray_bundle, code)
        sdf, geo_features = geometry[..., :1], geometry[..., 1:]
        directions = ray_samples.frustums.directions
        normals = nn.functional.normalize(gradients, dim=-1)
        alpha = neus_alpha(sdf, gradients, directions, ray_samples.deltas, self.inv_s(), self.cos_anneal_ratio)
        weights = weights_from_alpha(alpha)
        accumulation = weights.sum(dim=1)
        depth = composite(weights, ray_samples.frustums.starts) / accumulation.clamp_min(1e-6)
        outputs = {
            "rgb": self.render_colour(ray_bundle, weights, normals, directions, geo_features, code),
            "accumulation": accumulation,
            "depth": depth,
            "normals": (composite(weights, normals) + 1.0) * 0.5,
        }
        if self.uncertainty_field is not None:
            view_index = ray_bundle.camera_indices[:, 0] if self.training else None
            beta = self.uncertainty_field(geo_features, code.latent, view_index)
            outputs["uncertainty"] = composite(weights, beta) + self.config.sigma_min
        if self.training:
            outputs["eik_grad"] = gradients
            if self.config.sdf_silhouette_mult > 0:
                outputs["min_sdf"] = sdf.min(dim=1).values
            if self.config.normal_smoothness_mult > 0:
                outputs["surface_normals"], outputs["nearby_normals"] = self.normal_pairs(ray_samples, weights,
                                                                                          normals, code)
        return outputs

    def normal_pairs(self, ray_samples: RaySamples, weights: Tensor, normals: Tensor,
                     code: LatentCode) -> Tuple[Tensor, Tensor]:
        """The normal at each ray's most heavily weighted sample, and the normal at a point a random offset (standard
        deviation `normal_smoothness_radius`) away from it, both unit and differentiable."""
        rows = torch.arange(len(weights), device=weights.device)
        best = weights[..., 0].argmax(dim=1)
        points = ray_samples.frustums.get_start_positions()[rows, best].detach()
        nearby = points + self.config.normal_smoothness_radius * torch.randn_like(points)
        _, gradients = self.field.sdf_and_gradient(nearby[:, None], code, create_graph=True)
        return normals[rows, best], nn.functional.normalize(gradients[:, 0], dim=-1)

    def render_colour(self, ray_bundle: RayBundle, weights: Tensor, normals: Tensor, directions: Tensor,
                      geo_features: Tensor, code: LatentCode) -> Tensor:
        """Composited colour of every ray. A training batch's rays carry `colour_rays` (their mask value is above 0):
        the colour terms read no other ray, so only those get the colour head, and the others get 0."""
        wanted = (ray_bundle.metadata or {}).get("colour_rays") if self.training else None
        if wanted is None:
            return composite(weights, self.field.color(normals, directions, geo_features, code))
        rows = wanted[:, 0].nonzero()[:, 0]
        colours = self.field.color(normals[rows], directions[rows], geo_features[rows], code.take(rows))
        rgb = weights.new_zeros(len(weights), 3)
        return rgb.index_copy(0, rows, composite(weights[rows], colours))

    # ------------------------------------------------------------------------------------------
    # Losses and metrics.

    def _per_view(self) -> Dict[str, bool]:
        """Which of the image head's sigmas are wanted once per view (its `view_maps` flags)."""
        return {"colour_per_view": self.config.colour_uncertainty == "view",
                "mask_per_view": self.config.mask_uncertainty == "view"}

    def _head_maps(self, views: Tensor, masks: Tensor) -> Tensor:
        """The image head's sigma maps of these views as the losses read them (per pixel or once per view)."""
        return self.image_uncertainty.view_maps(views, masks, **self._per_view())

    def _sigmas(self, outputs: Dict[str, Tensor], batch: Dict) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """Each ray's colour sigma and mask sigma (None where the model has no such uncertainty)."""
        head = self.image_uncertainty
        if head is None or "ray_view" not in batch:
            return outputs.get("uncertainty"), None
        sigmas = head.at_pixels(batch["view_images"], batch["ray_view"], batch["ray_pixel"], batch.get("view_masks"),
                                **self._per_view())
        return sigmas[:, :1], sigmas[:, 1:] if head.with_mask else None

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        cfg = self.config
        mask = batch["mask"]
        sigma, mask_sigma = self._sigmas(outputs, batch)
        loss_dict = {}
        if sigma is None:
            rgb_loss = losses.masked_l1(outputs["rgb"], batch["image"], mask)
        elif cfg.uncertainty_weighting == "likelihood":
            rgb_loss = losses.uncertainty_l1(outputs["rgb"], batch["image"], sigma, mask)
        else:
            residual = losses.l1_residual(outputs["rgb"], batch["image"])
            rgb_loss = losses.weighted_mean(residual, mask * losses.relative_confidence(sigma, mask))
            loss_dict["rgb_sigma_loss"] = losses.sigma_nll(residual, sigma, mask)
        if mask_sigma is None:
            mask_loss = losses.silhouette_bce(outputs["accumulation"], mask)
        else:
            every = torch.ones_like(mask)
            bce = losses.bce_per_ray(outputs["accumulation"], mask)
            mask_loss = (bce * losses.relative_confidence(mask_sigma, every)).mean()
            loss_dict["mask_sigma_loss"] = losses.sigma_nll(bce, mask_sigma, every)
        loss_dict["rgb_loss"] = cfg.rgb_loss_mult * rgb_loss
        loss_dict["mask_loss"] = cfg.mask_loss_mult * mask_loss
        if self.training:
            loss_dict["eikonal_loss"] = cfg.eikonal_loss_mult * losses.eikonal(outputs["eik_grad"])
            if cfg.normal_smoothness_mult > 0:
                loss_dict["normal_smoothness_loss"] = cfg.normal_smoothness_mult * losses.normal_smoothness(
                    outputs["surface_normals"], outputs["nearby_normals"], outputs["accumulation"].detach()
                )
            if cfg.sdf_silhouette_mult > 0:
                loss_dict["sdf_silhouette_loss"] = cfg.sdf_silhouette_mult * losses.sdf_silhouette(
                    outputs["min_sdf"], mask, self.sdf_silhouette_alpha
                )
            self.camera_optimizer.get_loss_dict(loss_dict)
            if self.alignment is not None and "real_images" in batch:
                loss_dict.update(alignment_losses(self.alignment, cfg, self.encode, self._image_latents, batch))
            if self._encoder_latents is not None:
                loss_dict["code_regression"] = cfg.code_regression_mult * self.code_regression()
            elif cfg.latent_variance_mult > 0 and cfg.condition_mode == "per_image" and len(self._batch_latents) > 1:
                loss_dict["latent_variance"] = cfg.latent_variance_mult * losses.latent_spread_hinge(
                    self._batch_latents, target=0.5
                )
            if cfg.hull_prior_mult > 0 and "instance_hulls" in batch:
                loss_dict["hull_prior_loss"] = cfg.hull_prior_mult * self.hull_prior(batch["instance_hulls"])
            if self.uses_second_images and "consistency_images" in batch:
                other = self._second_latents
                if other is None:  # conditioned without them
                    other = self.encode_second(batch["consistency_images"])
                if cfg.latent_consistency_mult > 0:
                    loss_dict["latent_consistency"] = cfg.latent_consistency_mult * (
                        (other - self._batch_latents) ** 2
                    ).sum(-1).mean()
                if cfg.latent_contrast_mult > 0 and len(other) > 1:
                    loss_dict["latent_contrast"] = cfg.latent_contrast_mult * losses.info_nce(
                        self._batch_latents, other, cfg.latent_contrast_temperature
                    )
        return loss_dict

    def code_regression(self) -> Tensor:
        """Mean squared error between the encoder's latents of the last conditioned training batch and its instances'
        codes; only the encoder learns from it."""
        return ((self._encoder_latents - self._code_targets) ** 2).mean()

    def hull_prior(self, hulls: Float[Tensor, "batch res res res"]) -> Tensor:
        """Truncated SDF L1 of the batch's instances (in the order of their latents) against their own visual hulls,
        at uniform points and at the candidates nearest each hull's surface; instances without a hull are skipped."""
        half = self.config.hull_prior_points // 2
        candidates = torch.rand(len(hulls), 4 * half, 3, device=self.device) * 2.0 - 1.0
        rows = torch.arange(len(hulls), device=hulls.device)[:, None]
        target = trilinear_instances(hulls.reshape(len(hulls), -1), candidates, rows)
        near = target[..., 0].abs().nan_to_num(0.0).topk(half, dim=1, largest=False).indices
        index = torch.cat([torch.arange(half, device=self.device).expand(len(hulls), -1), near], dim=1)
        points = torch.gather(candidates, 1, index[..., None].expand(-1, -1, 3))
        target = torch.gather(target, 1, index[..., None])
        valid = ~target[:, 0, 0].isnan()
        if not valid.any():
            return torch.zeros((), device=self.device)
        pred = self.field.sdf(points[valid], self._batch_code.take(valid.nonzero()[:, 0]).unsqueeze(1))
        return losses.truncated_sdf_l1(pred, target[valid], self.config.hull_prior_truncation)

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        metrics = {
            "psnr_masked": losses.psnr_masked(outputs["rgb"], batch["image"], batch["mask"]),
            "silhouette_iou": losses.silhouette_iou(outputs["accumulation"], batch["mask"]),
            "inv_s": self.inv_s().detach(),
        }
        if self.training:
            self.camera_optimizer.get_metrics_dict(metrics)
            metrics.update(self.pose_errors())
        return metrics

    @torch.no_grad()
    def pose_errors(self, views: Optional[Tuple[Tensor, Tensor]] = None) -> Dict[str, Tensor]:
        """Mean rotation (deg) and translation error of the refined train poses against the true ones. With the pose
        network and no `views` (see `refined_poses`): those of the last training batch's views."""
        if self.true_poses is None or self.train_poses is None or self.config.camera_optimizer.mode == "off":
            return {}
        if self.pose_network is not None and views is None:
            return dict(self._view_errors or {})
        return self._errors(self.refined_poses(views), self.true_poses.to(self.device))

    @staticmethod
    def _errors(refined: Tensor, true: Tensor) -> Dict[str, Tensor]:
        rot = losses.rotation_error_deg(refined[:, :3, :3], true[:, :3, :3]).mean()
        trans = (refined[:, :3, 3] - true[:, :3, 3]).norm(dim=-1).mean()
        return {"pose_rotation_error_deg": rot, "pose_translation_error": trans}

    @torch.no_grad()
    def refined_poses(self, views: Optional[Tuple[Tensor, Tensor]] = None, chunk: int = 256) -> Tensor:
        """The train cameras' rough poses after refinement (camera-to-world, 3x4). The pose network's corrections
        need every train view: `views` is (images uint8 [N, H, W, 3], masks [N, H, W]) in camera order."""
        rough = self.train_poses.to(self.device)[:, :3]
        refined = refine_poses(self.camera_optimizer, rough, base=self.searched_rotations)
        if self.pose_network is None:
            return refined
        if views is None:
            raise ValueError("the pose network's corrections need every train view's image and mask")
        images, masks = views
        out = []
        for start in range(0, len(rough), chunk):
            part = slice(start, start + chunk)
            tangent = self.pose_network(*view_tensors(images[part], masks[part], self.device), rough[part])
            out.append(pose_utils.multiply(exp_map_SO3xR3(tangent), refined[part]))
        return torch.cat(out)

    @torch.no_grad()
    def search_poses(
        self,
        inputs: Float[Tensor, "num_instances 3 height width"],
        instance_cameras: List[Tensor],
        masks: Tensor,
        intrinsics: Float[Tensor, "num_cameras 4"],
        views: Optional[Tuple[Tensor, Tensor]] = None,
        batch_size: int = 4,
    ) -> Dict[str, float]:
        """One pass of the pose search over every train view (`pose_search_steps`): from the current refined pose
        of each view, the rotation about the object centre that best aligns the silhouette of its instance's current
        shape (the encoder's latent of the instance's input image) with its mask. The result is folded into
        `searched_rotations`, so that the refined pose becomes C times what it was. `masks`: bool [num_cameras, H,
        W] in camera order; `views`: as in `refined_poses`. Returns the views' mean silhouette IoU before and after
        and the mean rotation (degrees)."""
        rough = self.train_poses.to(self.device)[:, :3]
        current = self.refined_poses(views if self.pose_network is not None else None)
        # the corrections after the searched rotation B, M = R_refined (B R_rough)^T; C M B = M (M^T C M) B
        base = self.searched_rotations
        after_base = current[:, :, :3] @ (base @ rough[:, :, :3]).transpose(1, 2)
        current = current.cpu()  # the search runs on the host, like the masks it reads
        stages = pose_search.default_stages(self.config.pose_search_span)
        start_iou, end_iou, turned = [], [], []
        for first in range(0, len(inputs), batch_size):
            codes = self.field.encode_latents(self.encode(inputs[first : first + batch_size]))
            for offset in range(len(codes.latent)):
                code = codes.take(torch.tensor([offset], device=self.device))
                points, cell = pose_search.interior_points(
                    lambda x: self.field.sdf(x.to(self.device), code), self.config.pose_search_resolution
                )
                if len(points) == 0:
                    continue
                cams = instance_cameras[first + offset].cpu()
                view_masks, view_intrinsics = pose_search.shrink_masks(
                    masks[cams].float(), intrinsics[cams], self.config.pose_search_image_size
                )
                start = pose_search.mask_iou(
                    pose_search.splat_silhouettes(points, current[cams], view_intrinsics, view_masks.shape[1:], cell),
                    view_masks,
                )
                rotation, iou = pose_search.search_views(points, cell, current[cams], view_masks, view_intrinsics,
                                                         stages, self.config.pose_search_prior)
                rotation = rotation.to(self.device)
                cams = cams.to(self.device)
                m = after_base[cams]
                base[cams] = m.transpose(1, 2) @ rotation @ m @ base[cams]
                start_iou.append(start)
                end_iou.append(iou)
                turned.append(losses.rotation_error_deg(rotation, torch.eye(3, device=self.device).expand_as(rotation)))
        if not turned:
            return {}
        return {
            "pose_search_iou_before": float(torch.cat(start_iou).mean()),
            "pose_search_iou_after": float(torch.cat(end_iou).mean()),
            "pose_search_rotation_deg": float(torch.cat(turned).mean()),
        }

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        image, mask = batch["image"].to(self.device), batch["mask"].to(self.device)
        flat = lambda t: t.reshape(-1, t.shape[-1])  # noqa: E731
        metrics = {
            "psnr_masked": float(losses.psnr_masked(flat(outputs["rgb"]), flat(image), flat(mask))),
            "silhouette_iou": float(losses.silhouette_iou(flat(outputs["accumulation"]), flat(mask))),
        }
        images = {
            "img": torch.cat([image, outputs["rgb"]], dim=1),
            "accumulation": torch.cat([mask, outputs["accumulation"]], dim=1).expand(-1, -1, 3),
            "normals": outputs["normals"],
        }
        if self.image_uncertainty is not None:
            sigmas = self._head_maps(batch["view_images"].to(self.device), batch["view_masks"].to(self.device))
            for name, sigma in zip(("uncertainty", "mask_uncertainty"), sigmas[0, :, :, :, None]):
                images[name] = (sigma / sigma.max()).expand(-1, -1, 3)
        return metrics, images

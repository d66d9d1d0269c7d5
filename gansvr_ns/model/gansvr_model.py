"""The gansvr model: image -> latent -> conditioned SDF -> NeuS-style volume rendering, with uncertainty.

Conditioning: before rays are rendered, `condition(images)` encodes the batch's conditioning images; each
ray's metadata `instance` says which of them it belongs to. Rays without that metadata (viewer, eval images,
export) use the selected instance, chosen by `select_condition(image)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
from jaxtyping import Float
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.model_components.ray_samplers import NeuSSampler
from nerfstudio.model_components.scene_colliders import SphereCollider
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.viewer.viewer_elements import ViewerDropdown
from torch import Tensor, nn
from torch.nn import Parameter

from gansvr_ns.compat import allow_nerfstudio_checkpoints, patch_nerfstudio_tools
from gansvr_ns.data.format import load_rgb
from gansvr_ns.model import losses
from gansvr_ns.model.alignment import DomainAlignment
from gansvr_ns.model.encoder import ImageEncoder
from gansvr_ns.model.field import ConditionedSDFField, LatentCode, SDFFieldConfig
from gansvr_ns.model.rendering import composite, neus_alpha, weights_from_alpha
from gansvr_ns.model.uncertainty import ImageUncertaintyHead, UncertaintyField

allow_nerfstudio_checkpoints()
patch_nerfstudio_tools()


@dataclass
class GanSvrModelConfig(ModelConfig):
    """Single-view reconstruction learned from pseudo views (every weight and schedule is here)."""

    _target: Type = field(default_factory=lambda: GanSvrModel)
    enable_collider: bool = False
    """nerfstudio's near/far collider is replaced by the unit-sphere collider of the object frame."""
    eval_num_rays_per_chunk: int = 4096
    """Rays rendered at once when rendering whole images (viewer, eval)."""
    latent_dim: int = 256
    """Size of the image latent code."""
    encoder_input_size: int = 64
    """Conditioning images are resized to this square size before the ResNet-18."""
    encoder_weights: Optional[Path] = None
    """Optional local file of ImageNet ResNet-18 weights (torchvision state dict). Nothing is downloaded."""
    sdf_field: SDFFieldConfig = field(default_factory=SDFFieldConfig)
    """The conditioned SDF field."""
    num_samples: int = 32
    """Uniform samples per ray."""
    num_samples_importance: int = 32
    """Importance samples per ray, spread over the upsampling steps."""
    num_upsample_steps: int = 2
    """NeuS upsampling steps."""
    base_variance: float = 64.0
    """Sharpness of the fixed-variance SDF-to-alpha used while upsampling."""
    init_variance: float = 0.3
    """Initial learned sharpness parameter v: s = exp(10 v)."""
    cos_anneal_end: int = 500
    """Steps over which the NeuS cosine annealing ratio grows from 0 to 1."""
    uncertainty: Literal["image", "field", "none"] = "image"
    """Per-pixel uncertainty of the pseudo views: the paper's image-space head, a rendered field, or none."""
    sigma_min: float = 0.02
    """Smallest uncertainty sigma."""
    rgb_loss_mult: float = 1.0
    """Weight of the (uncertainty-weighted) L1 colour loss inside the mask."""
    mask_loss_mult: float = 10.0
    """Weight of the silhouette BCE between rendered opacity and mask. The masks are the cleanest geometric signal;
    the uncertainty-weighted RGB gradient is scaled by 1/sigma, so the silhouette needs the larger weight (the
    authors weight mask:rgb as 20:1)."""
    eikonal_loss_mult: float = 0.1
    """Weight of the eikonal loss."""
    latent_consistency_mult: float = 0.0
    """Weight of |z_a - z_b|^2 between latents of two images of one instance (0 turns the term off)."""
    camera_optimizer: CameraOptimizerConfig = field(default_factory=lambda: CameraOptimizerConfig(mode="SO3xR3"))
    """Refinement of the rough poses of every (instance, view) camera."""
    alignment_loss_mult: float = 0.1
    """Weight of the adversarial latent alignment with real photos (used with --pipeline.datamanager.real-images)."""
    autoencoder_loss_mult: float = 1.0
    """Weight of the autoencoder branch that decodes images from latents (with real-image alignment)."""
    render_instance: str = ""
    """Instance (an id of any split) whose latent the viewer and `ns-export` render. Empty: the first test
    instance. The environment variable GANSVR_INSTANCE overrides it."""
    condition_mode: Literal["per_image", "mean_latent"] = "per_image"
    """per_image: the SDF is conditioned on each image's latent; mean_latent: on the mean of the batch's latents
    (an ablation without per-image conditioning)."""


class GanSvrModel(Model):
    """See the module docstring."""

    config: GanSvrModelConfig

    def populate_modules(self):
        super().populate_modules()
        cfg = self.config
        self.encoder = ImageEncoder(cfg.latent_dim, cfg.encoder_input_size, cfg.encoder_weights)
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
        self.image_uncertainty = ImageUncertaintyHead(sigma_min=cfg.sigma_min) if cfg.uncertainty == "image" else None
        self.uncertainty_field = None
        if cfg.uncertainty == "field":
            self.uncertainty_field = UncertaintyField(
                cfg.sdf_field.geo_feat_dim, cfg.latent_dim, self.num_train_data, sigma_min=cfg.sigma_min
            )
        self.cos_anneal_ratio = 1.0 if cfg.cos_anneal_end <= 0 else 0.0
        self._batch_code: Optional[LatentCode] = None
        self._batch_latents: Optional[Tensor] = None
        metadata = self.kwargs.get("metadata") or {}
        self.alignment = DomainAlignment(cfg.latent_dim) if metadata.get("real_images") else None
        self.true_poses = metadata.get("true_poses")
        self.train_poses = metadata.get("rough_poses")
        self.catalog: List[dict] = list(metadata.get("catalog", []))
        self.selected_instance: Optional[str] = None
        self._selected_image: Optional[Tensor] = None
        self.register_load_state_dict_post_hook(lambda module, keys: module.select_instance())
        self.instance_control = None
        if self.catalog:
            default = self.default_instance()
            choices = self.instance_choices()
            self.instance_control = ViewerDropdown(
                "Instance", default if default in choices else choices[0], choices,
                cb_hook=lambda element: self.select_instance(element.value),
                hint="Which instance's input image conditions the rendering (test instances first)",
            )

    # ------------------------------------------------------------------------------------------
    # Conditioning.

    def encode(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch latent_dim"]:
        return self.encoder(images.to(self.device))

    def condition(self, images: Float[Tensor, "batch 3 height width"]) -> Tensor:
        """Encode the batch's conditioning images; rays refer to them by their metadata `instance`."""
        latents = self.encode(images)
        if self.config.condition_mode == "mean_latent":
            latents = latents.mean(dim=0, keepdim=True).expand_as(latents)
        self._batch_latents = latents
        self._batch_code = self.field.encode_latents(latents)
        return latents

    @torch.no_grad()
    def select_condition(self, image: Float[Tensor, "1 3 height width"]) -> None:
        """Choose the instance rendered for rays without an `instance` (viewer, eval images, export)."""
        was_training = self.training
        self.eval()
        self.field.select_latent(self.encode(image))
        self.train(was_training)

    def default_instance(self) -> Optional[str]:
        """GANSVR_INSTANCE, else the config's `render_instance`, else the first test (or any) instance."""
        wanted = os.environ.get("GANSVR_INSTANCE") or self.config.render_instance
        if wanted:
            return wanted
        for split in ("test", "val", "train"):
            ids = [entry["id"] for entry in self.catalog if entry["split"] == split]
            if ids:
                return ids[0]
        return None

    def select_instance(self, instance_id: Optional[str] = None) -> None:
        """Render `instance_id` (default: `default_instance()`) in the viewer and export it with `ns-export`."""
        instance_id = instance_id or self.default_instance()
        if instance_id is None:
            return
        entry = next((e for e in self.catalog if e["id"] == instance_id), None)
        if entry is None:
            known = ", ".join(e["id"] for e in self.catalog[:5])
            raise ValueError(f"unknown instance '{instance_id}' (the run's dataset has e.g. {known})")
        image = torch.from_numpy(load_rgb(Path(entry["input"]))).permute(2, 0, 1)[None]
        self.selected_instance, self._selected_image = instance_id, image
        self.select_condition(image)

    def instance_choices(self) -> List[str]:
        """Instance ids that can be selected, test instances first."""
        order = {"test": 0, "val": 1, "train": 2}
        return [e["id"] for e in sorted(self.catalog, key=lambda e: order.get(e["split"], 3))]

    def get_outputs_for_camera(self, camera, obb_box=None) -> Dict[str, Tensor]:
        """Render a camera for the selected instance, re-encoding its image so that training progress shows."""
        if self._selected_image is None:
            self.select_instance()
        return self.render_for_image(camera, self._selected_image, obb_box)

    def render_for_image(self, camera, image: Optional[Tensor], obb_box=None) -> Dict[str, Tensor]:
        """Render a camera conditioned on `image` (None: the current selection)."""
        if image is not None:
            self.select_condition(image)
        return super().get_outputs_for_camera(camera, obb_box=obb_box)

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
        self.camera_optimizer.get_param_groups(param_groups=groups)
        return groups

    def get_training_callbacks(self, attrs: TrainingCallbackAttributes) -> List[TrainingCallback]:
        def set_anneal(step: int) -> None:
            self.cos_anneal_ratio = min(1.0, step / max(self.config.cos_anneal_end, 1))

        return [TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], update_every_num_iters=1,
                                 func=set_anneal)]

    def inv_s(self) -> Tensor:
        """Learned NeuS sharpness s = exp(10 v), clamped for stability."""
        return torch.exp(self.variance * 10.0).clamp(1e-6, 1e6)

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        if self.training:
            self.camera_optimizer.apply_to_raybundle(ray_bundle)
        code = self._ray_code(ray_bundle)

        def sdf_fn(samples):
            return self.field.sdf(samples.frustums.get_start_positions(), code)

        ray_samples = self.sampler(ray_bundle, sdf_fn=sdf_fn)
        positions = ray_samples.frustums.get_start_positions()
        geometry, gradients = self.field.sdf_and_gradient(positions, code, create_graph=self.training)
        sdf, geo_features = geometry[..., :1], geometry[..., 1:]
        directions = ray_samples.frustums.directions
        normals = nn.functional.normalize(gradients, dim=-1)
        colors = self.field.color(normals, directions, geo_features, code)
        alpha = neus_alpha(sdf, gradients, directions, ray_samples.deltas, self.inv_s(), self.cos_anneal_ratio)
        weights = weights_from_alpha(alpha)
        accumulation = weights.sum(dim=1)
        depth = composite(weights, ray_samples.frustums.starts) / accumulation.clamp_min(1e-6)
        outputs = {
            "rgb": composite(weights, colors),
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
        return outputs

    # ------------------------------------------------------------------------------------------
    # Losses and metrics.

    def _sigma(self, outputs: Dict[str, Tensor], batch: Dict) -> Optional[Tensor]:
        if self.image_uncertainty is not None and "ray_view" in batch:
            return self.image_uncertainty.at_pixels(batch["view_images"], batch["ray_view"], batch["ray_pixel"])
        return outputs.get("uncertainty")

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        cfg = self.config
        mask = batch["mask"]
        sigma = self._sigma(outputs, batch)
        if sigma is None:
            rgb_loss = losses.masked_l1(outputs["rgb"], batch["image"], mask)
        else:
            rgb_loss = losses.uncertainty_l1(outputs["rgb"], batch["image"], sigma, mask)
        loss_dict = {
            "rgb_loss": cfg.rgb_loss_mult * rgb_loss,
            "mask_loss": cfg.mask_loss_mult * losses.silhouette_bce(outputs["accumulation"], mask),
        }
        if self.training:
            loss_dict["eikonal_loss"] = cfg.eikonal_loss_mult * losses.eikonal(outputs["eik_grad"])
            self.camera_optimizer.get_loss_dict(loss_dict)
            if self.alignment is not None and "real_images" in batch:
                loss_dict.update(self.alignment_losses(batch))
            if cfg.latent_consistency_mult > 0 and "consistency_images" in batch:
                other = self.encode(batch["consistency_images"])
                loss_dict["latent_consistency"] = cfg.latent_consistency_mult * (
                    (other - self._batch_latents) ** 2
                ).sum(-1).mean()
        return loss_dict

    def alignment_losses(self, batch: Dict) -> Dict[str, Tensor]:
        """Adversarial alignment of real-photo latents with pseudo-view latents, and the autoencoder branch."""
        real = self.encode(batch["real_images"])
        pseudo = self._batch_latents
        images = torch.cat([batch["condition_images"], batch["real_images"]])
        return {
            "alignment_loss": self.config.alignment_loss_mult * self.alignment.adversarial_loss(pseudo, real),
            "autoencoder_loss": self.config.autoencoder_loss_mult
            * self.alignment.reconstruction_loss(torch.cat([pseudo, real]), images),
        }

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
    def pose_errors(self) -> Dict[str, Tensor]:
        """Mean rotation (deg) and translation error of the refined train poses against the true ones."""
        if self.true_poses is None or self.train_poses is None or self.config.camera_optimizer.mode == "off":
            return {}
        refined = self.refined_poses()
        true = self.true_poses.to(refined.device)
        rot = losses.rotation_error_deg(refined[:, :3, :3], true[:, :3, :3]).mean()
        trans = (refined[:, :3, 3] - true[:, :3, 3]).norm(dim=-1).mean()
        return {"pose_rotation_error_deg": rot, "pose_translation_error": trans}

    @torch.no_grad()
    def refined_poses(self) -> Tensor:
        """The train cameras' rough poses after refinement (camera-to-world, 3x4)."""
        poses = self.train_poses.to(self.device)
        adj = self.camera_optimizer(torch.arange(len(poses), device=self.device))
        return torch.cat([torch.bmm(adj[:, :3, :3], poses[:, :3, :3]), poses[:, :3, 3:] + adj[:, :3, 3:]], dim=-1)

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
            sigma = self.image_uncertainty(batch["view_images"].to(self.device))[0, 0, :, :, None]
            images["uncertainty"] = (sigma / sigma.max()).expand(-1, -1, 3)
        return metrics, images

"""The gansvr-voxel model: image -> latent -> 3D deconvolution decoder -> occupancy and colour grid.

After "Unsupervised 3D Reconstruction from a Single Image via Adversarial Learning" (Wang & Fang, 2017): an image
encoder and a voxel decoder trained on synthetic image/shape pairs. Supervision, chosen by `supervision`:

- mesh: the dataset's ground-truth meshes (`mesh.ply`, procedural data) are voxelised at the grid resolution and
  the occupancy logits are fitted with binary cross-entropy. Colours are fitted through rendering, with the
  occupancy detached, so the geometry is learned from the shapes alone.
- silhouette: the occupancy is projected along the pseudo views' rays (`projection.py`) and fitted to the masks
  with a BCE computed from the optical depth (never saturated); the colour the same way as above, here also shaping
  the occupancy. Masks are met by a soft occupancy too, so the mesh is taken at a lower level (`mesh_level`).

Never used for training: the true poses (`transform_matrix_true`). The rough poses may be refined by the camera
optimizer, as in gansvr.

Conditioning follows gansvr's protocol, so that the gansvr pipeline and datamanager serve this model: the pipeline
calls `condition(images)` with the batch's conditioning images and each ray's metadata `instance` says which of
them it belongs to; rays without it (viewer, eval images) use the selected instance's grid, `selected_grid`
(`gansvr_ns.model.instances`).
With `--pipeline.datamanager.real-images`, the encoder's latents of real photos are aligned with those of the
conditioning images as in gansvr (`gansvr_ns.model.alignment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import numpy as np
import torch
import trimesh
from jaxtyping import Float
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.models.base_model import Model
from rich.progress import track
from torch import Tensor
from torch.nn import Parameter

from gansvr_ns.model import losses
from gansvr_ns.model.alignment import DomainAlignment, alignment_losses
from gansvr_ns.model.encoder import setup_encoder
from gansvr_ns.model.instances import ImageConditionedModelConfig, InstanceSelection
from gansvr_ns.model.poses import refine_rays
from gansvr_ns.model.rendering import composite
from gansvr_ns.voxel.decoder import VoxelDecoder
from gansvr_ns.voxel.projection import SilhouetteMode, depth_silhouette_bce, project_grids
from gansvr_ns.voxel.voxelize import voxelize_file

Supervision = Literal["mesh", "silhouette"]
SILHOUETTE_MESH_LEVEL = 0.25
"""Default mesh level of silhouette-supervised runs. Silhouettes are met by a soft occupancy: a ray grazing the
object reaches opacity 1/2 (optical depth log 2) over the two or three cells of the boundary layer it crosses, i.e.
at o ~ 1 - 2^(-1/2.5) ~ 0.25 per cell, so the 0.5 level lies inside the object. On the val split of procedural cars
(400 steps) level 0.25 gave IoU 0.75 where 0.5 gave 0.43."""


@dataclass
class GanSvrVoxelModelConfig(ImageConditionedModelConfig):
    """Image encoder and 3D deconvolution decoder to an occupancy grid (every weight and constant is here)."""

    _target: Type = field(default_factory=lambda: GanSvrVoxelModel)
    enable_collider: bool = False
    """Rays are clipped to the grid's cube [-1, 1]^3 by the projection itself."""
    resolution: int = 32
    """Side of the occupancy grid over [-1, 1]^3: a power of two >= 8 (32 or 64)."""
    base_channels: int = 128
    """Channels of the decoder's 4^3 seed grid; halved by every upsampling block."""
    min_channels: int = 16
    """Fewest channels of a decoder block."""
    occupancy_bias: float = -4.0
    """Initial occupancy logit of every cell (a mostly empty grid, so first silhouettes are not saturated)."""
    supervision: Literal["auto", "mesh", "silhouette"] = "auto"
    """mesh: voxelised ground-truth meshes; silhouette: masks by projection; auto: mesh when every train instance
    has a mesh.ply, else silhouette."""
    voxelize_supersample: int = 2
    """Sub-cells per axis when voxelising a ground-truth mesh (targets are inside fractions, multiples of 1/s^3)."""
    voxelize_rays: int = 1
    """Odd number of parity rays per point when voxelising (1 is exact for watertight meshes)."""
    num_samples: int = 64
    """Samples per ray through the cube (about one per cell along an axis at 32^3)."""
    silhouette_mode: SilhouetteMode = "product"
    """product: 1 - prod(1 - alpha_i) along the ray; max: the largest occupancy on the ray."""
    voxel_loss_mult: float = 1.0
    """Weight of the occupancy BCE against the voxelised ground truth (mesh supervision)."""
    mask_loss_mult: float = 1.0
    """Weight of the silhouette BCE against the masks (silhouette supervision)."""
    rgb_loss_mult: float = 1.0
    """Weight of the L1 colour loss inside the masks (both supervisions; it trains the colour channels)."""
    mesh_level: Optional[float] = None
    """Occupancy level whose iso-surface is the reconstructed mesh. None: 0.5 under mesh supervision,
    SILHOUETTE_MESH_LEVEL under silhouette supervision."""


def resolve_supervision(requested: str, meshes: List[Optional[Path]], input_images: List[Path]) -> Supervision:
    """The supervision used: `requested`, or for "auto" mesh when every train instance has a mesh, else silhouette.

    "mesh" with an instance lacking its mesh.ply is a ValueError naming the missing file.
    """
    missing = [k for k, mesh in enumerate(meshes) if mesh is None]
    if requested == "auto":
        return "mesh" if meshes and not missing else "silhouette"
    if requested == "mesh" and missing:
        path = Path(input_images[missing[0]]).parent / "mesh.ply"
        raise ValueError(f"{path}: missing; supervision 'mesh' needs a mesh.ply for every train instance "
                         f"({len(missing)} of {len(meshes)} lack one; use 'auto' or 'silhouette')")
    return "mesh" if requested == "mesh" else "silhouette"


def grid_iou(pred: Tensor, target: Tensor) -> Tensor:
    """|pred & target| / |pred | target| of two boolean grids (1 when both are empty)."""
    union = (pred | target).sum()
    return (pred & target).sum() / union.clamp_min(1) if union > 0 else torch.ones((), device=pred.device)


class GanSvrVoxelModel(InstanceSelection, Model):
    """See the module docstring."""

    config: GanSvrVoxelModelConfig

    def populate_modules(self):
        super().populate_modules()
        cfg = self.config
        self.encoder = setup_encoder(cfg)
        self.decoder = VoxelDecoder(cfg.latent_dim, cfg.resolution, cfg.base_channels, cfg.min_channels,
                                    cfg.occupancy_bias)
        self.camera_optimizer = cfg.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")
        metadata = self.kwargs.get("metadata") or {}
        self.mesh_paths: List[Optional[Path]] = list(metadata.get("meshes", []))
        self.camera_instance: Optional[Tensor] = metadata.get("camera_instance")
        self.supervision = resolve_supervision(cfg.supervision, self.mesh_paths, metadata.get("input_images", []))
        self._voxel_targets: Optional[Tensor] = None
        self.alignment = DomainAlignment(cfg.latent_dim) if metadata.get("real_images") else None
        self._batch_latents: Optional[Tensor] = None
        self._batch_logits: Optional[Tensor] = None
        self._batch_grids: Optional[Tensor] = None
        self._batch_instances: Optional[Tensor] = None
        self.selected_grid: Optional[Tensor] = None
        self.setup_instances(metadata.get("catalog", []))

    # ------------------------------------------------------------------------------------------
    # Conditioning.

    def encode(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch latent_dim"]:
        """Latent codes of RGB images in [0, 1]."""
        return self.encoder(images.to(self.device))

    def decode(self, latents: Float[Tensor, "batch latent_dim"]) -> Float[Tensor, "batch 4 res res res"]:
        """Grid logits: occupancy, then red, green, blue."""
        return self.decoder(latents)

    def condition(self, images: Float[Tensor, "batch 3 height width"], instances: Optional[Tensor] = None,
                  second_images: Optional[Tensor] = None) -> Tensor:
        """Encode and decode the batch's conditioning images; rays refer to them by their metadata `instance`
        (`instances`, the train instances of a training batch, and `second_images`, a second image of each, are not
        used: this model learns no per-instance code and has no latent contrast term)."""
        latents = self._batch_latents = self.encode(images)
        self._batch_logits = self.decode(latents)
        self._batch_grids = torch.sigmoid(self._batch_logits)
        self._batch_instances = None
        return latents

    def selection_for(self, image: Float[Tensor, "1 3 height width"]) -> Float[Tensor, "1 4 res res res"]:
        """The grid of one image, rendered for rays without an `instance`."""
        return torch.sigmoid(self.decode(self.encode(image)))

    @property
    def selection(self) -> Optional[Tensor]:
        return self.selected_grid

    @selection.setter
    def selection(self, grid: Optional[Tensor]) -> None:
        self.selected_grid = grid

    def mesh_level(self) -> float:
        """Occupancy level of the reconstructed surface (see the config field)."""
        if self.config.mesh_level is not None:
            return self.config.mesh_level
        return 0.5 if self.supervision == "mesh" else SILHOUETTE_MESH_LEVEL

    def reconstruct_mesh(self, image: Float[Tensor, "1 3 height width"], resolution: int = 128) -> trimesh.Trimesh:
        """Mesh of one image: marching cubes on the decoded occupancy (`gansvr_ns.voxel.mesh`)."""
        from gansvr_ns.voxel.mesh import reconstruct_mesh

        return reconstruct_mesh(self, image, resolution)

    def _ray_grids(self, ray_bundle: RayBundle) -> Tuple[Tensor, Tensor]:
        """(grids, per-ray grid index): the batch's grids for rays with an `instance`, else the selected grid."""
        index = (ray_bundle.metadata or {}).get("instance")
        if index is not None and self._batch_grids is not None:
            return self._batch_grids, index[:, 0]
        if self.selected_grid is None:
            self.refresh_selection()
        if self.selected_grid is None:  # a dataset without a catalog: nothing to select, render an empty latent
            self.selected_grid = torch.sigmoid(self.decode(torch.zeros(1, self.config.latent_dim, device=self.device)))
        return self.selected_grid, torch.zeros(len(ray_bundle), dtype=torch.long, device=self.device)

    def _slot_instances(self, ray_bundle: RayBundle) -> Tensor:
        """Train-split instance of each conditioning slot, read off the rays' cameras."""
        slots = ray_bundle.metadata["instance"][:, 0]
        instances = self.camera_instance.to(slots.device)[ray_bundle.camera_indices[:, 0]]
        return torch.zeros(len(self._batch_logits), dtype=torch.long, device=slots.device).scatter_(0, slots, instances)

    # ------------------------------------------------------------------------------------------
    # Rendering.

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = {"encoder": list(self.encoder.parameters()), "decoder": list(self.decoder.parameters())}
        if self.alignment is not None:
            groups["alignment"] = list(self.alignment.parameters())
        self.camera_optimizer.get_param_groups(param_groups=groups)
        return groups

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        if self.training:
            refine_rays(self.camera_optimizer, ray_bundle)
            if self.supervision == "mesh" and (ray_bundle.metadata or {}).get("instance") is not None:
                self._batch_instances = self._slot_instances(ray_bundle)
        grids, index = self._ray_grids(ray_bundle)
        if self.supervision == "mesh":
            grids = torch.cat([grids[:, :1].detach(), grids[:, 1:]], dim=1)
        rays = project_grids(grids, index, ray_bundle.origins, ray_bundle.directions, self.config.num_samples,
                             mode=self.config.silhouette_mode)
        return {
            "rgb": composite(rays.weights, rays.values[..., 1:]),
            "accumulation": rays.silhouette,
            "optical_depth": rays.optical_depth,
            "depth": composite(rays.weights, rays.distances) / rays.weights.sum(dim=1).clamp_min(1e-6),
        }

    # ------------------------------------------------------------------------------------------
    # Losses and metrics.

    def voxel_targets(self) -> Float[Tensor, "num_instances res res res"]:
        """Voxelised ground truth of every train instance, computed on first use (never stored in checkpoints)."""
        if self._voxel_targets is None:
            cfg = self.config
            grids = [
                voxelize_file(path, cfg.resolution, supersample=cfg.voxelize_supersample, num_rays=cfg.voxelize_rays)
                for path in track(self.mesh_paths, description="Voxelising ground-truth meshes", transient=True)
            ]
            self._voxel_targets = torch.from_numpy(np.stack(grids)).to(self.device)
        return self._voxel_targets

    def _batch_targets(self) -> Optional[Tensor]:
        if self.supervision != "mesh" or self._batch_instances is None:
            return None
        return self.voxel_targets()[self._batch_instances]

    def silhouette_loss(self, outputs: Dict[str, Tensor], mask: Tensor) -> Tensor:
        """BCE of silhouette and mask: from the optical depth in "product" mode (never saturated), else clamped."""
        if self.config.silhouette_mode == "product":
            return depth_silhouette_bce(outputs["optical_depth"], mask)
        return losses.silhouette_bce(outputs["accumulation"], mask)

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        cfg = self.config
        mask = batch["mask"]
        loss_dict = {"rgb_loss": cfg.rgb_loss_mult * losses.masked_l1(outputs["rgb"], batch["image"], mask)}
        if self.supervision == "silhouette":
            loss_dict["mask_loss"] = cfg.mask_loss_mult * self.silhouette_loss(outputs, mask)
        if self.training:
            targets = self._batch_targets()
            if targets is not None:
                loss_dict["voxel_loss"] = cfg.voxel_loss_mult * torch.nn.functional.binary_cross_entropy_with_logits(
                    self._batch_logits[:, 0], targets
                )
            self.camera_optimizer.get_loss_dict(loss_dict)
            if self.alignment is not None and "real_images" in batch:
                loss_dict.update(alignment_losses(self.alignment, cfg, self.encode, self._batch_latents, batch))
        return loss_dict

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        metrics = {
            "psnr_masked": losses.psnr_masked(outputs["rgb"], batch["image"], batch["mask"]),
            "silhouette_iou": losses.silhouette_iou(outputs["accumulation"], batch["mask"]),
        }
        if self.training:
            self.camera_optimizer.get_metrics_dict(metrics)
            targets = self._batch_targets()
            if targets is not None:
                metrics["voxel_iou"] = grid_iou(self._batch_logits[:, 0].detach() > 0.0, targets > 0.5)
        return metrics

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
        }
        return metrics, images

"""Which instance an image-conditioned model renders for rays without an `instance` (viewer, eval images, export).

Shared by the gansvr and gansvr-voxel models: `ImageConditionedModelConfig` holds the config fields they have in
common and `InstanceSelection` the selection logic. The selected instance comes from, in this order, the viewer's
"Instance" dropdown, the environment variable GANSVR_INSTANCE, the config's `render_instance`, the first test
instance.

Threads: viser runs the dropdown's callback on its own thread, outside nerfstudio's train lock, so the callback only
records the id (`request_instance`); the encoding happens in `get_outputs_for_camera`, which the viewer calls under
that lock. The selected image is encoded again only when the request or the parameters changed: a training
callback counts the optimizer steps, so a checkpoint loaded in `ns-viewer` is encoded once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import torch
from jaxtyping import Float
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import ModelConfig
from nerfstudio.viewer.viewer_elements import ViewerDropdown
from torch import Tensor

from gansvr_ns.data.datamanager import DataError
from gansvr_ns.data.format import load_rgb

SPLIT_ORDER = ("test", "val", "train")
"""Order of the splits in the dropdown and in the choice of the default instance."""


@dataclass
class ImageConditionedModelConfig(ModelConfig):
    """Config fields of a model that encodes one input image into the latent it renders."""

    eval_num_rays_per_chunk: int = 4096
    """Rays rendered at once when rendering whole images (viewer, eval)."""
    latent_dim: int = 256
    """Size of the image latent code."""
    encoder_input_size: int = 64
    """Conditioning images are resized to this square size before the ResNet-18."""
    encoder_norm: Literal["group", "batch"] = "group"
    """Normalisation layers of the ResNet-18 encoder (see `ImageEncoder`)."""
    encoder_precision: Literal["float32", "bfloat16"] = "float32"
    """Number format of the encoder's convolutions: "bfloat16" runs them under torch's bf16 autocast, faster on CPUs
    with AVX-512 BF16 or AMX and on GPUs with bf16 (the latent and every other part stay float32)."""
    encoder_weights: Optional[Path] = None
    """Optional local file of ImageNet ResNet-18 weights (torchvision state dict). Nothing is downloaded."""
    camera_optimizer: CameraOptimizerConfig = field(default_factory=lambda: CameraOptimizerConfig(mode="SO3xR3"))
    """Refinement of the rough poses of every (instance, view) camera."""
    render_instance: str = ""
    """Instance (an id of any split) whose latent the viewer (and `ns-export` for gansvr) renders. Empty: the
    first test instance. The environment variable GANSVR_INSTANCE overrides it."""
    alignment_loss_mult: float = 0.1
    """Weight of the adversarial latent alignment with real photos (used with --pipeline.datamanager.real-images)."""
    autoencoder_loss_mult: float = 1.0
    """Weight of the autoencoder branch that decodes images from latents (with real-image alignment)."""


class InstanceSelection:
    """Mixin of an image-conditioned `Model` (placed before `Model` among the bases): the selected instance.

    The model provides `selection_for(image)`, the state its rays without an `instance` render (computed from one
    image, in eval mode and without gradients), and a `selection` attribute that holds it.
    """

    config: ImageConditionedModelConfig
    selection: Any

    def selection_for(self, image: Float[Tensor, "1 3 height width"]) -> Any:
        raise NotImplementedError

    def prepare_views(self, batch: dict) -> None:
        """Called with each training batch before its rays are rendered (nothing by default)."""

    def setup_instances(self, catalog: List[dict]) -> None:
        """Call in `populate_modules`: the instances of the run's dataset (`{"id", "split", "input"}` entries)."""
        self.catalog = list(catalog)
        self.selected_instance: Optional[str] = None
        self.requested_instance: Optional[str] = None
        self._selected_image: Optional[Tensor] = None
        self._optimizer_steps = 0
        self._selection_key: Optional[Tuple[str, int]] = None
        self.register_load_state_dict_post_hook(lambda module, keys: module.select_instance())
        self.instance_control = None
        if self.catalog:
            default, choices = self.default_instance(), self.instance_choices()
            self.instance_control = ViewerDropdown(
                "Instance", default if default in choices else choices[0], choices,
                cb_hook=lambda element: self.request_instance(element.value),
                hint="Which instance's input image conditions the rendering (test instances first)",
            )

    def default_instance(self) -> Optional[str]:
        """GANSVR_INSTANCE, else the config's `render_instance`, else the first test (or any) instance."""
        wanted = os.environ.get("GANSVR_INSTANCE") or self.config.render_instance
        if wanted:
            return wanted
        choices = self.instance_choices()
        return choices[0] if choices else None

    def instance_choices(self) -> List[str]:
        """Instance ids that can be selected, test instances first."""
        order = {split: k for k, split in enumerate(SPLIT_ORDER)}
        return [e["id"] for e in sorted(self.catalog, key=lambda e: order.get(e["split"], len(order)))]

    def request_instance(self, instance_id: str) -> None:
        """Render `instance_id` from the next frame on. Only records the id, so any thread may call it."""
        self.requested_instance = instance_id

    def select_instance(self, instance_id: Optional[str] = None) -> None:
        """Encode `instance_id` (default: `default_instance()`) now, for the viewer and `ns-export`.

        An id that the run's dataset lacks ends the program with one line naming it (`DataError`).
        """
        instance_id = instance_id or self.default_instance()
        if instance_id is None:
            return
        if instance_id != self.selected_instance or self._selected_image is None:
            entry = next((e for e in self.catalog if e["id"] == instance_id), None)
            if entry is None:
                known = ", ".join(self.instance_choices()[:5])
                raise DataError(f"gansvr: unknown instance '{instance_id}' (the run's dataset has e.g. {known})")
            self._selected_image = torch.from_numpy(load_rgb(Path(entry["input"]))).permute(2, 0, 1)[None]
        self.select_condition(self._selected_image)
        self.selected_instance = instance_id
        self._selection_key = (instance_id, self._optimizer_steps)

    @torch.no_grad()
    def select_condition(self, image: Float[Tensor, "1 3 height width"]) -> None:
        """Condition the rays without an `instance` on `image` (the selection is then no instance's)."""
        was_training = self.training
        self.eval()
        self.selection = self.selection_for(image)
        self.train(was_training)
        self._selection_key = None

    def refresh_selection(self) -> None:
        """Encode the wanted instance if it or the parameters changed since it was last encoded.

        Wanted: the viewer's request, else the last selected instance, else the default one. The request is read
        once: the dropdown may change it meanwhile, and the next frame then encodes the new one.
        """
        wanted = self.requested_instance or self.selected_instance or self.default_instance()
        if wanted is not None and self._selection_key != (wanted, self._optimizer_steps):
            self.select_instance(wanted)

    def get_outputs_for_camera(self, camera, obb_box=None) -> Dict[str, Tensor]:
        """Render a camera for the selected instance (see the module docstring for when it is encoded)."""
        self.refresh_selection()
        return super().get_outputs_for_camera(camera, obb_box=obb_box)

    def render_for_image(self, camera, image: Float[Tensor, "1 3 height width"], obb_box=None) -> Dict[str, Tensor]:
        """Render a camera conditioned on `image` (a held-out view's instance), keeping the selected instance."""
        kept = self.selection, self._selection_key
        self.select_condition(image)
        try:
            return super().get_outputs_for_camera(camera, obb_box=obb_box)
        finally:
            self.selection, self._selection_key = kept

    def get_training_callbacks(self, attrs: TrainingCallbackAttributes) -> List[TrainingCallback]:
        def count_step(step: int) -> None:
            self._optimizer_steps += 1

        return super().get_training_callbacks(attrs) + [
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], update_every_num_iters=1,
                             func=count_step)
        ]

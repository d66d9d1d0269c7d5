"""The gansvr pipeline: hands each batch's conditioning images to the model along with the rays."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Type

import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils import writer
from nerfstudio.utils.rich_utils import CONSOLE

from gansvr_ns.data.datamanager import DataError, GanSvrDataManagerConfig
from gansvr_ns.memory import keep_freed_memory
from gansvr_ns.model.gansvr_model import GanSvrModelConfig


@dataclass
class GanSvrPipelineConfig(VanillaPipelineConfig):
    """Pipeline whose batches condition the model on an image."""

    _target: Type = field(default_factory=lambda: GanSvrPipeline)
    datamanager: GanSvrDataManagerConfig = field(default_factory=GanSvrDataManagerConfig)
    """Samples instances, rays and conditioning images."""
    model: GanSvrModelConfig = field(default_factory=GanSvrModelConfig)
    """The gansvr model."""
    num_eval_images: int = 8
    """Held-out views rendered by `ns-eval` / `get_average_eval_image_metrics`."""
    keep_freed_memory: bool = True
    """On a CPU, let glibc's malloc keep the memory a step frees for the next one (gansvr_ns/memory.py): the step's
    large tensors are then not faulted in page by page every step. The process stays at its peak size."""
    flush_denormals: bool = True
    """Compute with denormal floats flushed to zero (`torch.set_flush_denormal`, x86 CPUs): x86 arithmetic on them
    is slow, and values that small change nothing the model computes. It is set before the datamanager and the
    model are set up: set after them, as until session 25, a default step on a 2-core CPU took 0.80 s against 0.37 s
    (0.68 s without the flag; the softplus's slopes then still made denormals), for a reason not found: a probe
    after the setup found every thread flushing. The SDF MLP's softplus now avoids making them in the first place
    (model/activations.py: `SLOPE_FLOOR`), so this flag's own gain is a few percent (docs/benchmarks.md,
    Speed)."""


class GanSvrPipeline(VanillaPipeline):
    """`VanillaPipeline` that encodes the batch's conditioning images before rendering its rays."""

    config: GanSvrPipelineConfig

    def __init__(self, config: GanSvrPipelineConfig, *args, **kwargs):
        if config.num_eval_images < 1:
            raise DataError(f"gansvr: --pipeline.num-eval-images must be at least 1, got {config.num_eval_images}")
        hull_prior = getattr(config.model, "hull_prior_mult", 0.0) > 0.0
        if hull_prior and config.datamanager.instance_hull_resolution < 2:
            raise DataError("gansvr: --pipeline.model.hull-prior-mult needs the instances' hulls: "
                            "--pipeline.datamanager.instance-hull-resolution must be at least 2, got "
                            f"{config.datamanager.instance_hull_resolution}")
        if not hull_prior:  # nobody reads the per-instance hulls: skip carving
            config = replace(config, datamanager=replace(config.datamanager, instance_hull_resolution=0))
        if config.flush_denormals:
            torch.set_flush_denormal(True)
        super().__init__(config, *args, **kwargs)
        if self.device.type == "cpu":
            if config.keep_freed_memory:
                keep_freed_memory()

    def load_pipeline(self, loaded_state: Dict[str, torch.Tensor], step: int) -> None:
        """nerfstudio's, after a check that the checkpoint's tensors have this run's shapes: one resumed
        (`--load-dir`) on another dataset or with other model settings ends in one line (`DataError`) instead of
        torch's list of size mismatches."""
        own = self.state_dict()
        for key, value in loaded_state.items():
            name = key.removeprefix("module.")
            if name in own and hasattr(value, "shape") and value.shape != own[name].shape:
                raise DataError(
                    f"gansvr: the checkpoint loaded does not fit this run: its {name} has shape {list(value.shape)}, "
                    f"this run's {list(own[name].shape)} (trained on another dataset, or with other model settings)")
        super().load_pipeline(loaded_state, step)

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        callbacks = super().get_training_callbacks(attributes)
        steps = tuple(getattr(self.model.config, "pose_search_steps", ()))
        camera_optimizer = getattr(self.model.config, "camera_optimizer", None)
        refining = camera_optimizer is not None and camera_optimizer.mode != "off"
        if steps and refining and self.datamanager.train_data is not None:
            callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], self.search_poses,
                                              iters=steps))
            trainer = getattr(attributes, "trainer", None)
            last = trainer._start_step + trainer.config.max_num_iterations - 1 if trainer is not None else None
            late = [step for step in steps if step > last] if last is not None else []
            if late:
                CONSOLE.print(f"[yellow]gansvr: the pose search at step(s) {', '.join(map(str, late))} will not run: "
                              f"training ends at step {last} (--pipeline.model.pose-search-steps)[/yellow]",
                              soft_wrap=True)
        return callbacks

    def search_poses(self, step: int) -> Dict[str, float]:
        """Run the model's pose search over every train view (`GanSvrModelConfig.pose_search_steps`); returns its
        statistics (`GanSvrModel.search_poses`)."""
        data = self.datamanager.train_data
        cameras = data.cameras
        intrinsics = torch.cat([cameras.fx, cameras.fy, cameras.cx, cameras.cy], dim=-1).float()
        start = time.perf_counter()
        stats = self.model.search_poses(data.inputs, data.instance_cameras, data.masks, intrinsics,
                                        views=(data.images, data.masks))
        for name, value in stats.items():
            writer.put_scalar(f"Train Poses/{name}", value, step)
        if stats:
            CONSOLE.log(
                f"pose search at step {step}: silhouette IoU {stats['pose_search_iou_before']:.3f} -> "
                f"{stats['pose_search_iou_after']:.3f}, views turned {stats['pose_search_rotation_deg']:.2f} deg on "
                f"average ({time.perf_counter() - start:.0f} s)"
            )
        return stats

    def get_train_loss_dict(self, step: int):
        ray_bundle, batch = self.datamanager.next_train(step)
        self.model.condition(batch["condition_images"], batch.get("instances"), batch.get("consistency_images"))
        self.model.prepare_views(batch)
        outputs = self.model(ray_bundle)
        metrics_dict = self.model.get_metrics_dict(outputs, batch)
        loss_dict = self.model.get_loss_dict(outputs, batch, metrics_dict)
        return outputs, loss_dict, metrics_dict

    def get_eval_loss_dict(self, step: int):
        self.eval()
        ray_bundle, batch = self.datamanager.next_eval(step)
        with torch.no_grad():
            self.model.condition(batch["condition_images"])
        outputs = self.model(ray_bundle)
        metrics_dict = self.model.get_metrics_dict(outputs, batch)
        loss_dict = self.model.get_loss_dict(outputs, batch, metrics_dict)
        self.train()
        return outputs, loss_dict, metrics_dict

    def get_eval_image_metrics_and_images(self, step: int):
        self.eval()
        camera, batch = self.datamanager.next_eval_image(step)
        outputs = self.model.render_for_image(camera, batch["condition_images"])
        metrics_dict, images_dict = self.model.get_image_metrics_and_images(outputs, batch)
        metrics_dict["num_rays"] = int(camera.height * camera.width)
        self.train()
        return metrics_dict, images_dict

    def get_average_eval_image_metrics(
        self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std: bool = False
    ):
        """Mean image metrics over the first `num_eval_images` held-out views spread over the eval split."""
        self.eval()
        total = len(self.datamanager.eval_data.camera_instance)
        indices = torch.linspace(0, total - 1, min(self.config.num_eval_images, total)).long().tolist()
        rows = []
        for index in indices:
            camera, batch = self.datamanager.eval_image(index)
            outputs = self.model.render_for_image(camera, batch["condition_images"])
            rows.append(self.model.get_image_metrics_and_images(outputs, batch)[0])
        self.train()
        result = {}
        for key in rows[0]:
            values = torch.tensor([r[key] for r in rows])
            result[key] = float(values.mean())
            if get_std:  # the spread of one view is 0, not torch's NaN (which strict JSON cannot hold)
                result[f"{key}_std"] = float(values.std()) if len(values) > 1 else 0.0
        return result

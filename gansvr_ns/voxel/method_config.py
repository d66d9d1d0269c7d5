"""Registration of the `gansvr-voxel` method with nerfstudio (entry point `nerfstudio.method_configs`).

Same CPU-friendly defaults as gansvr: the device follows `torch.cuda.is_available()`, mixed precision is off
without CUDA and `vis` is tensorboard (nothing is fetched from the network).
"""

from __future__ import annotations

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from gansvr_ns.data.datamanager import GanSvrDataManagerConfig
from gansvr_ns.data.dataparser import GanSvrDataParserConfig
from gansvr_ns.voxel.model import GanSvrVoxelModelConfig
from gansvr_ns.voxel.pipeline import GanSvrVoxelPipelineConfig

MAX_STEPS = 2000


def _adam(lr: float, final: float, steps: int = MAX_STEPS):
    return {
        "optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15),
        "scheduler": ExponentialDecaySchedulerConfig(lr_final=final, max_steps=steps),
    }


def gansvr_voxel_config() -> TrainerConfig:
    """The default gansvr-voxel trainer config."""
    cuda = torch.cuda.is_available()
    return TrainerConfig(
        method_name="gansvr-voxel",
        steps_per_eval_batch=100,
        steps_per_eval_image=500,
        steps_per_eval_all_images=1_000_000,
        steps_per_save=500,
        max_num_iterations=MAX_STEPS,
        mixed_precision=cuda,
        save_only_latest_checkpoint=True,
        machine=MachineConfig(device_type="cuda" if cuda else "cpu"),
        pipeline=GanSvrVoxelPipelineConfig(
            datamanager=GanSvrDataManagerConfig(dataparser=GanSvrDataParserConfig()),
            model=GanSvrVoxelModelConfig(),
        ),
        optimizers={
            "encoder": _adam(1e-3, 1e-4),
            "decoder": _adam(1e-3, 1e-4),
            "camera_opt": _adam(1e-3, 1e-4),
        },
        viewer=ViewerConfig(num_rays_per_chunk=4096),
        vis="tensorboard",
    )


gansvr_voxel_method = MethodSpecification(
    config=gansvr_voxel_config(),
    description="Single-view reconstruction to an occupancy grid (encoder + 3D deconvolution decoder), CPU-friendly",
)

"""Registration of the `gansvr-voxel` method with nerfstudio (entry point `nerfstudio.method_configs`).

Same CPU-friendly trainer settings as gansvr (`gansvr_ns.method_config.cpu_trainer_config`).
"""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from gansvr_ns.data.datamanager import GanSvrDataManagerConfig
from gansvr_ns.data.dataparser import GanSvrDataParserConfig
from gansvr_ns.method_config import adam_schedule, cpu_trainer_config
from gansvr_ns.voxel.model import GanSvrVoxelModelConfig
from gansvr_ns.voxel.pipeline import GanSvrVoxelPipelineConfig

MAX_STEPS = 2000


def gansvr_voxel_config() -> TrainerConfig:
    """The default gansvr-voxel trainer config."""
    return cpu_trainer_config(
        "gansvr-voxel",
        max_steps=MAX_STEPS,
        pipeline=GanSvrVoxelPipelineConfig(
            # the voxel model has no latent terms on the second images: no need to randomise them every step
            datamanager=GanSvrDataManagerConfig(dataparser=GanSvrDataParserConfig(), consistency_augment=0.0),
            model=GanSvrVoxelModelConfig(),
        ),
        optimizers={
            "encoder": adam_schedule(1e-3, 1e-4, MAX_STEPS),
            "decoder": adam_schedule(1e-3, 1e-4, MAX_STEPS),
            "camera_opt": adam_schedule(1e-3, 1e-4, MAX_STEPS),
            "alignment": adam_schedule(1e-3, 1e-4, MAX_STEPS),
        },
        viewer=ViewerConfig(num_rays_per_chunk=4096),
    )


gansvr_voxel_method = MethodSpecification(
    config=gansvr_voxel_config(),
    description="Single-view reconstruction to an occupancy grid (encoder + 3D deconvolution decoder), CPU-friendly",
)

"""Registration of the `gansvr` method with nerfstudio (entry point `nerfstudio.method_configs`).

The defaults suit a CPU (`cpu_trainer_config`, shared with gansvr-voxel): the device follows
`torch.cuda.is_available()`, mixed precision is off without CUDA and `vis` is tensorboard (nothing is fetched from
the network). On a GPU the same config runs on CUDA, with tiny-cuda-nn hash grids where tinycudann imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from gansvr_ns.data.datamanager import GanSvrDataManagerConfig
from gansvr_ns.data.dataparser import GanSvrDataParserConfig
from gansvr_ns.model.field import SDFFieldConfig, tcnn_available
from gansvr_ns.model.gansvr_model import GanSvrModelConfig
from gansvr_ns.model.pipeline import GanSvrPipelineConfig

MAX_STEPS = 1500
"""Default steps: 1500 since session 28, 1800 in sessions 25-27, 2000 in sessions 16-24. At 1800 the default trained in
13.1 min idle on session 25's host but in 18.4 and 16.4 min on a later host (sessions 27 and 28; the step's time
moves with the host by a third and more). Side by side at one thread, 1500 steps scored 0.81x, 0.78x and 0.79x the
another-instance baseline (seeds 0, 1, 2) against 0.79x and 0.82x for 1800 (seeds 0, 1), and 0.86x, 0.89x and 0.84x
from another renderer against 0.85x and 0.85x (docs/benchmarks.md, "A sixth fewer steps as the default"). At session
25's faster step, 2000 steps took 14.9 and 15.0 min idle and scored 0.78x and 0.79x (seeds 0, 1).
1600 until session 16; 1400 before the faster step of gansvr_ns/data/hull.py's trilinear lookup."""

POSE_WARMUP_STEPS = round(MAX_STEPS * 3 / 14)
"""Steps before the pose refinement starts: 300 of 1400 steps, scaled with the run (321 of 1500)."""

POSE_SEARCH_STEPS = tuple(round(MAX_STEPS * f) for f in (7 / 20, 11 / 20))
"""When the pose search re-estimates every train view's pose from its mask: steps 525 and 825 of 1500, the second
time from a better shape (one search at 875 until session 19, three at 7/20, 11/20 and 15/20 of the run in sessions
19-28). With the search's 64^3 grid (`GanSvrModelConfig.pose_search_resolution`), three searches left 4.04, 4.32 and
4.45 deg from the true poses against 5.70, 5.71 and 5.91 for one search at 40^3 (session 19). The third search turned
the views by about two more degrees, a minute of a run: at 1500 steps, seeds 0-2 side by side at one thread scored
0.80x, 0.79x and 0.80x the another-instance baseline with two searches against 0.81x, 0.78x and 0.79x with three, and
0.86x, 0.89x and 0.85x from another renderer against 0.86x, 0.89x and 0.84x, ending 4.73, 4.90 and 4.87 deg from the
true poses against 4.37, 4.59 and 4.38 (docs/benchmarks.md, "Two pose searches as the default")."""

COS_ANNEAL_END = round(MAX_STEPS * 5 / 14)
"""Steps of the NeuS cosine annealing: the model's 500 of 1400 steps, scaled with the run (536 of 1500)."""


@dataclass
class FusedAdamOptimizerConfig(AdamOptimizerConfig):
    """nerfstudio's Adam config, run by torch's fused Adam kernel (CPU and CUDA): one pass over each parameter
    instead of a dozen small operations. On the ~12 M parameters of a gansvr run (mostly the ResNet-18 encoder)
    that is the difference between a few ms and ~20 ms per step on this CPU."""

    fused: bool = True
    """Use torch's fused Adam (False: its default loop)."""


def adam_schedule(lr: float, final: float, steps: int = MAX_STEPS, warmup: int = 0) -> dict:
    """Adam with an exponential decay from `lr` to `final` over `steps`, after `warmup` steps from 1e-8."""
    scheduler = ExponentialDecaySchedulerConfig(lr_final=final, max_steps=steps)
    if warmup:
        scheduler = ExponentialDecaySchedulerConfig(
            lr_pre_warmup=1e-8, warmup_steps=warmup, lr_final=final, max_steps=steps
        )
    return {"optimizer": FusedAdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": scheduler}


def cpu_trainer_config(method_name: str, pipeline: VanillaPipelineConfig, optimizers: dict, max_steps: int,
                       viewer: ViewerConfig) -> TrainerConfig:
    """The trainer settings of the plugin's methods: CUDA and mixed precision only where CUDA is, tensorboard."""
    cuda = torch.cuda.is_available()
    return TrainerConfig(
        method_name=method_name,
        steps_per_eval_batch=100,
        steps_per_eval_image=500,
        steps_per_eval_all_images=1_000_000,
        steps_per_save=500,
        max_num_iterations=max_steps,
        mixed_precision=cuda,
        save_only_latest_checkpoint=True,
        machine=MachineConfig(device_type="cuda" if cuda else "cpu"),
        pipeline=pipeline,
        optimizers=optimizers,
        viewer=viewer,
        vis="tensorboard",
    )


def gansvr_config() -> TrainerConfig:
    """The default gansvr trainer config."""
    return cpu_trainer_config(
        "gansvr",
        max_steps=MAX_STEPS,
        pipeline=GanSvrPipelineConfig(
            # 8 instances x 2 views per step (the same 1,024 rays as 4 x 4): more latents per step for the SDF to
            # tell apart. It scored 0.85x the another-instance baseline in three runs (two seeds), against 0.91x and
            # 0.87x for 4 x 4, for a step about 5% slower: the encoder reads 8 images (docs/benchmarks.md, Quality).
            # A quarter of each view's rays from the band around its mask's outline, where the silhouette decides
            # the shape: in two seeds side by side, 0.84x and 0.85x (0.85x and 0.85x without) and 0.91x and 0.92x
            # from another renderer (0.93x and 0.96x without), with the train poses closer to the truth.
            datamanager=GanSvrDataManagerConfig(dataparser=GanSvrDataParserConfig(), instances_per_batch=8,
                                                views_per_instance=2, edge_ray_fraction=0.25),
            # The pure-torch hash grid costs about ten times the SDF MLP per sample on a CPU (forward plus the
            # eikonal double backward), so the grid is on by default only where tiny-cuda-nn runs.
            # A 16^3 SDF offset grid decoded from the latent lets each image move its shape cell by cell: in
            # 400-step runs it took Chamfer from 1.25x to 1.00x the another-instance baseline.
            model=GanSvrModelConfig(
                sdf_field=SDFFieldConfig(use_hash_grid=tcnn_available(), latent_grid_resolution=16),
                cos_anneal_end=COS_ANNEAL_END,
                sdf_silhouette_ramp_steps=MAX_STEPS,
                pose_search_steps=POSE_SEARCH_STEPS,
            ),
        ),
        optimizers={
            "fields": adam_schedule(5e-3, 5e-4),
            # 1e-4: at 1e-3 the from-scratch ResNet-18 learns nothing about the image in this budget (its latents
            # cannot tell car types apart, `benchmark.py encoder-probe`) and every image gets the same average car
            "encoder": adam_schedule(1e-4, 1e-5),
            "uncertainty": adam_schedule(1e-3, 1e-4),
            # poses are refined once the shapes are roughly right: blurry early geometry gives misleading pose gradients
            "camera_opt": adam_schedule(1e-3, 1e-4, warmup=POSE_WARMUP_STEPS),
            "alignment": adam_schedule(1e-3, 1e-4),
            "codes": adam_schedule(1e-2, 1e-3),
            "pose_network": adam_schedule(1e-3, 1e-4, warmup=POSE_WARMUP_STEPS),
        },
        # The viewer renders in chunks of the model's eval_num_rays_per_chunk; num_rays_per_chunk is the legacy
        # viewer's. A gansvr dataset has instances x views cameras on one orbit: 64 thumbnails show that orbit.
        viewer=ViewerConfig(num_rays_per_chunk=4096, max_num_display_images=64),
    )


gansvr_method = MethodSpecification(
    config=gansvr_config(),
    description="Single-view 3D reconstruction learned from GAN pseudo views (ECCV 2022), CPU-friendly",
)

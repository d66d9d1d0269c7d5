"""The gansvr-voxel pipeline: gansvr's pipeline with the voxel model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Type

from gansvr_ns.model.pipeline import GanSvrPipeline, GanSvrPipelineConfig
from gansvr_ns.voxel.model import GanSvrVoxelModelConfig


@dataclass
class GanSvrVoxelPipelineConfig(GanSvrPipelineConfig):
    """gansvr's pipeline (conditioning images handed to the model) around the voxel model."""

    _target: Type = field(default_factory=lambda: GanSvrVoxelPipeline)
    model: GanSvrVoxelModelConfig = field(default_factory=GanSvrVoxelModelConfig)
    """The gansvr-voxel model."""


class GanSvrVoxelPipeline(GanSvrPipeline):
    """`GanSvrPipeline` around the voxel model (the class that the runs' saved configs name)."""

    config: GanSvrVoxelPipelineConfig

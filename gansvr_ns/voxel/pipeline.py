"""The gansvr-voxel pipeline: gansvr's pipeline with the voxel model (the selection it restores is a grid)."""

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
    """`GanSvrPipeline` whose held-out renderings keep the viewer's selected grid."""

    config: GanSvrVoxelPipelineConfig

    def _render_eval_image(self, camera, batch):
        """Render one held-out view conditioned on its instance's input image, keeping the viewer's choice."""
        previous = self.model.selected_grid
        outputs = self.model.render_for_image(camera, batch["condition_images"])
        self.model.selected_grid = previous
        return outputs

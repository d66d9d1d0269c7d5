"""The `gansvr-data` dataparser: reads a `gansvr-pseudoviews/1` dataset (FORMAT.md) into nerfstudio.

Import trap: nerfstudio loads this module while its own dataparser registry is still importing, so only
light modules may be imported here (cameras, scene box, base dataparser, registry, our format reader).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Type

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from gansvr_ns.data import format as fmt


@dataclass
class GanSvrDataParserConfig(DataParserConfig):
    """Reads the pseudo-view dataset format; a missing `data` path named like a preset is generated first."""

    _target: Type = field(default_factory=lambda: GanSvrDataParser)
    data: Path = Path("data/gan-car")
    """Dataset root (the folder holding dataset.json), or a preset name such as gan-car to generate there."""
    check_images: bool = True
    """Check the size of every image and mask while reading (reads only PNG headers)."""


class GanSvrDataParser(DataParser):
    """One camera per pseudo view of every instance of the requested split."""

    config: GanSvrDataParserConfig

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        root = ensure_dataset(Path(self.config.data))
        info = fmt.read_dataset(root)
        check_held_out(info)
        dataset_split = split_for(split)
        ids = info.instances(dataset_split)
        instances = [fmt.read_instance(info, i, check_images=self.config.check_images) for i in ids]
        return build_outputs(info, instances, dataset_split)


def check_held_out(info: fmt.DatasetInfo) -> None:
    """A FormatError when an instance of the train split is also in a split held out for evaluation: its
    reconstruction would be scored on an instance the method was trained on."""
    train = set(info.splits.get("train", []))
    for name in ("val", "test"):
        shared = [i for i in info.splits.get(name, []) if i in train]
        if shared:
            raise fmt.FormatError(info.root / "dataset.json", f"{shared[0]!r} is in both the train and the {name!r} "
                                  "split: a held-out instance must not be trained on")


_NOTED_PRESETS: set = set()
"""Dataset folders whose older-preset note was printed (once per process, not once per split)."""


def ensure_dataset(root: Path) -> Path:
    """Return `root`, generating it first when it does not exist and its name is a preset; an existing folder named
    like a preset but generated from other options than the preset file's is used as it is, with a one-line note."""
    from gansvr_ns.data.presets import generate_preset, preset_mismatch, resolve_preset_path

    if not root.exists():
        preset = resolve_preset_path(root)
        if preset is not None:
            generate_preset(preset, root)
    elif root.resolve() not in _NOTED_PRESETS:
        note = preset_mismatch(root)
        if note is not None:
            _NOTED_PRESETS.add(root.resolve())
            print(note)
    return root


def build_outputs(info: fmt.DatasetInfo, instances: List[fmt.InstanceRecord], split: str) -> DataparserOutputs:
    """Flatten the views of `instances` into nerfstudio cameras plus per-camera metadata."""
    poses, true_poses, intrinsics, camera_instance, view_index = [], [], [], [], []
    images, masks = [], []
    for k, record in enumerate(instances):
        for j, view in enumerate(record.views):
            poses.append(view.transform_matrix[:3])
            true_poses.append(None if view.transform_matrix_true is None else view.transform_matrix_true[:3])
            intr = view.intrinsics or info.intrinsics
            intrinsics.append([intr["fx"], intr["fy"], intr["cx"], intr["cy"]])
            camera_instance.append(k)
            view_index.append(j)
            images.append(view.image_path)
            masks.append(view.mask_path)
    intr = torch.tensor(intrinsics, dtype=torch.float32)
    height, width = info.image_size
    cameras = Cameras(
        camera_to_worlds=torch.from_numpy(np.stack(poses)).float(),
        fx=intr[:, 0:1],
        fy=intr[:, 1:2],
        cx=intr[:, 2:3],
        cy=intr[:, 3:4],
        width=width,
        height=height,
        camera_type=CameraType.PERSPECTIVE,
    )
    has_true = all(p is not None for p in true_poses)
    metadata = {
        "split": split,
        "instance_ids": [r.instance_id for r in instances],
        "camera_instance": torch.tensor(camera_instance, dtype=torch.long),
        "view_index": torch.tensor(view_index, dtype=torch.long),
        "input_images": [r.input_path for r in instances],
        "input_masks": [r.input_mask_path for r in instances],
        "meshes": [r.mesh_path for r in instances],
        "rough_poses": cameras.camera_to_worlds.clone(),
        "catalog": catalog(info),
        "true_poses": torch.from_numpy(np.stack(true_poses)).float() if has_true else None,
        "category": info.category,
    }
    return DataparserOutputs(
        image_filenames=images,
        cameras=cameras,
        scene_box=object_scene_box(),
        mask_filenames=masks,
        metadata=metadata,
    )


def object_scene_box() -> SceneBox:
    """The scene box of every dataset: [-1, 1]^3 around the canonical object frame (objects lie in the unit sphere)."""
    return SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))


def catalog(info: fmt.DatasetInfo) -> List[dict]:
    """Every instance of every split with its input image path (for choosing what the viewer renders)."""
    return [
        {"id": i, "split": split, "input": str(info.root / i / "input.png")}
        for split in fmt.SPLITS
        for i in info.splits.get(split, [])
    ]


def split_for(requested: str) -> str:
    """Map nerfstudio's split request to a dataset split; nerfstudio's `inference` mode reads `val`."""
    return requested if requested in fmt.SPLITS else "val"


gansvr_dataparser = DataParserSpecification(
    config=GanSvrDataParserConfig(), description="gansvr pseudo-view datasets (FORMAT.md), presets generated on use"
)

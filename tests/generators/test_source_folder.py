"""`gansvr-generate folder`: a user's pseudo views into the format, with clear errors for bad input."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gansvr_ns.data import format as fmt
from gansvr_ns.data.sources.folder import FolderSourceConfig


def make_folder(root: Path, instances: int = 3, views: int = 4, size=(24, 32)) -> Path:
    """Images with a distinct colour per view, masks with a box, and a label file using both input forms."""
    entries = []
    for k in range(instances):
        view_entries = []
        for v in range(views):
            rgb = np.full((*size, 3), (40 * v, 60 * k, 200), dtype=np.uint8)
            Image.fromarray(rgb).save(root / f"obj{k}_{v}.png")
            mask = np.zeros(size, dtype=np.uint8)
            mask[4 : 4 + 4 * (v + 1), 8:24] = 255
            Image.fromarray(mask).save(root / f"obj{k}_{v}_mask.png")
            view_entries.append({"image": f"obj{k}_{v}.png", "mask": f"obj{k}_{v}_mask.png",
                                 "azimuth_deg": 90 * v, "elevation_deg": 10 + k})
        view_entries[-1]["distance"] = 3.0
        entry = {"id": f"obj_{k}", "views": view_entries, "input": 1}
        if k == 0:
            Image.fromarray(np.zeros((*size, 3), dtype=np.uint8)).save(root / "input0.png")
            entry["input"] = {"image": "input0.png"}
        entries.append(entry)
    (root / "labels.json").write_text(json.dumps({"category": "chair", "instances": entries}))
    return root / "labels.json"


def test_folder_is_written_in_the_format(tmp_path):
    labels = make_folder(tmp_path)
    out = FolderSourceConfig(labels, tmp_path / "out", fov_deg=60.0).main()
    info = fmt.read_dataset(out)
    assert info.source == "folder" and info.category == "chair" and info.image_size == (24, 32)
    assert info.intrinsics["fx"] == pytest.approx(16.0 / np.tan(np.radians(30.0)), rel=1e-6)
    assert info.splits == {"train": ["obj_0"], "val": ["obj_1"], "test": ["obj_2"]}
    plain, indexed = fmt.read_instance(info, "obj_0"), fmt.read_instance(info, "obj_1")
    np.testing.assert_allclose(indexed.views[2].transform_matrix, fmt.orbit_pose(180, 11, 2.5), atol=1e-6)
    assert indexed.views[3].distance == 3.0
    assert plain.input_camera == {} and plain.input_mask_path is None
    assert indexed.input_camera["azimuth_deg"] == 90 and indexed.input_mask_path is not None
    assert np.array_equal(fmt.load_rgb(indexed.input_path), fmt.load_rgb(indexed.views[1].image_path))
    mask = fmt.load_mask(indexed.views[1].mask_path)
    assert mask.sum() == 8 * 16 and mask[4:12, 8:24].all()
    assert fmt.load_rgb(indexed.views[2].image_path)[0, 0, 0] == pytest.approx(80 / 255)


def test_resolution_rescales_views_and_masks(tmp_path):
    labels = make_folder(tmp_path, instances=1, views=2, size=(32, 64))
    out = FolderSourceConfig(labels, tmp_path / "out", resolution=16).main()
    info = fmt.read_dataset(out)
    assert info.image_size == (8, 16)
    mask = fmt.load_mask(fmt.read_instance(info, "obj_0").views[1].mask_path)
    assert mask.shape == (8, 16) and mask[1:3, 2:6].all() and mask.sum() == 2 * 4


def test_masks_saved_as_0_and_1_are_read_as_such(tmp_path):
    labels = make_folder(tmp_path, instances=3, views=2)
    for path in tmp_path.glob("*_mask.png"):
        Image.fromarray((np.asarray(Image.open(path)) > 127).astype(np.uint8)).save(path)  # 0/1, as many tools save
    info = fmt.read_dataset(FolderSourceConfig(labels, tmp_path / "out").main())
    mask = fmt.load_mask(fmt.read_instance(info, "obj_1").views[1].mask_path)  # written 0/255
    assert mask.sum() == 8 * 16 and mask[4:12, 8:24].all()


def _edit_labels(labels: Path, edit) -> None:
    data = json.loads(labels.read_text())
    edit(data)
    labels.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d["instances"][1]["views"][0].update(image="absent.png"), "absent.png: file is missing"),
        (lambda d: d["instances"][1]["views"][2].pop("mask"), r"instances\[1\].views\[2\] needs a 'mask' path"),
        (lambda d: d["instances"][2].update(id="obj_0"), r"instances\[2\] repeats the id 'obj_0'"),
        (lambda d: d["instances"][2].update(input=9), r"instances\[2\].input 9 is not a view index"),
        (lambda d: d["instances"][0]["views"][1].update(azimuth_deg="left"), "azimuth_deg must be a finite number"),
        (lambda d: d.pop("category"), "needs a 'category'"),
        (lambda d: d["instances"][1]["views"][3].update(mask="small.png"), "small.png: size 12x16 differs"),
        (lambda d: d["instances"][1]["views"][1].update(distance=0.3), r"views\[1\].distance must exceed 1"),
        (lambda d: d["instances"][2]["views"][0].update(elevation_deg=100), r"within \[-90, 90\], got 100"),
        (lambda d: d["instances"][0]["input"].update(azimuth_deg=30), r"input needs azimuth_deg and elevation_deg "
                                                                     r"\(both, or neither\)"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(edit, problem, tmp_path, capsys):
    labels = make_folder(tmp_path)
    Image.fromarray(np.zeros((12, 16), dtype=np.uint8)).save(tmp_path / "small.png")
    _edit_labels(labels, edit)
    with pytest.raises(SystemExit) as exit_info:
        FolderSourceConfig(labels, tmp_path / "out").main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert re.search(problem, err)
    assert not (tmp_path / "out").exists()


def test_blank_masks_and_splits_ns_train_cannot_use_are_warned_about(tmp_path, capsys):
    labels = make_folder(tmp_path, instances=1, views=3)
    Image.fromarray(np.zeros((24, 32), dtype=np.uint8)).save(tmp_path / "obj0_2_mask.png")
    info = fmt.read_dataset(FolderSourceConfig(labels, tmp_path / "out").main())
    assert info.splits == {"train": ["obj_0"], "val": [], "test": []}
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'out'}: no val instance, so ns-train cannot train on it" in err
    assert f"warning: 1 mask(s) mark no pixel or every pixel as object, e.g. {tmp_path / 'obj0_2_mask.png'}" in err

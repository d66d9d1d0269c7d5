"""`gansvr-generate stylegan2` end to end: format, determinism, resume, shards, user masks, errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gansvr_ns.data import format as fmt
from gansvr_ns.data.sources import stylegan2 as source
from gansvr_ns.data.sources.stylegan2 import InstanceRenderer, StyleGan2SourceConfig
from tests.generators.conftest import write_labels


def tree(root: Path) -> dict:
    """Every file under root (hidden ones too) -> its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def config(artefacts: Path, out: Path, checkpoint: str = "narrow.pt", **overrides) -> StyleGan2SourceConfig:
    options = dict(checkpoint=artefacts / checkpoint, view_codes=artefacts / "labels.json", out=out,
                   segmenter_weights=artefacts / "deeplab.pt", num_instances=3, resolution=32, seed=7,
                   segment_width=32, device="cpu")
    options.update(overrides)
    return StyleGan2SourceConfig(**options)


def test_done_when_two_instances_of_eight_views_twice_identical(artefacts, tmp_path):
    """Size 32, style_dim 64, n_mlp 2 (standard channels), 8 labels, random DeepLabV3-MobileNetV3 weights."""
    outs = [config(artefacts, tmp_path / name, "standard.pt", num_instances=2).main() for name in ("a", "b")]
    assert tree(outs[0]) == tree(outs[1])
    info = fmt.read_dataset(outs[0])
    assert info.source == "stylegan2" and info.image_size == (32, 32) and info.category == "car"
    assert info.splits == {"train": ["car_0000"], "val": ["car_0001"], "test": []}  # trainable: train and val
    assert info.generator["architecture"] == {"size": 32, "style_dim": 64, "n_mlp": 2, "channels": [512] * 4}
    labels = json.loads((artefacts / "labels.json").read_text())["view_codes"]
    first_views = []
    for instance_id in ("car_0000", "car_0001"):
        record = fmt.read_instance(info, instance_id)
        assert len(record.views) == 8 and record.mesh_path is None
        assert record.input_camera == {}  # a random input view has no pose
        for view, label in zip(record.views, labels):
            expected = fmt.orbit_pose(label["azimuth_deg"], label["elevation_deg"], 2.5)
            np.testing.assert_allclose(view.transform_matrix, expected, atol=1e-6)
            assert view.transform_matrix_true is None
            assert set(np.unique(np.asarray(Image.open(view.mask_path)))) <= {0, 255}
        images = [fmt.load_rgb(v.image_path) for v in record.views]
        assert not np.array_equal(images[0], images[1])  # view codes change the image
        assert not any(np.array_equal(fmt.load_rgb(record.input_path), im) for im in images)
        first_views.append(images[0])
    assert not np.array_equal(*first_views)  # two instances, two contents

    from gansvr_ns.data.dataparser import GanSvrDataParserConfig  # the real consumer (imports nerfstudio)

    outputs = GanSvrDataParserConfig(data=outs[0]).setup().get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == 8 and outputs.cameras.width.flatten().tolist() == [32] * 8


def test_input_is_rendered_at_a_held_out_code(artefacts, tmp_path):
    labels = json.loads((artefacts / "labels.json").read_text())
    labels["view_codes"].append({"seed": 900, "azimuth_deg": 33, "elevation_deg": 12, "input_only": True})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    out = config(artefacts, tmp_path / "out", view_codes=tmp_path / "labels.json", num_instances=1).main()
    info = fmt.read_dataset(out)
    record = fmt.read_instance(info, "car_0000")
    assert len(record.views) == 8
    assert record.input_camera["azimuth_deg"] == 33 and record.input_camera["elevation_deg"] == 12
    np.testing.assert_allclose(record.input_camera["transform_matrix"], fmt.orbit_pose(33, 12, 2.5), atol=1e-6)
    assert record.input_mask_path is not None


def write_user_masks(root: Path, size: int = 64, instances: int = 3, views: int = 8) -> Path:
    """A distinct box mask per (instance, view) in the --masks-from layout <id>/masks/NNN.png."""
    for k in range(instances):
        for v in range(views):
            mask = np.zeros((size, size), dtype=bool)
            mask[4 * v : 4 * v + 32, 8 * k : 8 * k + 40] = True
            fmt.save_mask(root / f"car_{k:04d}" / "masks" / f"{v:03d}.png", mask)
    return root


@pytest.fixture(scope="module")
def user_masks(tmp_path_factory) -> Path:
    return write_user_masks(tmp_path_factory.mktemp("masks"))


def fast_config(artefacts: Path, out: Path, user_masks: Path, **overrides) -> StyleGan2SourceConfig:
    """The narrow generator with the user's masks (no segmenter): for the bookkeeping tests."""
    return config(artefacts, out, segmenter_weights=None, masks_from=user_masks, **overrides)


@pytest.fixture(scope="module")
def reference(artefacts, user_masks, tmp_path_factory) -> Path:
    """An uninterrupted, unsharded run of 3 instances with the narrow generator."""
    return fast_config(artefacts, tmp_path_factory.mktemp("reference") / "out", user_masks).main()


def test_interrupted_run_is_completed_by_a_rerun(artefacts, user_masks, reference, tmp_path, monkeypatch):
    out = tmp_path / "out"
    original_write = InstanceRenderer.write

    def write_then_fail(self, folder, instance_id, index):
        if index == 1:
            (folder / f".partial-{instance_id}-999").mkdir()  # a half-written instance
            raise RuntimeError("power cut")
        original_write(self, folder, instance_id, index)

    monkeypatch.setattr(InstanceRenderer, "write", write_then_fail)
    with pytest.raises(RuntimeError, match="power cut"):
        fast_config(artefacts, out, user_masks).main()
    assert (out / "car_0000").is_dir() and not (out / "car_0001").exists() and not (out / "dataset.json").exists()
    monkeypatch.setattr(InstanceRenderer, "write", original_write)
    kept = (out / "car_0000" / "cameras.json").stat().st_mtime_ns
    fast_config(artefacts, out, user_masks).main()
    assert (out / "car_0000" / "cameras.json").stat().st_mtime_ns == kept  # not rewritten
    assert tree(out) == tree(reference)


def test_shards_write_disjoint_parts_and_the_last_writes_dataset_json(artefacts, user_masks, reference, tmp_path,
                                                                       monkeypatch):
    shared = tmp_path / "shared"
    fast_config(artefacts, shared, user_masks, shard="0/2").main()
    assert sorted(p.name for p in shared.iterdir()) == [".gansvr-stylegan2.json", "car_0000", "car_0002"]
    fast_config(artefacts, shared, user_masks, shard="1/2").main()
    assert tree(shared) == tree(reference)

    # Shards on separate machines: their folders copied together, then a final run without --shard.
    merged = tmp_path / "merged"
    shutil.copytree(shared, merged, ignore=shutil.ignore_patterns("dataset.json"))
    monkeypatch.setattr(InstanceRenderer, "render", lambda *args: pytest.fail("nothing should be rendered"))
    fast_config(artefacts, merged, user_masks).main()
    assert tree(merged) == tree(reference)


def test_rerun_with_other_settings_is_refused(artefacts, user_masks, reference, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    with pytest.raises(SystemExit) as exit_info:
        fast_config(artefacts, copy, user_masks, seed=8, truncation=0.5).main()
    assert exit_info.value.code == 2
    assert "other settings (seed, truncation differ)" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):
        config(artefacts, tmp_path / "busy").main()
    assert "not a gansvr-generate stylegan2 output" in capsys.readouterr().err


def test_user_masks_replace_the_segmenter(artefacts, reference, tmp_path, capsys):
    masks = write_user_masks(tmp_path / "masks")
    info = fmt.read_dataset(reference)
    assert info.generator["masks"] == {"from": "user folder"}
    written = fmt.load_mask(reference / "car_0002" / "masks" / "005.png")
    expected = fmt.load_mask(masks / "car_0002" / "masks" / "005.png")[::2, ::2]  # 64 px masks resized to 32
    assert np.array_equal(written, expected)
    assert not (reference / "car_0002" / "input_mask.png").exists()

    (masks / "car_0001" / "masks" / "003.png").unlink()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        fast_config(artefacts, tmp_path / "out2", masks).main()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"error: {masks / 'car_0001' / 'masks' / '003.png'}: mask missing " \
                  "(--masks-from expects <id>/masks/NNN.png per view)"
    assert not (tmp_path / "out2").exists()


def test_bad_inputs_give_one_line_and_exit_2(artefacts, tmp_path, capsys):
    ckpt = torch.load(artefacts / "narrow.pt", weights_only=True)
    del ckpt["g_ema"]["conv1.conv.weight"]
    torch.save(ckpt, tmp_path / "broken.pt")
    cases = [
        (dict(checkpoint=tmp_path / "broken.pt"), "missing conv1.conv.weight"),
        (dict(masks_from=tmp_path), "give exactly one of --segmenter-weights PATH or --masks-from DIR"),
        (dict(shard="2/2"), "--shard 2/2: need 0 <= i < n"),
        (dict(category="church"), "'church' is not a Pascal VOC class"),
        (dict(view_codes=write_labels(tmp_path / "l.json", mix_layers=8)), "mix_layers 8 must be below"),
    ]
    for overrides, problem in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            config(artefacts, tmp_path / "out", **overrides).main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "Traceback" not in err
        assert err.count("error:") == 1 and problem in err.splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_instance_seeds_do_not_depend_on_sharding():
    assert torch.equal(torch.randn(4, generator=source.instance_generator(7, 5)),
                       torch.randn(4, generator=source.instance_generator(7, 5)))
    assert not torch.equal(torch.randn(4, generator=source.instance_generator(7, 5)),
                           torch.randn(4, generator=source.instance_generator(7, 6)))
    assert source.parse_shard("1/3") == (1, 3) and source.parse_shard(None) == (0, 1)
    assert source.instance_ids("car", 12000)[-1] == "car_11999"

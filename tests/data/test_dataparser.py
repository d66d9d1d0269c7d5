"""The gansvr-data dataparser: reading a good dataset, and one clear error per broken input."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gansvr_ns.data import format as fmt
from gansvr_ns.data.dataparser import GanSvrDataParserConfig


def parse(root: Path, split: str = "train"):
    return GanSvrDataParserConfig(data=root).setup().get_dataparser_outputs(split=split)


def snapshot(root: Path):
    files = [p for p in root.rglob("*") if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_reads_cameras_and_metadata(ellipsoids):
    info = fmt.read_dataset(ellipsoids)
    out = parse(ellipsoids)
    train = info.splits["train"]
    assert len(out.image_filenames) == len(train) * 6 == out.cameras.camera_to_worlds.shape[0]
    assert out.metadata["instance_ids"] == train
    assert out.metadata["camera_instance"].tolist() == [k for k in range(len(train)) for _ in range(6)]
    assert out.scene_box.aabb.tolist() == [[-1, -1, -1], [1, 1, 1]]
    assert out.metadata["true_poses"].shape == (len(train) * 6, 3, 4)
    first = json.loads((ellipsoids / train[0] / "cameras.json").read_text())["views"][0]["transform_matrix"]
    torch.testing.assert_close(out.cameras.camera_to_worlds[0], torch.tensor(first, dtype=torch.float32)[:3])
    assert float(out.cameras.fx[0]) == pytest.approx(24 * 1.1)
    assert [Path(p).name for p in out.metadata["input_images"]] == ["input.png"] * len(train)
    test = parse(ellipsoids, "test")
    assert test.metadata["instance_ids"] == info.splits["test"]


def test_nerfstudio_rays_of_a_camera_reproduce_its_mask(ellipsoids):
    """Rays that nerfstudio generates from the parsed camera hit mesh.ply exactly where the mask says object."""
    import open3d as o3d

    out = parse(ellipsoids)
    index = 3
    rays = out.cameras.generate_rays(camera_indices=index)
    mesh = o3d.t.io.read_triangle_mesh(str(Path(out.metadata["meshes"][0])))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(mesh)
    query = torch.cat([rays.origins, rays.directions], dim=-1).reshape(-1, 6).numpy().astype(np.float32)
    hit = np.isfinite(scene.cast_rays(o3d.core.Tensor(query))["t_hit"].numpy()).reshape(rays.shape)
    mask = fmt.load_mask(Path(out.mask_filenames[index]))
    iou = (hit & mask).sum() / (hit | mask).sum()
    assert iou > 0.9


def _break_delete_dataset_json(root: Path):
    (root / "dataset.json").unlink()
    return root / "dataset.json", "missing"


def _break_not_json(root: Path):
    (root / "dataset.json").write_text("{not json")
    return root / "dataset.json", "not valid JSON"


def _break_format(root: Path):
    data = json.loads((root / "dataset.json").read_text())
    data["format"] = "something-else/9"
    (root / "dataset.json").write_text(json.dumps(data))
    return root / "dataset.json", "unknown format"


def _first_train(root: Path) -> Path:
    return root / json.loads((root / "dataset.json").read_text())["splits"]["train"][0]


def _break_delete_mask(root: Path):
    mask = _first_train(root) / "masks" / "002.png"
    mask.unlink()
    return mask, "missing"


def _break_matrix_2x2(root: Path):
    cams = _first_train(root) / "cameras.json"
    data = json.loads(cams.read_text())
    data["views"][1]["transform_matrix"] = [[1, 0], [0, 1]]
    cams.write_text(json.dumps(data))
    return cams, "4x4"


def _break_not_rigid(root: Path):
    cams = _first_train(root) / "cameras.json"
    data = json.loads(cams.read_text())
    data["views"][0]["transform_matrix"][0][0] = 3.0
    cams.write_text(json.dumps(data))
    return cams, "not a rigid transform"


def _break_view_size(root: Path):
    view = _first_train(root) / "views" / "001.png"
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(view)
    return view, "differs from image_size"


def _break_mask_size(root: Path):
    mask = _first_train(root) / "masks" / "003.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(mask)
    return mask, "differs from its view"


def _break_empty_split(root: Path):
    data = json.loads((root / "dataset.json").read_text())
    data["splits"]["train"] = []
    (root / "dataset.json").write_text(json.dumps(data))
    return root / "dataset.json", "split 'train' is empty"


def _break_instance_folder(root: Path):
    folder = _first_train(root)
    shutil.rmtree(folder)
    return folder, "missing"


def _break_zero_focal(root: Path):
    data = json.loads((root / "dataset.json").read_text())
    data["intrinsics"]["fx"] = 0
    (root / "dataset.json").write_text(json.dumps(data))
    return root / "dataset.json", "fx and fy must be positive"


def _break_view_focal(root: Path):
    cams = _first_train(root) / "cameras.json"
    data = json.loads(cams.read_text())
    data["views"][2]["intrinsics"] = {"fx": -5.0, "fy": 30.0, "cx": 12.0, "cy": 12.0}
    cams.write_text(json.dumps(data))
    return cams, "views[2].intrinsics: fx and fy must be positive focal lengths in pixels (got -5, 30)"


def _break_repeated_id(root: Path):
    data = json.loads((root / "dataset.json").read_text())
    data["splits"]["train"].append(data["splits"]["train"][0])
    (root / "dataset.json").write_text(json.dumps(data))
    return root / "dataset.json", f"split 'train' lists '{data['splits']['train'][0]}' more than once"


def _break_test_in_train(root: Path):
    data = json.loads((root / "dataset.json").read_text())
    data["splits"]["train"].append(data["splits"]["test"][0])
    (root / "dataset.json").write_text(json.dumps(data))
    return root / "dataset.json", f"'{data['splits']['test'][0]}' is in both the train and the 'test' split"


@pytest.mark.parametrize(
    "breaker",
    [
        _break_delete_dataset_json, _break_not_json, _break_format, _break_delete_mask, _break_matrix_2x2,
        _break_not_rigid, _break_view_size, _break_mask_size, _break_empty_split, _break_instance_folder,
        _break_zero_focal, _break_view_focal, _break_repeated_id, _break_test_in_train,
    ],
)
def test_broken_inputs_give_one_line_naming_the_file(ellipsoids, breaker):
    path, words = breaker(ellipsoids)
    before = snapshot(ellipsoids)
    with pytest.raises(fmt.FormatError) as info:
        parse(ellipsoids)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert re.search(re.escape(words), message)
    assert snapshot(ellipsoids) == before


def test_transparent_pixels_are_composited_onto_grey(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = [200, 40, 10]
    rgba[:2, :, 3] = 255  # opaque top half
    rgba[2, :, 3] = 0  # transparent row: its stored colour must not show
    rgba[3, :, 3] = 128  # half transparent row: blended with the grey
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "cutout.png")
    rgb = fmt.load_rgb(tmp_path / "cutout.png")
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[:2], np.broadcast_to(np.array([200, 40, 10]) / 255.0, (2, 6, 3)), atol=1e-6)
    np.testing.assert_allclose(rgb[2], fmt.TRANSPARENT_BACKGROUND, atol=1e-6)
    a = 128 / 255.0
    expected = np.array([200, 40, 10]) / 255.0 * a + fmt.TRANSPARENT_BACKGROUND * (1 - a)
    np.testing.assert_allclose(rgb[3], np.broadcast_to(expected, (6, 3)), atol=1e-6)
    # the 8-bit image that the folder source and the real-image loader resize is the same composite
    with Image.open(tmp_path / "cutout.png") as img:
        assert np.array_equal(np.asarray(fmt.rgb_image(img)), fmt.to_uint8(rgb))
    # a palette image with a transparent colour index is composited the same way
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    np.testing.assert_allclose(fmt.load_rgb(tmp_path / "palette.png")[0], [[0.5, 0.5, 0.5], [0.0, 0.0, 1.0]], atol=1e-6)
    # an RGB image reads as it is
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
    np.testing.assert_allclose(fmt.load_rgb(tmp_path / "rgb.png"), rgba[..., :3] / 255.0, atol=1e-6)


def test_a_photo_is_read_turned_by_its_exif_orientation(tmp_path):
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0, 0] = [255, 0, 0]  # red at the stored image's top left
    exif = Image.Exif()
    exif[fmt.EXIF_ORIENTATION] = 6  # stored sideways: shown turned a quarter clockwise
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=100, subsampling=0)
    assert fmt.image_size_of(tmp_path / "phone.jpg") == (3, 2)
    rgb = fmt.load_rgb(tmp_path / "phone.jpg")
    assert rgb.shape == (3, 2, 3) and rgb[0, 1, 0] > 0.8 and rgb[0, 0, 0] < 0.2  # top left -> top right
    with Image.open(tmp_path / "phone.jpg") as img:
        assert fmt.rgb_image(img).size == (2, 3)
    Image.fromarray(pixels[..., 0]).save(tmp_path / "mask.png", exif=exif)
    assert fmt.load_mask(tmp_path / "mask.png").tolist() == [[False, True], [False, False], [False, False]]
    rgba = np.dstack([pixels, pixels[..., :1]])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "cutout.png", exif=exif)
    assert fmt.load_alpha_mask(tmp_path / "cutout.png").tolist() == [[False, True], [False, False], [False, False]]
    # without the tag, as stored
    Image.fromarray(pixels).save(tmp_path / "plain.png")
    assert fmt.image_size_of(tmp_path / "plain.png") == (2, 3)
    assert fmt.load_rgb(tmp_path / "plain.png").shape == (2, 3, 3)


def test_images_of_more_than_8_bits_are_scaled_not_clipped(tmp_path):
    levels = np.array([[0, 1000, 32768, 65535]], np.uint16)
    Image.fromarray(levels).save(tmp_path / "grey16.png")  # a 16-bit grey PNG (PIL mode I;16)
    rgb = fmt.load_rgb(tmp_path / "grey16.png")
    assert rgb.shape == (1, 4, 3)
    np.testing.assert_allclose(rgb[0, :, 1], levels[0] / 65535.0, atol=1e-6)  # clipped, 1000 would read as white
    with Image.open(tmp_path / "grey16.png") as img:
        assert np.array_equal(np.asarray(fmt.rgb_image(img)), fmt.to_uint8(rgb))
    # float images: their range is read off their values ([0, 1] here, not 255 times darker)
    Image.fromarray(np.array([[0.0, 0.25, 1.0]], np.float32)).save(tmp_path / "float.tif")
    np.testing.assert_allclose(fmt.load_rgb(tmp_path / "float.tif")[0, :, 0], [0.0, 0.25, 1.0], atol=1e-6)
    # a 16-bit mask is object above half its range, not above 127 of it
    Image.fromarray(np.array([[0, 200, 30000, 40000]], np.uint16)).save(tmp_path / "mask16.png")
    assert fmt.load_mask(tmp_path / "mask16.png").tolist() == [[False, False, False, True]]


def test_masks_saved_as_0_and_1(tmp_path, ellipsoids):
    values = np.zeros((4, 5), np.uint8)
    values[1:3, 2:4] = 1
    Image.fromarray(values).save(tmp_path / "m8.png")
    Image.fromarray(values.astype(np.uint16)).save(tmp_path / "m16.png")  # PIL mode I;16
    Image.fromarray(values * 255).save(tmp_path / "m255.png")
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "empty.png")
    for name in ("m8.png", "m16.png"):
        # a user's own mask (--masks, the folder source) reads 1 as object; a dataset's is an error naming it
        assert fmt.load_mask(tmp_path / name, zero_one=True).tolist() == (values == 1).tolist()
        with pytest.raises(fmt.FormatError, match=f"{name}: mask values are 0 and 1"):
            fmt.load_mask(tmp_path / name)
    assert fmt.load_mask(tmp_path / "m255.png").tolist() == (values == 1).tolist()
    assert fmt.load_mask(tmp_path / "m255.png", zero_one=True).tolist() == (values == 1).tolist()
    assert not fmt.load_mask(tmp_path / "empty.png", zero_one=True).any()  # an empty mask stays empty

    # in a dataset, training stops at that file rather than on masks that all read as empty
    from tests.conftest import small_training_pipeline

    mask = _first_train(ellipsoids) / "masks" / "001.png"
    Image.fromarray((np.asarray(Image.open(mask)) > 127).astype(np.uint8)).save(mask)
    from gansvr_ns.data.datamanager import DataError

    with pytest.raises(DataError, match=f"{re.escape(str(mask))}: mask values are 0 and 1"):
        small_training_pipeline(ellipsoids)


def test_masks_as_8_bit_values_in_16_bits_or_as_a_cut_outs_alpha(tmp_path):
    object_ = np.zeros((4, 5), bool)
    object_[1:3, 2:4] = True
    Image.fromarray(object_.astype(np.uint16) * 255).save(tmp_path / "m16_255.png")  # 0/255 in a 16-bit PNG
    alpha = object_.astype(np.uint8) * 255
    black, white = np.zeros((4, 5), np.uint8), np.full((4, 5), 255, np.uint8)
    Image.fromarray(np.dstack([black] * 3 + [alpha])).save(tmp_path / "rgba_black.png")
    Image.fromarray(np.dstack([white, alpha]), mode="LA").save(tmp_path / "la_white.png")
    Image.fromarray(np.dstack([object_.astype(np.uint8) * 255] * 3 + [white])).save(tmp_path / "rgba_opaque.png")
    for name in ("m16_255.png", "rgba_black.png", "la_white.png", "rgba_opaque.png"):
        for zero_one in (False, True):
            assert fmt.load_mask(tmp_path / name, zero_one=zero_one).tolist() == object_.tolist(), name


def test_generated_dataset_folders_get_the_usual_mode(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with fmt.staging_dir(tmp_path / "out") as tmp:
            (tmp / "x").mkdir()
        assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755  # mkdtemp's 0o700 would hide it from others
    finally:
        os.umask(umask)


@pytest.mark.parametrize("n, fractions, sizes", [
    (512, (0.9, 0.05, 0.05), (460, 26, 26)),  # the presets
    (6, (0.5, 0.17, 0.33), (3, 1, 2)),
    (5, (0.0, 0.0, 1.0), (0, 0, 5)),  # a test-only set: before, 4 of its 5 were in train too
    (7, (0.0, 0.5, 0.5), (0, 3, 4)),
    (4, (0.0, 0.6, 0.4), (0, 2, 2)),
    (6, (1.0, 0.0, 0.0), (6, 0, 0)),
    (10, (0.05, 0.05, 0.9), (1, 1, 8)),
    (2, (0.8, 0.1, 0.1), (1, 1, 0)),
    (1, (0.8, 0.1, 0.1), (1, 0, 0)),
])
def test_split_ids_honours_the_fractions_and_puts_no_id_in_two_splits(n, fractions, sizes):
    ids = [f"i{k}" for k in range(n)]
    splits = fmt.split_ids(ids, fractions)
    assert tuple(len(splits[name]) for name in ("train", "val", "test")) == sizes
    assert splits["train"] + splits["val"] + splits["test"] == ids


def test_a_dataset_is_written_into_an_empty_working_folder_or_a_link_to_one(tmp_path, monkeypatch):
    target, link = tmp_path / "target", tmp_path / "link"
    target.mkdir()
    link.symlink_to(target)
    for out, working in ((link, tmp_path), (Path("."), target)):
        for old in target.iterdir():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        monkeypatch.chdir(working)
        with fmt.staging_dir(out) as tmp:
            (tmp / "a").mkdir()
            (tmp / "dataset.json").write_text("{}")
        assert sorted(p.name for p in target.iterdir()) == ["a", "dataset.json"] and link.is_symlink()
        assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    a_file = tmp_path / "a_file"
    a_file.write_text("kept")
    with pytest.raises(fmt.FormatError, match=f"cannot be written below {re.escape(str(a_file))}, which is a file"):
        with fmt.staging_dir(a_file / "sub"):
            pass
    assert a_file.read_text() == "kept"


def test_an_image_beyond_pils_pixel_limit_is_named_in_one_line(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "big_mask.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 2,000 pixels are then over PIL's error limit (2x)
    for read in (fmt.image_size_of, fmt.load_rgb, fmt.load_alpha_mask):
        with pytest.raises(fmt.FormatError, match=r"big\.png: image of more than 1,000 pixels, PIL's limit"):
            read(tmp_path / "big.png")
    with pytest.raises(fmt.FormatError, match=r"big_mask\.png: mask of more than 1,000 pixels"):
        fmt.load_mask(tmp_path / "big_mask.png")

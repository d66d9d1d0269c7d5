"""End to end through the real command lines: ns-train gansvr -> gansvr-reconstruct -> gansvr-eval."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, reconstruct_test_split, run

FAST = [
    "--max-num-iterations", "6", "--steps-per-eval-batch", "3", "--steps-per-eval-image", "5",
    "--steps-per-save", "6", "--machine.device-type", "cpu", "--vis", "tensorboard",
    "--pipeline.model.num-samples", "8", "--pipeline.model.num-samples-importance", "8",
    "--pipeline.datamanager.rays-per-view", "16",
]



@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from tests.conftest import make_ellipsoid_dataset

    work = tmp_path_factory.mktemp("e2e")
    data = make_ellipsoid_dataset(work / "ellipsoids", num_instances=6, views=6, size=24)
    # a pose search at step 4 runs through the real training loop's callbacks
    result = run(BIN / "ns-train", "gansvr", "--data", data, "--output-dir", work / "outputs", "--timestamp", "run",
                 *FAST, "--pipeline.model.pose-search-steps", "4", cwd=work)
    assert "pose search at step 4" in result.stdout
    config = work / "outputs" / "ellipsoids" / "gansvr" / "run" / "config.yml"
    assert config.is_file()
    assert list((config.parent / "nerfstudio_models").glob("step-*.ckpt"))
    return work, data, config


def test_reconstruct_and_evaluate(trained_run):
    work, data, config = trained_run
    out = work / "meshes"
    test_ids = reconstruct_test_split(config, data, out, cwd=work)
    run(BIN / "gansvr-eval", "--pred", out, "--data", data, "--split", "test", cwd=work)
    scores = json.loads((out / "eval_test.json").read_text())
    assert scores["num_evaluated"] == len(test_ids)
    assert 0.0 <= scores["mean"]["iou"] <= 1.0 and scores["mean"]["chamfer_l1"] > 0.0


def test_reconstruct_rejects_bad_inputs(trained_run, tmp_path):
    work, data, config = trained_run
    bad_image = tmp_path / "broken.png"
    bad_image.write_bytes(b"not a png")
    result = subprocess.run([str(BIN / "gansvr-reconstruct"), "--load-config", str(config), "--images",
                             str(bad_image), "--output-dir", str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "broken.png: not a readable image" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    other = tmp_path / "config.yml"
    other.write_text(config.read_text().replace("method_name: gansvr", "method_name: nerfacto"))
    result = subprocess.run([str(BIN / "gansvr-reconstruct"), "--load-config", str(other), "--images",
                             str(data / "ell_000" / "input.png"), "--output-dir", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "not a gansvr run" in result.stdout + result.stderr
    image = str(data / "ell_000" / "input.png")
    a_file = tmp_path / "meshes.txt"
    a_file.write_text("kept")
    for flags, message in (
        (["--output-dir", str(tmp_path / "o"), "--resolution", "4"], "--resolution 4: must be at least 8"),
        (["--output-dir", str(a_file)], f"{a_file}: --output-dir exists and is not a folder"),
        (["--output-dir", str(tmp_path / "o"), "--format"], "--format: give at least one of ply, obj, glb"),
    ):
        result = subprocess.run([str(BIN / "gansvr-reconstruct"), "--load-config", str(config), "--images", image,
                                 *flags], capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.strip() == f"gansvr-reconstruct: {message}"
    assert a_file.read_text() == "kept"


def test_reconstruct_names_empty_meshes(trained_run, tmp_path, monkeypatch, capsys):
    import trimesh

    from gansvr_ns.scripts import reconstruct

    work, data, config = trained_run
    monkeypatch.setattr(reconstruct, "mesh_reconstructor", lambda model: lambda image, resolution: trimesh.Trimesh())
    images = [data / "ell_000" / "input.png", data / "ell_001" / "input.png"]
    reconstruct.ReconstructConfig(load_config=config, output_dir=tmp_path / "o", images=images).main()
    out = capsys.readouterr().out
    assert "2 mesh(es) are empty" in out and "ell_000_input" in out
    assert json.loads((tmp_path / "o" / "reconstruct.json").read_text())["meshes"]["ell_001_input"]["faces"] == 0


def test_reconstruct_puts_masked_images_on_grey(trained_run, tmp_path, monkeypatch):
    """`--background auto` reads an image given with a mask file on grey, as a cut-out's transparency reads, and a
    dataset's inputs as they are; a run whose encoder was trained on grey (`condition_background` grey) reads every
    image with a mask on grey. `grey` and `keep` do so for every image, or none; an image without a mask stays."""
    import dataclasses
    import shutil

    import numpy as np
    import trimesh
    import yaml
    from PIL import Image

    from gansvr_ns.data.format import TRANSPARENT_BACKGROUND, load_mask
    from gansvr_ns.scripts import reconstruct

    work, data, config = trained_run
    grey_run = tmp_path / "outputs" / "ellipsoids" / "gansvr" / "grey"
    shutil.copytree(config.parent, grey_run)
    saved = yaml.load((grey_run / "config.yml").read_text(), Loader=yaml.Loader)
    saved.pipeline.datamanager.condition_background = "grey"
    (grey_run / "config.yml").write_text(yaml.dump(saved))
    seen = []
    monkeypatch.setattr(reconstruct, "mesh_reconstructor",
                        lambda model: lambda image, resolution, **_: seen.append(image[0].numpy()) or trimesh.Trimesh())
    ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
    photo = tmp_path / "photo.png"
    shutil.copy(data / ids[0] / "input.png", photo)
    masks = [load_mask(data / i / "input_mask.png") for i in ids] + [load_mask(data / ids[0] / "input_mask.png")]

    def encoded(load_config, background):
        """What the encoder read of the test inputs, the photo with its mask and the photo without."""
        seen.clear()
        reconstruct.ReconstructConfig(load_config=load_config, output_dir=tmp_path / "o", data=data, images=[photo],
                                      masks=[data / ids[0] / "input_mask.png"], frame="never",
                                      background=background).main()
        on_grey = json.loads((tmp_path / "o" / "reconstruct.json").read_text())["meshes"]
        reconstruct.ReconstructConfig(load_config=load_config, output_dir=tmp_path / "o", images=[photo],
                                      background=background).main()
        return list(seen), [entry["on_grey"] for entry in on_grey.values()]

    kept, flags = encoded(config, "keep")
    assert not any(flags)
    for load_config, background, expected in ((config, "auto", [False] * len(ids) + [True]),
                                              (grey_run / "config.yml", "auto", [True] * (len(ids) + 1)),
                                              (config, "grey", [True] * (len(ids) + 1))):
        images, flags = encoded(load_config, background)
        assert flags == expected
        for before, after, mask, grey in zip(kept, images, masks, expected):
            np.testing.assert_array_equal(after[:, mask], before[:, mask])
            if grey:
                assert (after[:, ~mask] == np.float32(TRANSPARENT_BACKGROUND)).all()
                assert (before[:, ~mask] != np.float32(TRANSPARENT_BACKGROUND)).any()
            else:
                np.testing.assert_array_equal(after, before)
        np.testing.assert_array_equal(images[-1], kept[-1])  # no mask: as it is

    small = tmp_path / "small_mask.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(small)
    job = reconstruct.ReconstructConfig(load_config=config, output_dir=tmp_path / "bad", images=[photo],
                                        masks=[small], frame="never")
    with pytest.raises(ValueError, match="mask of 10x10 px"):  # read before any work, to put the photo on grey
        job.jobs()
    assert not dataclasses.replace(job, background="keep").jobs()[0].grey


def test_train_with_real_image_alignment(trained_run, tmp_path):
    work, data, _ = trained_run
    real = tmp_path / "photos"
    real.mkdir()
    for i, instance in enumerate(sorted(p for p in data.iterdir() if p.is_dir())[:3]):
        (real / f"photo_{i}.png").write_bytes((instance / "input.png").read_bytes())
    run(BIN / "ns-train", "gansvr", "--data", data, "--output-dir", tmp_path / "outputs", "--timestamp", "aligned",
        *FAST, "--pipeline.datamanager.real-images", real, cwd=work)
    assert (tmp_path / "outputs" / data.name / "gansvr" / "aligned" / "config.yml").is_file()


def test_ns_train_reports_bad_data_in_one_line(trained_run, tmp_path):
    work, data, _ = trained_run
    empty = tmp_path / "no-photos"
    empty.mkdir()
    result = subprocess.run([str(BIN / "ns-train"), "gansvr", "--data", str(data), "--output-dir", str(tmp_path),
                             *FAST, "--pipeline.datamanager.real-images", str(empty)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "no-photos: no images" in result.stderr
    assert "Traceback" not in result.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dataset.json").write_text("{oops")
    result = subprocess.run([str(BIN / "ns-train"), "gansvr", "--data", str(broken), "--output-dir", str(tmp_path),
                             *FAST], capture_output=True, text=True)
    assert result.returncode != 0
    assert f"{broken / 'dataset.json'}: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_reconstruct_finds_a_runs_relative_paths_from_another_directory(trained_run, tmp_path):
    """ns-train stores paths as given on its command line; a run trained with relative ones is still found (its
    checkpoint beside the config, its dataset where it was trained) when gansvr-reconstruct runs elsewhere."""
    import shutil

    import yaml

    work, data, config = trained_run
    project = tmp_path / "project"
    shutil.copytree(data, project / "ellipsoids")
    run_dir = project / "outputs" / "ellipsoids" / "gansvr" / "run"
    shutil.copytree(config.parent, run_dir)
    saved = yaml.load((run_dir / "config.yml").read_text(), Loader=yaml.Loader)
    saved.output_dir = Path("outputs")
    saved.pipeline.datamanager.data = saved.pipeline.datamanager.dataparser.data = Path("ellipsoids")
    (run_dir / "config.yml").write_text(yaml.dump(saved))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    image = project / "ellipsoids" / "ell_000" / "input.png"
    run(BIN / "gansvr-reconstruct", "--load-config", run_dir / "config.yml", "--images", image, "--output-dir",
        "meshes", "--resolution", "32", cwd=elsewhere)
    assert (elsewhere / "meshes" / "input.ply").stat().st_size > 0
    assert not (elsewhere / "ellipsoids").exists() and not (elsewhere / "outputs").exists()


def test_a_run_copied_without_its_dataset_still_reconstructs(trained_run, tmp_path):
    """A run folder copied alone (renamed, its dataset absent) loads its model from the checkpoint and gives the
    same mesh as the run with its dataset; a folder without a checkpoint is one line naming it."""
    import shutil

    import numpy as np
    import trimesh
    import yaml

    work, data, config = trained_run
    image = tmp_path / "photo.png"
    shutil.copy(data / "ell_001" / "input.png", image)
    run(BIN / "gansvr-reconstruct", "--load-config", config, "--images", image, "--output-dir", tmp_path / "with",
        "--resolution", "32", cwd=work)
    copied = tmp_path / "shared" / "my-run"
    shutil.copytree(config.parent, copied)
    saved = yaml.load((copied / "config.yml").read_text(), Loader=yaml.Loader)
    saved.pipeline.datamanager.data = saved.pipeline.datamanager.dataparser.data = tmp_path / "gone"
    (copied / "config.yml").write_text(yaml.dump(saved))
    run(BIN / "gansvr-reconstruct", "--load-config", copied / "config.yml", "--images", image, "--output-dir",
        tmp_path / "without", "--resolution", "32", cwd=tmp_path)
    assert not (tmp_path / "gone").exists()
    with_data = trimesh.load(tmp_path / "with" / "photo.ply", force="mesh")
    without = trimesh.load(tmp_path / "without" / "photo.ply", force="mesh")
    assert len(without.faces) == len(with_data.faces) > 0
    np.testing.assert_allclose(without.vertices, with_data.vertices, atol=1e-5)
    np.testing.assert_array_equal(without.visual.vertex_colors, with_data.visual.vertex_colors)

    # framing a masked photo reads the training inputs' masks: without the dataset, one line says so
    from PIL import Image

    from gansvr_ns.scripts.reconstruct import ReconstructConfig

    cutout = Image.open(image).convert("RGB")
    cutout.putalpha(Image.open(data / "ell_001" / "input_mask.png").convert("L"))
    cutout.save(tmp_path / "cutout.png")
    with pytest.raises(ValueError, match="the run's dataset is missing.*--frame never"):
        ReconstructConfig(load_config=copied / "config.yml", output_dir=tmp_path / "o",
                          images=[tmp_path / "cutout.png"]).main()
    # its camera is left out, with a warning, and the mesh is written
    result = run(BIN / "gansvr-reconstruct", "--load-config", copied / "config.yml", "--images",
                 tmp_path / "cutout.png", "--frame", "never", "--output-dir", tmp_path / "cameraless",
                 "--resolution", "32", cwd=tmp_path)
    assert "No cameras estimated" in result.stdout
    meshes = json.loads((tmp_path / "cameraless" / "reconstruct.json").read_text())["meshes"]
    assert meshes["cutout"]["camera"] is None and (tmp_path / "cameraless" / "cutout.ply").is_file()

    shutil.rmtree(copied / "nerfstudio_models")
    result = subprocess.run([str(BIN / "gansvr-reconstruct"), "--load-config", str(copied / "config.yml"),
                             "--images", str(image), "--output-dir", str(tmp_path / "o")], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "nerfstudio_models: no checkpoint" in result.stderr and "Traceback" not in result.stderr

    # a copy outside the run layout, its dataset present: its own checkpoint is read, not the original's
    mine = tmp_path / "mymodel"
    shutil.copytree(config.parent, mine)
    run(BIN / "gansvr-reconstruct", "--load-config", mine / "config.yml", "--images", image, "--output-dir",
        tmp_path / "mine", "--resolution", "32", cwd=tmp_path)
    np.testing.assert_allclose(trimesh.load(tmp_path / "mine" / "photo.ply", force="mesh").vertices,
                               with_data.vertices, atol=1e-5)
    # a checkpoint cut short (a copy interrupted), the dataset present: one line naming it
    from gansvr_ns.scripts.reconstruct import load_pipeline

    checkpoint = sorted((mine / "nerfstudio_models").glob("step-*.ckpt"))[-1]
    checkpoint.write_bytes(checkpoint.read_bytes()[:100_000])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(checkpoint))}: not a nerfstudio checkpoint"):
        load_pipeline(mine / "config.yml")
    shutil.rmtree(mine / "nerfstudio_models")
    result = subprocess.run([str(BIN / "gansvr-reconstruct"), "--load-config", str(mine / "config.yml"),
                             "--images", str(image), "--output-dir", str(tmp_path / "o")], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        f"gansvr-reconstruct: {mine / 'nerfstudio_models'}: no checkpoint (step-*.ckpt) of this run"
    assert "Traceback" not in result.stderr


def test_loading_a_run_does_not_read_its_starting_encoder_weights(trained_run, tmp_path):
    """A run trained from ImageNet weights (`--pipeline.model.encoder-weights`) loads where that file is absent: the
    checkpoint holds the trained encoder."""
    import shutil

    import yaml

    from gansvr_ns.scripts.reconstruct import load_model

    work, data, config = trained_run
    copied = tmp_path / "outputs" / "ellipsoids" / "gansvr" / "run"
    shutil.copytree(config.parent, copied)
    saved = yaml.load((copied / "config.yml").read_text(), Loader=yaml.Loader)
    saved.pipeline.model.encoder_weights = tmp_path / "resnet18-absent.pth"
    (copied / "config.yml").write_text(yaml.dump(saved))
    model = load_model(copied / "config.yml")
    assert model.config.encoder_weights is None
    assert type(model).__name__ == "GanSvrModel"


def test_reconstruct_frames_a_masked_photo_as_the_training_inputs(trained_run, tmp_path, capsys):
    """A photo whose object is masked (transparency, or a file of --masks) is framed before it is encoded; one
    framed like the training inputs, or with --frame never, is encoded as it is; what cannot be framed is one line."""
    import numpy as np
    from PIL import Image

    from gansvr_ns.scripts.reconstruct import ReconstructConfig

    work, data, config = trained_run
    rgb = Image.open(data / "ell_001" / "input.png").convert("RGB")
    mask = Image.open(data / "ell_001" / "input_mask.png").convert("L")
    photo = Image.new("RGB", (150, 100), (128, 128, 128))
    photo.paste(rgb.resize((72, 72)), (70, 20))
    photo_mask = Image.new("L", (150, 100), 0)
    photo_mask.paste(mask.resize((72, 72)), (70, 20))
    photo.save(tmp_path / "photo.png")
    photo_mask.save(tmp_path / "photo_mask.png")
    cutout = photo.copy()
    cutout.putalpha(photo_mask)
    cutout.save(tmp_path / "cutout.png")
    in_place = rgb.copy()
    in_place.putalpha(mask)
    in_place.save(tmp_path / "in_place.png")

    def scales(out, **options):
        ReconstructConfig(load_config=config, output_dir=tmp_path / out, resolution=16, **options).main()
        meshes = json.loads((tmp_path / out / "reconstruct.json").read_text())["meshes"]
        fits[out] = {name: entry["framing_fit"] for name, entry in meshes.items()}
        cameras[out] = {name: entry["camera"] for name, entry in meshes.items()}
        mask_fits[out] = {name: entry["mask_fit"] for name, entry in meshes.items()}
        estimated[out] = {name: entry["estimated_mask"] for name, entry in meshes.items()}
        return {name: entry["framing_scale"] for name, entry in meshes.items()}

    fits, cameras, mask_fits, estimated = {}, {}, {}, {}

    opaque = photo.copy()
    opaque.putalpha(255)  # an alpha channel that masks nothing
    opaque.save(tmp_path / "opaque.png")
    framed = scales("auto", images=[tmp_path / "cutout.png", tmp_path / "in_place.png", tmp_path / "opaque.png"])
    assert framed["cutout"] == pytest.approx(24 / 72, rel=0.25) and framed["in_place"] is None
    assert framed["opaque"] is None
    printed = capsys.readouterr().out
    assert "1 image(s) have no object mask and were encoded as they are (opaque)" in printed
    assert "--estimate-masks" in printed
    # framed by the reconstruction (the silhouette's fit to the mask recorded) where framed at all
    assert 0.0 < fits["auto"]["cutout"] <= 1.0 and fits["auto"]["in_place"] is None
    # a camera for every image with a mask, in its own pixels; none for the one without
    assert cameras["auto"]["opaque"] is None
    for name, size in (("cutout", (100, 150)), ("in_place", rgb.size[::-1])):
        camera = cameras["auto"][name]
        assert (camera["height"], camera["width"]) == size and 0.0 < camera["fit"] <= 1.0
        assert np.asarray(camera["transform_matrix"]).shape == (4, 4) and camera["fx"] > 0
        # fitted to the mask (40 steps by default): the camera written is the fitted one
        fitted = mask_fits["auto"][name]
        assert fitted["steps"] == 40 and 0.0 <= fitted["iou_before"] <= 1.0 and camera["fit"] == fitted["iou_after"]
    assert mask_fits["auto"]["opaque"] is None
    with_mask = scales("masks", images=[tmp_path / "photo.png"], masks=[tmp_path / "photo_mask.png"], overlay=True)
    assert with_mask["photo"] == pytest.approx(framed["cutout"], rel=0.05)
    # the photo with its mesh drawn over it by that camera
    drawn = np.asarray(Image.open(tmp_path / "masks" / "photo_overlay.png").convert("RGB"))
    changed = (drawn != np.asarray(photo)).any(axis=2)
    assert drawn.shape == (100, 150, 3) and changed.sum() > 100
    assert changed[20:92, 70:142].sum() > 0.9 * changed.sum()  # on the object, which the photo has there
    assert not list((tmp_path / "auto").glob("*_overlay.png"))
    # a photo on a plain backdrop given without a mask: with --estimate-masks its mask is estimated, written and used
    # (framed, a camera, fitted); images with a mask of their own are left alone
    studio = Image.new("RGB", (150, 100), (210, 225, 240))
    studio.paste(rgb.resize((72, 72)), (70, 20), photo_mask.crop((70, 20, 142, 92)).point(lambda v: 255 * (v > 127)))
    studio.save(tmp_path / "studio.png")
    noise = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)  # no backdrop to read
    Image.fromarray(noise).save(tmp_path / "noise.png")
    found = scales("estimated", images=[tmp_path / "studio.png", tmp_path / "cutout.png", tmp_path / "noise.png"],
                   estimate_masks=True)
    assert found["studio"] == pytest.approx(framed["cutout"], rel=0.1)
    assert estimated["estimated"]["cutout"] is None and estimated["auto"]["cutout"] is None
    assert estimated["estimated"]["noise"] is None and found["noise"] is None
    assert "(noise); a photo reconstructs better framed as the training inputs: no mask could be estimated" in \
        capsys.readouterr().out
    assert not (tmp_path / "estimated" / "noise_estimated_mask.png").exists()
    written = np.asarray(Image.open(estimated["estimated"]["studio"])) > 127
    truth = np.asarray(photo_mask) > 127
    assert (written & truth).sum() / (written | truth).sum() > 0.9
    assert cameras["estimated"]["studio"] is not None and mask_fits["estimated"]["studio"] is not None
    box = scales("box", images=[tmp_path / "photo.png"], masks=[tmp_path / "photo_mask.png"], refine_framing=False)
    assert box["photo"] == pytest.approx(24 / 72, rel=0.25) and fits["box"] == {"photo": None}
    assert scales("never", images=[tmp_path / "cutout.png"], frame="never") == {"cutout": None}
    assert cameras["never"]["cutout"]["width"] == 150
    scales("no-camera", images=[tmp_path / "cutout.png"], estimate_camera=False)
    assert cameras["no-camera"] == {"cutout": None} and mask_fits["no-camera"] == {"cutout": None}
    scales("no-fit", images=[tmp_path / "cutout.png"], fit_steps=0)
    assert mask_fits["no-fit"] == {"cutout": None} and cameras["no-fit"]["cutout"] is not None
    assert 0.0 < cameras["no-fit"]["cutout"]["fit"] <= 1.0  # the search's own
    assert "have no object mask" not in capsys.readouterr().out
    assert scales("data", data=data, split="test") == {i: None for i in json.loads(
        (data / "dataset.json").read_text())["splits"]["test"]}
    assert all(camera is not None for camera in cameras["data"].values())  # by their input_mask.png

    small = tmp_path / "small_mask.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(small)
    # a phone photo stored sideways (seen 150x100 by its EXIF orientation) and its mask as stored (100x150)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((150, 100, 3), np.uint8)).save(tmp_path / "phone.jpg", exif=exif)
    Image.fromarray(np.full((150, 100), 255, np.uint8)).save(tmp_path / "phone_mask.png")
    for options, message in (
        ({"images": [tmp_path / "phone.jpg"], "masks": [tmp_path / "phone_mask.png"]},
         r"mask of 100x150 px for an image of 150x100 px \(.*phone.jpg; the image as turned by its EXIF orientation\)"),
        ({"images": [tmp_path / "photo.png"], "masks": [small, small]}, "2 masks for 1 images"),
        ({"images": [tmp_path / "photo.png"], "masks": [small]}, f"{small}: mask of 10x10 px for an image of 150x100"),
        ({"images": [tmp_path / "photo.png"], "frame": "always"}, "photo.png: no object mask to frame it by"),
        ({"images": [tmp_path / "photo.png"], "overlay": True, "estimate_camera": False}, "it needs --estimate-camera"),
        ({"images": [tmp_path / "photo.png"], "fit_steps": -1}, "--fit-steps -1: must be 0"),
    ):
        with pytest.raises(ValueError, match=message):
            ReconstructConfig(load_config=config, output_dir=tmp_path / "bad", **options).jobs()
    assert not (tmp_path / "bad").exists()
    # an output that would replace an input: the photo's overlay, written beside it, is its mask
    (tmp_path / "photo_overlay.png").write_bytes((tmp_path / "photo_mask.png").read_bytes())
    kept = (tmp_path / "photo_overlay.png").read_bytes()
    with pytest.raises(ValueError, match="photo_overlay.png: an input file, which the output of .*photo.png would"):
        ReconstructConfig(load_config=config, output_dir=tmp_path, images=[tmp_path / "photo.png"],
                          masks=[tmp_path / "photo_overlay.png"], overlay=True).main()
    assert (tmp_path / "photo_overlay.png").read_bytes() == kept and not (tmp_path / "photo.ply").exists()


def test_framing_benchmark(trained_run, tmp_path):
    """`scripts/benchmark.py framing` on the tiny run: which rows are framed, and each photo framed at the scale that
    frames its input image, times the factor the photo scaled it by."""
    import shutil

    from tests.scripts.conftest import load_script

    work, data, config = trained_run
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    info = json.loads((copy / "dataset.json").read_text())
    info["splits"]["test"] = sorted(i for ids in info["splits"].values() for i in ids)[:3]
    (copy / "dataset.json").write_text(json.dumps(info))
    result = load_script("benchmark").Framing(load_config=config, data=copy, output_dir=tmp_path / "f",
                                              resolution=16).main()
    rows = result["rows"]
    # (the inputs in place are framed or not as their objects sit within the training inputs' spread)
    framed = {name: row["framed"] for name, row in rows.items() if "in place" not in name}
    assert list(framed.values()) == [0, 3, 3, 0, 3, 3, 0, 3, 3]
    # framed by the mask's box alone, a photo's scale is its input's times the factor it was scaled by
    inputs = rows["the input images, `--frame always --no-refine-framing`"]
    cutouts = rows["photos, cut-outs, `--frame auto --no-refine-framing`"]
    for i, factor in result["photo_scales"].items():
        assert 1.3 <= factor <= 2.6
        assert cutouts["framing_scales"][i] * factor == pytest.approx(inputs["framing_scales"][i], rel=0.1)
    whole = rows["photos, whole images and `--masks`, `--frame auto --no-refine-framing`"]
    assert whole["framing_scales"] == cutouts["framing_scales"]
    assert (tmp_path / "f" / "framing.json").is_file()
    # every image with a mask gets a camera, scored against its input's pose carried onto the photo
    assert rows["photos, whole images, `--frame never`"]["camera"] is None
    for name, row in rows.items():
        if name != "photos, whole images, `--frame never`":
            assert row["camera"]["cameras"] == 3 and 0.0 <= row["camera"]["median_rotation_error_deg"] <= 180.0
    for row in rows.values():
        assert row["chamfer_l1"] > 0 and row["chamfer_ratio"] == pytest.approx(
            row["chamfer_l1"] / result["another_instance_chamfer"])

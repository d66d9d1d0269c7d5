"""`scripts/benchmark.py quality`: the size of the reconstructions against the ground truth; the mean-latent row."""

import json
from pathlib import Path

import torch
import trimesh

from gansvr_ns.data.format import load_rgb
from gansvr_ns.scripts.reconstruct import load_pipeline
from tests.conftest import make_ellipsoid_dataset
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")


def test_extent_ratio_is_the_mean_size_per_axis_over_ground_truth(tmp_path):
    data = make_ellipsoid_dataset(tmp_path / "ellipsoids", num_instances=16, views=4, size=24)
    ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
    pred = tmp_path / "pred"
    pred.mkdir()
    for k, instance in enumerate(ids):
        mesh = trimesh.load(data / instance / "mesh.ply", process=False)
        mesh.apply_scale([1.0, 1.2 if k == 0 else 1.1, 0.9])  # one fatter than the rest, all flatter
        mesh.apply_translation([0.3, 0.0, 0.0])  # position does not matter
        mesh.export(pred / f"{instance}.ply")
    x, y, z = benchmark.extent_ratios(pred, data, ids)
    assert abs(x - 1.0) < 1e-6 and abs(z - 0.9) < 1e-6
    assert abs(y - (1.2 + 1.1 * (len(ids) - 1)) / len(ids)) < 1e-6
    (pred / f"{ids[-1]}.ply").unlink()
    assert benchmark.extent_ratios(pred, data, ids) is None


def test_mean_train_latent_replaces_every_images_latent_within_the_block(ablation_run):
    _, data, output, _ = ablation_run
    config = Path(json.loads(output.read_text())["variants"]["no_pose_refinement"]["seeds"]["0"]["config"])
    model = load_pipeline(config).model
    info = json.loads((data / "dataset.json").read_text())
    image = lambda i: torch.from_numpy(load_rgb(data / i / "input.png")).permute(2, 0, 1)[None]  # noqa: E731
    train = torch.cat([image(i) for i in info["splits"]["train"]])
    tests = torch.cat([image(i) for i in info["splits"]["test"]])
    with torch.no_grad():
        expected = model.encode(train).mean(dim=0, keepdim=True)
        own = model.encode(tests)
        with benchmark.mean_train_latent(model, data):
            inside = model.encode(tests)
        after = model.encode(tests)
    assert torch.allclose(inside, expected.expand_as(inside), atol=1e-5)
    assert not torch.allclose(own, inside, atol=1e-4)  # the images' own latents differ from the mean
    assert torch.equal(after, own)


def test_quality_table_reports_the_pose_errors_that_were_measured():
    metrics = {"chamfer_l1": 0.02, "fscore@0.05": 0.9, "iou": 0.7}
    result = {"test": metrics, "test_other_renderer": metrics, "another_instance_chamfer": 0.04,
              "train_seconds": None, "reconstruct_seconds_per_image": 1.0, "resolution": 64}
    assert "rotation error" not in benchmark.quality_table(result)  # data without true poses
    result.update(pose_rotation_error_deg=8.5, rough_pose_rotation_error_deg=10.25)
    assert "rough 10.25 deg, refined 8.50 deg" in benchmark.quality_table(result)
    result["pose_rotation_error_deg"] = None  # camera optimizer off
    assert "rough 10.25 deg, not refined" in benchmark.quality_table(result)


def test_quality_table_shows_the_inputs_without_the_mask_fit_beside_the_default():
    fitted, unfitted = {"chamfer_l1": 0.015, "fscore@0.05": 0.97, "iou": 0.79}, {"chamfer_l1": 0.016,
                                                                                  "fscore@0.05": 0.96, "iou": 0.77}
    result = {"test": fitted, "test_no_fit": unfitted, "test_other_renderer": unfitted,
              "another_instance_chamfer": 0.02, "train_seconds": 600.0, "reconstruct_seconds_per_image": 1.4,
              "resolution": 128}
    lines = benchmark.quality_table(result).splitlines()
    assert lines[2] == "| test inputs | 0.0150 | 0.75 | 0.970 | 0.790 |"
    assert lines[3] == "| test inputs, not fitted to their masks (--fit-steps 0) | 0.0160 | 0.80 | 0.960 | 0.770 |"
    del result["test_no_fit"]
    assert "not fitted" not in benchmark.quality_table(result)


def test_estimated_masks_are_scored_against_the_true_ones(tmp_path):
    import numpy as np

    from gansvr_ns.data.format import save_mask

    images, out = tmp_path / "shifted", tmp_path / "meshes"
    (images / "masks").mkdir(parents=True)
    out.mkdir()
    truth = np.zeros((8, 8), bool)
    truth[2:6, 2:6] = True  # 16 pixels
    half = truth.copy()
    half[2:4] = False  # 8 of them: IoU 0.5
    for name, estimate in (("a", truth), ("b", half), ("c", None)):
        save_mask(images / "masks" / f"{name}.png", truth)
        if estimate is not None:
            save_mask(out / f"{name}_estimated_mask.png", estimate)
    paths = {name: images / f"{name}.png" for name in "abc"}
    assert abs(benchmark.estimated_mask_iou(out, paths) - (1.0 + 0.5 + 0.0) / 3) < 1e-6  # none for c: 0
    assert benchmark.estimated_mask_iou(out, {"d": tmp_path / "elsewhere" / "d.png"}) is None
    metrics = {"chamfer_l1": 0.015, "fscore@0.05": 0.97, "iou": 0.79}
    result = {"test": metrics, "test_other_renderer": metrics, "test_other_renderer_estimated_masks": metrics,
              "estimated_mask_iou": 0.5, "another_instance_chamfer": 0.02, "train_seconds": None,
              "reconstruct_seconds_per_image": 1.0, "resolution": 128}
    assert ("| other renderer, masks estimated from the backdrop (--estimate-masks; mask IoU 0.500) | 0.0150 | 0.75 "
            in benchmark.quality_table(result))


def test_quality_of_an_existing_run_prints_its_table_and_writes_the_json_into_a_new_folder(ablation_run, capsys):
    _, data, output, _ = ablation_run
    config = Path(json.loads(output.read_text())["variants"]["no_pose_refinement"]["seeds"]["0"]["config"])
    out = output.parent / "new" / "folder" / "quality.json"
    result = benchmark.Quality(data=data, load_config=config, resolution=24, output=out, mean_latent=False).main()
    assert json.loads(out.read_text())["chamfer_ratio"] == result["chamfer_ratio"]
    assert "| test inputs |" in capsys.readouterr().out

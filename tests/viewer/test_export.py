"""`ns-export` on a gansvr run: marching cubes on a CPU, the plugin's mesh files with vertex colours, the refined
camera poses, and one-line refusals of options and subcommands a gansvr run cannot serve."""

import json
import os

import numpy as np
import pytest
import torch
import trimesh

from gansvr_ns import compat
from gansvr_ns.compat import (
    ExportOptionError,
    check_export_options,
    cuda_calls_stay_on_cpu,
    gansvr_marching_cubes,
    options_checked_first,
    patch_nerfstudio_exporter,
    refined_train_poses,
    running_export,
    vertex_colors_instead_of_texture,
)
from gansvr_ns.model.mesh import MESH_FORMATS, save_mesh
from tests.viewer.conftest import BIN, run


def colored_sphere() -> trimesh.Trimesh:
    """An icosphere whose vertex colours encode the vertex position (so that any reordering shows)."""
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    rgb = ((mesh.vertices + 0.5) * 255.0).clip(0, 255).astype(np.uint8)
    mesh.visual.vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return mesh


def nearest_colors(loaded: trimesh.Trimesh, reference: trimesh.Trimesh) -> np.ndarray:
    """The colour of the loaded vertex nearest to each reference vertex (formats may reorder vertices)."""
    distances = np.linalg.norm(reference.vertices[:, None] - loaded.vertices[None], axis=-1)
    assert distances.min(axis=1).max() < 1e-5
    return loaded.visual.vertex_colors[distances.argmin(axis=1)]


@pytest.mark.parametrize("fmt", MESH_FORMATS)
def test_saved_mesh_loads_back_with_vertex_colors(tmp_path, fmt):
    mesh = colored_sphere()
    (path,) = save_mesh(mesh, tmp_path / "sphere", [fmt])
    assert path == tmp_path / f"sphere.{fmt}" and not list(tmp_path.glob(".*partial"))
    loaded = trimesh.load(path, force="mesh")
    assert loaded.visual.kind == "vertex"
    assert len(loaded.faces) == len(mesh.faces)
    np.testing.assert_allclose(nearest_colors(loaded, mesh).astype(int), mesh.visual.vertex_colors.astype(int), atol=1)


def test_save_mesh_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown mesh format 'stl'"):
        save_mesh(colored_sphere(), tmp_path / "sphere", ["stl"])


def test_cuda_calls_stay_on_cpu_inside_the_block_only():
    tensor = torch.zeros(3)
    if torch.cuda.is_available():  # the patch is for CPU-only machines and refuses to run elsewhere
        with pytest.raises(RuntimeError, match="without CUDA"), cuda_calls_stay_on_cpu():
            pass
    else:
        with cuda_calls_stay_on_cpu():
            assert tensor.cuda() is tensor
        with pytest.raises((RuntimeError, AssertionError)):
            tensor.cuda()


def test_exporter_patch_is_installed_once():
    from nerfstudio.exporter import exporter_utils, marching_cubes, texture_utils
    from nerfstudio.pipelines.base_pipeline import VanillaPipeline

    def current():
        return (marching_cubes.generate_mesh_with_multires_marching_cubes, texture_utils.export_textured_mesh,
                exporter_utils.collect_camera_poses, VanillaPipeline.load_pipeline)

    patch_nerfstudio_exporter()
    wrapped = current()
    patch_nerfstudio_exporter()
    assert current() == wrapped
    names = ("generate_mesh_with_multires_marching_cubes", "export_textured_mesh", "collect_camera_poses",
             "load_pipeline")
    assert all(fn.__gansvr_wrapped__ and fn.__name__ == name for fn, name in zip(wrapped, names))


def export_options(command: str, output_dir, **options):
    """The options object of `ns-export <command>`, as tyro builds it."""
    from nerfstudio.scripts import exporter

    classes = {name: cls for cls_name, name in compat.EXPORT_SUBCOMMANDS.items()
               for cls in [getattr(exporter, cls_name)]}
    return classes[command](load_config="config.yml", output_dir=output_dir, **options)


def export_main(self, pipeline):
    """Stands for a subcommand's `main` (its options are `self`, its pipeline a local) for `running_export`."""
    return running_export()


SCENE_BOX = [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]


@pytest.mark.parametrize("command, options, expected", [
    ("marching-cubes", {"bounding_box_min": (1, 1, 1), "bounding_box_max": (-1, -1, -1)},
     "--bounding-box-min 1 1 1 must be below --bounding-box-max -1 -1 -1 on every axis"),
    ("marching-cubes", {"bounding_box_min": (-1, 0.5, -1), "bounding_box_max": (1, 0.5, 1)},
     "--bounding-box-min -1 0.5 -1 must be below --bounding-box-max 1 0.5 1"),
    ("marching-cubes", {"bounding_box_min": (0.5, 1, -1), "bounding_box_max": (2, 2, 1)}, "lies outside the run's"),
    ("marching-cubes", {"resolution": 0}, "--resolution must be a positive multiple of 512, got 0"),
    ("marching-cubes", {"resolution": 100}, "--resolution must be a positive multiple of 512, got 100"),
    ("pointcloud", {}, "ns-export pointcloud is not supported for gansvr runs"),
    ("poisson", {}, "ns-export poisson is not supported for gansvr runs"),
    ("tsdf", {}, "ns-export tsdf is not supported for gansvr runs"),
    ("gaussian-splat", {}, "ns-export gaussian-splat is not supported for gansvr runs"),
])
def test_export_options_a_gansvr_run_cannot_serve_are_refused(tmp_path, command, options, expected):
    with pytest.raises(ExportOptionError) as refusal:
        check_export_options(export_options(command, tmp_path, **options), SCENE_BOX)
    message = str(refusal.value)
    assert expected in message and "\n" not in message and message.startswith(f"gansvr: ns-export {command}")
    if "not supported" in message:
        assert "ns-export marching-cubes" in message and "gansvr-reconstruct" in message


@pytest.mark.parametrize("command, good", [
    ("marching-cubes", {"resolution": 1024, "bounding_box_min": (0.9, -2, 0.9), "bounding_box_max": (1.5, 2, 1)}),
    ("cameras", {}),
])
def test_export_to_a_file_is_refused_and_good_options_pass(tmp_path, command, good):
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportOptionError, match=f"ns-export {command}: --output-dir .*file is a file, not a folder"):
        check_export_options(export_options(command, tmp_path / "file"), SCENE_BOX)
    check_export_options(export_options(command, tmp_path / "new"), SCENE_BOX)
    check_export_options(export_options(command, tmp_path, **good), SCENE_BOX)


def test_running_export_finds_the_subcommands_options_on_the_stack(tmp_path):
    options = export_options("cameras", tmp_path)
    assert export_main(options, "pipeline") == (options, "pipeline")
    assert running_export() == (None, None)


def test_other_methods_keep_nerfstudios_export(tmp_path):
    """Outside gansvr runs the wrappers hand everything to nerfstudio unchanged, bad options included."""
    calls = []
    pipeline = type("Pipeline", (), {"model": torch.nn.Linear(1, 1)})()
    load = options_checked_first(lambda self, *args: calls.append(("load", self, args)))
    poses = refined_train_poses(lambda *args: calls.append(("poses", args)))
    empty = trimesh.Trimesh()
    extract = gansvr_marching_cubes(lambda **kwargs: empty)

    def main(self):  # `pipeline` is one of its (free) variables, as in nerfstudio's `main`
        load(pipeline, {"state": 1}, 3)
        poses(pipeline)
        return extract(resolution=0)

    inverted = export_options("marching-cubes", tmp_path, bounding_box_min=(1, 1, 1), bounding_box_max=(0, 0, 0))
    assert main(inverted) is empty and extract(resolution=0) is empty
    assert calls == [("load", pipeline, ({"state": 1}, 3)), ("poses", (pipeline,))]


def test_empty_marching_cubes_mesh_of_a_gansvr_export_is_refused(tmp_path, monkeypatch):
    """A box that overlaps the scene box but holds no surface stops before nerfstudio writes the mesh."""
    monkeypatch.setattr(compat, "is_gansvr", lambda pipeline: True)
    pipeline = type("Pipeline", (), {"model": type("Model", (), {"selected_instance": "car_0004"})()})()
    options = export_options("marching-cubes", tmp_path, bounding_box_min=(0.9, 0.9, 0.9))
    sphere = trimesh.creation.icosphere(subdivisions=1)

    def main(self, pipeline, mesh: trimesh.Trimesh):
        return gansvr_marching_cubes(lambda **kwargs: mesh)(resolution=512)

    with pytest.raises(ExportOptionError, match="no surface of instance 'car_0004' between --bounding-box-min "
                                                "0.9 0.9 0.9 and --bounding-box-max 1 1 1 at --isosurface-threshold 0"):
        main(options, pipeline, trimesh.Trimesh())
    assert main(options, pipeline, sphere) is sphere


def test_texture_step_of_other_models_is_nerfstudios(tmp_path):
    calls = []
    texture = vertex_colors_instead_of_texture(lambda *args, **kwargs: calls.append((args, kwargs)))
    pipeline = type("Pipeline", (), {"model": torch.nn.Linear(1, 1)})()
    texture("mesh", pipeline, tmp_path, 4, unwrap_method="xatlas")
    assert calls == [(("mesh", pipeline, tmp_path, 4), {"unwrap_method": "xatlas"})]
    assert not list(tmp_path.iterdir())


def test_ns_export_marching_cubes_on_cpu(tiny_run):
    work, data, config = tiny_run
    splits = json.loads((data / "dataset.json").read_text())["splits"]
    chosen = splits["train"][1]
    assert chosen != splits["test"][0]  # not the default instance
    out = work / "export"
    result = run(BIN / "ns-export", "marching-cubes", "--load-config", config, "--output-dir", out,
                 "--resolution", "512", cwd=work, env=dict(os.environ, GANSVR_INSTANCE=chosen))
    log = " ".join((result.stdout + result.stderr).split())
    assert f"instance '{chosen}'" in log and "texture step is skipped" in log

    raw = trimesh.load(out / "sdf_marching_cubes_mesh.ply", force="mesh")
    assert len(raw.faces) > 100 and len(raw.vertices) > 0
    assert np.abs(raw.vertices).max() < 0.99  # inside the scene box [-1, 1]^3 and not cut open by it
    colored = [trimesh.load(out / f"mesh.{fmt}", force="mesh") for fmt in MESH_FORMATS]
    for mesh in colored:
        assert mesh.visual.kind == "vertex" and len(mesh.visual.vertex_colors) == len(mesh.vertices)
        assert 100 < len(mesh.faces) <= len(raw.faces)
        assert np.abs(mesh.vertices).max() < 0.99
        np.testing.assert_array_equal(mesh.visual.vertex_colors, colored[0].visual.vertex_colors)


def test_ns_export_names_an_unknown_instance_in_one_line(tiny_run, tmp_path):
    work, data, config = tiny_run
    result = run(BIN / "ns-export", "marching-cubes", "--load-config", config, "--output-dir", tmp_path / "out",
                 "--resolution", "512", cwd=work, env=dict(os.environ, GANSVR_INSTANCE="no_such_car"), check=False)
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    first_test = json.loads((data / "dataset.json").read_text())["splits"]["test"][0]
    (message,) = [line for line in result.stderr.splitlines() if "no_such_car" in line]
    assert "unknown instance 'no_such_car'" in message and first_test in message  # the bad id and valid ones
    assert not (tmp_path / "out" / "sdf_marching_cubes_mesh.ply").exists()


def refused_in_one_line(result, *fragments: str) -> str:
    """The one stderr line of a refused `ns-export`, after checking the exit code and that no traceback shows."""
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("gansvr: ns-export")]
    assert all(fragment in line for fragment in fragments), line
    return line


@pytest.mark.parametrize("box, expected", [
    (("1", "1", "1", "-1", "-1", "-1"), "--bounding-box-min 1 1 1 must be below --bounding-box-max -1 -1 -1"),
    (("5", "5", "5", "6", "6", "6"), "--bounding-box-min 5 5 5 to --bounding-box-max 6 6 6 lies outside"),
])
def test_ns_export_refuses_an_inverted_or_empty_box_in_one_line(tiny_run, tmp_path, box, expected):
    work, _, config = tiny_run
    out = tmp_path / "out"
    result = run(BIN / "ns-export", "marching-cubes", "--load-config", config, "--output-dir", out,
                 "--resolution", "512", "--bounding-box-min", *box[:3], "--bounding-box-max", *box[3:],
                 cwd=work, check=False)
    refused_in_one_line(result, expected)
    assert "Extracting mesh" not in result.stdout  # refused before the extraction
    assert not out.exists() or not list(out.iterdir())  # no mesh file, empty or not


def test_ns_export_cameras_writes_the_refined_train_poses(tiny_run, tmp_path):
    work, data, config = tiny_run
    run(BIN / "ns-export", "cameras", "--load-config", config, "--output-dir", tmp_path, cwd=work)
    splits = json.loads((data / "dataset.json").read_text())["splits"]
    for file_name, instances in [("transforms_train.json", splits["train"]), ("transforms_eval.json", splits["val"])]:
        frames = {frame["file_path"]: np.array(frame["transform"])
                  for frame in json.loads((tmp_path / file_name).read_text())}
        rough = {str(data / instance / view["file"]): np.array(view["transform_matrix"])[:3]
                 for instance in instances
                 for view in json.loads((data / instance / "cameras.json").read_text())["views"]}
        assert sorted(frames) == sorted(rough)
        for path, pose in frames.items():
            np.testing.assert_allclose(pose[:, :3] @ pose[:, :3].T, np.eye(3), atol=1e-4)
            np.testing.assert_allclose(pose, rough[path], atol=0.05)  # six steps move the poses little

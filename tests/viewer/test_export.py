"""`ns-export marching-cubes` on a CPU for a gansvr run, and the plugin's mesh files with vertex colours."""

import json
import os

import numpy as np
import pytest
import torch
import trimesh

from gansvr_ns.compat import cuda_calls_stay_on_cpu, patch_nerfstudio_exporter, vertex_colors_instead_of_texture
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
    from nerfstudio.exporter import marching_cubes, texture_utils

    patch_nerfstudio_exporter()
    wrapped = (marching_cubes.generate_mesh_with_multires_marching_cubes, texture_utils.export_textured_mesh)
    patch_nerfstudio_exporter()
    assert (marching_cubes.generate_mesh_with_multires_marching_cubes, texture_utils.export_textured_mesh) == wrapped
    assert getattr(wrapped[0], "__gansvr_wrapped__", False) == (not torch.cuda.is_available())
    assert wrapped[1].__gansvr_wrapped__ and wrapped[1].__name__ == "export_textured_mesh"


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

"""The procedural source: SDF math, camera convention, format round trip, flaws, determinism, atomicity."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from gansvr_ns.data import format as fmt
from gansvr_ns.data.procedural import render, shapes, source
from gansvr_ns.data.procedural.source import ProceduralConfig, generate

FLAWS = dict(pose_noise_deg=8.0, color_flaw_fraction=0.5, blob_fraction=0.5, mask_flaw_fraction=0.5)


def make(tmp_path: Path, name: str, **options) -> Path:
    config = ProceduralConfig(out=tmp_path / name, **{"num_instances": 3, "views": 4, "resolution": 32, **options})
    return generate(config, progress=False)


def files(root: Path):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def raycast_mask(mesh_path: Path, pose: np.ndarray, intrinsics, size) -> np.ndarray:
    """Silhouette of mesh.ply by open3d, with rays built from the intrinsics: pixel centres at (i + 0.5),
    camera-frame direction ((u + .5 - cx) / fx, -(v + .5 - cy) / fy, -1) (nerfstudio's convention)."""
    import open3d as o3d

    mesh = trimesh.load(mesh_path, process=False)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32))
    )
    height, width = size
    v, u = np.mgrid[0:height, 0:width] + 0.5
    camera = np.stack([(u - intrinsics["cx"]) / intrinsics["fx"], -(v - intrinsics["cy"]) / intrinsics["fy"],
                       -np.ones_like(u)], -1)
    directions = camera @ pose[:3, :3].T
    origins = np.broadcast_to(pose[:3, 3], directions.shape)
    rays = o3d.core.Tensor(np.concatenate([origins, directions], -1).astype(np.float32))
    return np.isfinite(scene.cast_rays(rays)["t_hit"].numpy())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module", params=["car", "chair", "airplane"])
def clean(request, tmp_path_factory) -> Path:
    """A flawless dataset of each category (3 instances x 4 views at 48 px)."""
    out = tmp_path_factory.mktemp("clean") / request.param
    return generate(ProceduralConfig(out=out, category=request.param, num_instances=3, views=4, resolution=48,
                                     seed=5), progress=False)


# ----------------------------------------------------------------------------------------------
# Math against closed forms.


def columns(*points):
    """Points given as rows -> the (x, y, z) column tuple the primitives take."""
    return tuple(torch.tensor([p[i] for p in points], dtype=torch.float32) for i in range(3))


def test_primitives_match_closed_forms():
    q = columns((2.0, 0.0, 0.0), (0.0, 0.0, 3.0), (0.3, 0.4, 0.2))
    torch.testing.assert_close(shapes.sd_box(q, (1.0, 2.0, 0.5), 0.0), torch.tensor([1.0, 2.5, -0.3]))
    capsule = shapes.sd_round_cone(q, (0.0, 0.0, -1.0), (0.0, 0.0, 1.0), 0.5, 0.5)
    torch.testing.assert_close(capsule, torch.tensor([1.5, 1.5, 0.0]))
    torch.testing.assert_close(shapes.sd_ellipsoid(q, (2.0, 2.0, 2.0)), torch.tensor([0.0, 1.0, 0.29**0.5 - 2.0]))
    planes = [shapes.plane((0, 0, 2), 1.0), shapes.plane((1, 0, 0), 0.0)]  # z <= 0.5 and x <= 0
    torch.testing.assert_close(shapes.sd_planes(q, planes), torch.tensor([2.0, 2.5, 0.3]))
    cylinder = shapes.sd_cylinder(q, 2, 1.0, 1.0, 0.0)
    torch.testing.assert_close(cylinder, torch.tensor([1.0, 2.0, -0.5]))


def test_round_cone_side_distance():
    """A point at height h along the normal of the cone's side, above its tangent segment, is h away."""
    r1, r2, length = 0.8, 0.2, 2.0
    sin_a = (r1 - r2) / length
    cos_a = math.sqrt(1 - sin_a**2)
    normal, tangent = np.array([sin_a, cos_a]), np.array([cos_a, -sin_a])  # in (axial, radial) coordinates
    u, v = (r1 + 2.0) * normal + 1.0 * tangent
    q = columns((v, 0.0, -1.0 + u), (0.0, 0.0, -3.0))
    cone = shapes.sd_round_cone(q, (0.0, 0.0, -1.0), (0.0, 0.0, 1.0), r1, r2)
    torch.testing.assert_close(cone, torch.tensor([2.0, 2.0 - r1]))


def test_smooth_min_is_below_min_and_blends():
    a, b = torch.linspace(-1, 1, 101), torch.full((101,), 0.1)
    s = shapes.smooth_min(a, b, 0.2)
    assert torch.all(s <= torch.minimum(a, b) + 1e-7)
    assert torch.allclose(s[a < -0.15], a[a < -0.15]) and torch.allclose(s[a > 0.35], b[a > 0.35])
    assert float((torch.minimum(a, b) - s).max()) == pytest.approx(0.05, abs=1e-3)  # k / 4 where a = b


@pytest.mark.parametrize("category", ["car", "chair", "airplane"])
def test_shape_sdf_is_one_lipschitz_and_grid_matches(category):
    """|sdf(x) - sdf(y)| <= |x - y| for random pairs, and the grid SDF agrees with it to within a cell."""
    fitted = shapes.fit_unit_sphere(shapes.build_shape(category, np.random.default_rng(1)), 48)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4000, 3, generator=gen) * 2 - 1
    y = x + 0.05 * torch.randn(4000, 3, generator=gen)
    dx, dy = fitted.shape.sdf(x), fitted.shape.sdf(y)
    assert torch.all((dx - dy).abs() <= (x - y).norm(dim=-1) * (1 + 1e-4) + 1e-6)
    near = dx.abs() < 0.1
    assert float((fitted.grid(x[near]) - dx[near]).abs().max()) < fitted.grid.cell


def test_sphere_trace_hits_a_sphere_where_the_closed_form_says():
    gen = torch.Generator().manual_seed(0)
    origins = torch.tensor([[0.0, 0.0, 3.0]]).repeat(500, 1)
    directions = torch.nn.functional.normalize(torch.randn(500, 3, generator=gen) * 0.2 + torch.tensor([0, 0, -1.0]))
    t_near, t_far = torch.zeros(500), torch.full((500,), 10.0)
    t = render.sphere_trace(lambda x: x.norm(dim=-1) - 0.5, origins, directions, t_near, t_far, 1e-6, 200)
    b = (origins * directions).sum(-1)
    disc = b * b - (origins * origins).sum(-1) + 0.25
    expected = torch.where(disc > 0, -b - disc.clamp(min=0).sqrt(), torch.full_like(b, float("inf")))
    assert torch.isfinite(t)[disc > 1e-4].all() and not torch.isfinite(t)[disc < -1e-4].any()
    assert 50 < int((disc > 1e-4).sum()) < 450  # both cases occur
    hit = torch.isfinite(expected) & torch.isfinite(t)
    torch.testing.assert_close(t[hit], expected[hit], atol=1e-4, rtol=0)


def test_rays_match_nerfstudio_cameras():
    from nerfstudio.cameras.cameras import Cameras

    pose = fmt.orbit_pose(40.0, 20.0, 2.5)
    intr = render.pinhole_intrinsics(16, 2.5)
    origins, directions = render.camera_rays(pose[None], intr, 16, 16)
    cameras = Cameras(camera_to_worlds=torch.tensor(pose[None, :3], dtype=torch.float32), width=16, height=16,
                      **{k: torch.tensor([[v]]) for k, v in intr.items()})
    bundle = cameras.generate_rays(camera_indices=0)
    torch.testing.assert_close(torch.tensor(directions[0], dtype=torch.float32), bundle.directions, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(origins[0], dtype=torch.float32), bundle.origins, atol=1e-5, rtol=0)


def test_unit_sphere_just_fills_the_image():
    """The ray through the middle of the image's left edge is tangent to the unit sphere."""
    intr = render.pinhole_intrinsics(64, 2.5)
    pose = fmt.orbit_pose(0.0, 0.0, 2.5)
    direction = pose[:3, :3] @ np.array([(0 - intr["cx"]) / intr["fx"], 0.0, -1.0])
    direction /= np.linalg.norm(direction)
    closest = pose[:3, 3] - (pose[:3, 3] @ direction) * direction
    assert np.linalg.norm(closest) == pytest.approx(1.0)


def test_hue_rotation_keeps_grey_and_brightness():
    rgb = np.array([[0.5, 0.5, 0.5], [0.9, 0.2, 0.1]])
    out = source.hue_rotate(rgb, 120.0)
    np.testing.assert_allclose(out[0], rgb[0])
    np.testing.assert_allclose(out[1], [0.1, 0.9, 0.2], atol=1e-12)  # 120 degrees cycles the channels
    np.testing.assert_allclose(out.sum(-1), rgb.sum(-1))


# ----------------------------------------------------------------------------------------------
# The written dataset.


def test_format_round_trip(tmp_path):
    root = make(tmp_path, "cars", **FLAWS)
    info = fmt.read_dataset(root)
    assert (info.category, info.source, info.image_size) == ("car", "procedural", (32, 32))
    assert info.intrinsics == pytest.approx(render.pinhole_intrinsics(32, 2.5))
    ids = ["car_0000", "car_0001", "car_0002"]
    assert sorted(sum(info.splits.values(), [])) == ids and all(info.splits[s] for s in fmt.SPLITS)
    for instance_id in ids:
        record = fmt.read_instance(info, instance_id)
        assert len(record.views) == 4 and record.mesh_path is not None and record.input_mask_path is not None
        assert fmt.load_rgb(record.input_path).shape == (32, 32, 3)
        for view in record.views:
            assert view.transform_matrix_true is not None and view.distance == 2.5
            camera = view.transform_matrix_true[:3, 3]
            assert np.linalg.norm(camera) == pytest.approx(2.5, abs=1e-6)
            elevation = math.degrees(math.asin(camera[2] / 2.5))
            assert 0.0 <= elevation <= 30.0
        entries = json.loads((record.folder / "cameras.json").read_text())["views"]
        for entry, view in zip(entries, record.views):
            true_pose = fmt.orbit_pose(entry["azimuth_deg_true"], entry["elevation_deg_true"], 2.5)
            np.testing.assert_allclose(true_pose, view.transform_matrix_true, atol=1e-6)
            rough = fmt.orbit_pose(view.azimuth_deg, view.elevation_deg, 2.5)
            np.testing.assert_allclose(rough[:3, 3], view.transform_matrix[:3, 3], atol=1e-5)  # roll keeps position
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_masks_match_an_independent_raycast_of_the_mesh(clean):
    info = fmt.read_dataset(clean)
    for instance_id in sum(info.splits.values(), []):
        record = fmt.read_instance(info, instance_id)
        for view in record.views:
            cast = raycast_mask(record.mesh_path, view.transform_matrix_true, info.intrinsics, info.image_size)
            assert iou(fmt.load_mask(view.mask_path), cast) >= 0.95, f"{view.mask_path}"
            np.testing.assert_allclose(view.transform_matrix, view.transform_matrix_true)  # no pose noise
        pose = np.asarray(record.input_camera["transform_matrix"])
        cast = raycast_mask(record.mesh_path, pose, info.intrinsics, info.image_size)
        assert iou(fmt.load_mask(record.input_mask_path), cast) >= 0.95


def test_meshes_are_watertight_centred_and_fill_the_unit_sphere(clean):
    info = fmt.read_dataset(clean)
    for instance_id in sum(info.splits.values(), []):
        mesh = trimesh.load(clean / instance_id / "mesh.ply", process=False)
        assert mesh.is_watertight and mesh.volume > 0
        radius = np.linalg.norm(mesh.vertices, axis=1).max()
        assert 0.85 < radius <= 0.9 + 1e-6
        np.testing.assert_allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-6)
        views = [fmt.load_rgb(p) for p in sorted((clean / instance_id / "views").iterdir())]
        masks = [fmt.load_mask(p) for p in sorted((clean / instance_id / "masks").iterdir())]
        assert all(m.mean() > 0.03 for m in masks), "the object should be clearly visible"
        colours = np.concatenate([v[m] for v, m in zip(views, masks)])
        assert colours.std(axis=0).max() > 0.02, "the object should be shaded, not flat"


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = files(make(tmp_path, "a", num_instances=2, views=3, **FLAWS))
    b = files(make(tmp_path, "b", num_instances=2, views=3, **FLAWS))
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    c = files(make(tmp_path, "c", num_instances=2, views=3, seed=1, **FLAWS))
    for name in ("car_0000/mesh.ply", "car_0000/views/000.png", "car_0001/input.png", "car_0000/cameras.json"):
        assert c[name] != a[name]


def test_flaws_are_recorded_and_pose_noise_moves_rough_poses(tmp_path):
    root = make(tmp_path, "flawed", **FLAWS, blob_radius=0.2, mask_flaw_strength=0.05)
    generator = fmt.read_dataset(root).generator
    for key, value in {**FLAWS, "blob_radius": 0.2, "mask_flaw_strength": 0.05, "seed": 0}.items():
        assert generator[key] == value
    assert generator["version"] and generator["roll_noise_deg"] == 4.0 and len(generator["subtypes"]) == 3
    info = fmt.read_dataset(root)
    angles = []
    for instance_id in sum(info.splits.values(), []):
        for view in fmt.read_instance(info, instance_id).views:
            relative = view.transform_matrix[:3, :3].T @ view.transform_matrix_true[:3, :3]
            angles.append(math.degrees(math.acos(np.clip((np.trace(relative) - 1) / 2, -1, 1))))
    assert min(angles) > 0.01 and max(angles) < 8.0 * 5


def test_flaws_change_only_the_views_they_name(tmp_path):
    clean = make(tmp_path, "clean")
    flawed = make(tmp_path, "flawed", color_flaw_fraction=0.5, blob_fraction=0.25, mask_flaw_fraction=0.5)
    a, b = files(clean), files(flawed)
    counts = {"rgb": 0, "mask": 0}
    for instance_id in ("car_0000", "car_0001", "car_0002"):
        assert a[f"{instance_id}/input.png"] == b[f"{instance_id}/input.png"]
        assert a[f"{instance_id}/mesh.ply"] == b[f"{instance_id}/mesh.ply"]
        entries = json.loads(b[f"{instance_id}/cameras.json"])["views"]
        for i, entry in enumerate(entries):
            names = entry.get("flaws", [])
            rgb_flaw = any(n in ("color", "blob") for n in names)
            mask_flaw = any(n.startswith("mask_") for n in names)
            view, mask = f"{instance_id}/views/{i:03d}.png", f"{instance_id}/masks/{i:03d}.png"
            assert (a[view] != b[view]) == rgb_flaw, view
            assert (a[mask] != b[mask]) == mask_flaw, mask
            counts["rgb"] += rgb_flaw
            counts["mask"] += mask_flaw
    assert counts["rgb"] >= 6 and counts["mask"] == 6  # at least 2 of 4 views per instance; exactly 2 masks


def test_part_flaws_change_image_and_mask_together_at_the_silhouette(tmp_path):
    from scipy.ndimage import binary_dilation

    clean = make(tmp_path, "clean")
    flawed = make(tmp_path, "parts", part_flaw_fraction=0.5, part_flaw_size=0.2)
    modes = []
    for instance_id in ("car_0000", "car_0001", "car_0002"):
        entries = json.loads((flawed / instance_id / "cameras.json").read_text())["views"]
        for i, entry in enumerate(entries):
            names = entry.get("flaws", [])
            before, after = (fmt.load_mask(root / instance_id / "masks" / f"{i:03d}.png") for root in (clean, flawed))
            rgb = [fmt.load_rgb(root / instance_id / "views" / f"{i:03d}.png") for root in (clean, flawed)]
            if not names:
                assert np.array_equal(before, after) and np.array_equal(*rgb)
                continue
            (mode,) = names
            modes.append(mode)
            changed = before != after
            assert changed.any() and not np.array_equal(*rgb), (instance_id, i)
            if mode == "part_grow":  # only new object pixels, and the image changed where the mask grew
                assert not (before & ~after).any()
                assert (np.abs(rgb[0] - rgb[1]).sum(-1)[changed] > 0).all()
            else:
                assert mode == "part_cut" and not (after & ~before).any()
            # the part sits on the silhouette's edge: the changed pixels touch the other side of it
            other_side = binary_dilation(before if mode == "part_grow" else ~before)
            assert (changed & other_side).any() and changed.sum() < before.sum()
    assert len(modes) == 6 and set(modes) <= {"part_grow", "part_cut"}


def test_interrupted_run_leaves_no_dataset(tmp_path, monkeypatch):
    real = source.write_instance
    calls = []

    def failing(folder, data):
        calls.append(folder)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(folder, data)

    monkeypatch.setattr(source, "write_instance", failing)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path, "partial")
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_bad_options_give_one_line_errors(tmp_path, capsys):
    for options, words in [
        (dict(category="boat"), "category"),
        (dict(num_instances=0), "num_instances"),
        (dict(blob_fraction=1.5), "blob_fraction"),
        (dict(split_fractions=(0.5, 0.5, 0.5)), "split_fractions"),
        (dict(distance=0.9), "distance"),
    ]:
        with pytest.raises(ValueError, match=words):
            ProceduralConfig(out=tmp_path / "x", **options).validate()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        replace(ProceduralConfig(out=tmp_path / "full"), num_instances=1, views=1, resolution=16).main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not empty" in err and str(tmp_path / "full") in err


def test_main_prints_a_summary_and_the_cli_parses(tmp_path, capsys):
    import tyro

    args = ["--category", "chair", "--num-instances", "1", "--views", "2", "--resolution", "16"]
    config = tyro.cli(ProceduralConfig, args=args + ["--out", str(tmp_path / "c"), "--no-progress"])
    assert config.main() == tmp_path / "c"
    assert "Wrote 1 chair instances x 2 views at 16x16 px to" in capsys.readouterr().out
    assert fmt.read_dataset(tmp_path / "c").category == "chair"

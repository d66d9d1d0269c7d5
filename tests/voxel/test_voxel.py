"""gansvr-voxel: decoder shapes, projection and voxelisation against closed forms, the model's supervision and
real-image alignment, and one real run through `ns-train gansvr-voxel` and `gansvr-reconstruct`."""

import json
import math
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from gansvr_ns.data.format import FormatError
from gansvr_ns.voxel.decoder import VoxelDecoder
from gansvr_ns.voxel.mesh import grid_to_mesh
from gansvr_ns.voxel.model import SILHOUETTE_MESH_LEVEL, resolve_supervision
from gansvr_ns.voxel.projection import (
    composite_occupancy,
    depth_silhouette_bce,
    project_grids,
    ray_box_interval,
    sample_grid,
)
from gansvr_ns.voxel.voxelize import voxelize_file, voxelize_mesh
from tests.conftest import BIN, reconstruct_test_split, run


def cell_centres(resolution: int):
    """x, y, z of every cell centre of a resolution^3 grid over [-1, 1]^3, each [R, R, R] (ij order)."""
    c = (torch.arange(resolution) + 0.5) * 2.0 / resolution - 1.0
    return torch.meshgrid(c, c, c, indexing="ij")


def axis_rays(axis: int, coords: torch.Tensor, start: float = 3.0):
    """Rays travelling along -axis from `start`, one through each (a, b) of `coords` [N, 2] (the other two axes)."""
    others = [k for k in range(3) if k != axis]
    origins = torch.zeros(len(coords), 3)
    origins[:, others[0]], origins[:, others[1]], origins[:, axis] = coords[:, 0], coords[:, 1], start
    directions = torch.zeros(len(coords), 3)
    directions[:, axis] = -1.0
    return origins, directions


def pixel_grid(n: int = 41, extent: float = 0.97):
    """[n * n, 2] points of a square lattice over [-extent, extent]^2."""
    u = torch.linspace(-extent, extent, n)
    a, b = torch.meshgrid(u, u, indexing="ij")
    return torch.stack([a.flatten(), b.flatten()], dim=-1)


# ----------------------------------------------------------------------------------------------
# Decoder.


@pytest.mark.parametrize("resolution", [32, 64])
def test_decoder_output_shape(resolution):
    decoder = VoxelDecoder(latent_dim=16, resolution=resolution, base_channels=32, min_channels=8)
    out = decoder(torch.randn(2, 16))
    assert out.shape == (2, 4, resolution, resolution, resolution)
    # the occupancy starts mostly empty (bias -4), so first silhouettes are not saturated
    assert torch.sigmoid(out[:, 0]).mean() < 0.1


@pytest.mark.parametrize("resolution", [4, 48, 0])
def test_decoder_rejects_resolutions_it_cannot_build(resolution):
    with pytest.raises(ValueError, match="power of two"):
        VoxelDecoder(latent_dim=16, resolution=resolution)


# ----------------------------------------------------------------------------------------------
# Projection.


def test_ray_box_interval():
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    near, far = ray_box_interval(origins, directions)
    torch.testing.assert_close(near[:, 0], torch.tensor([2.0, near[1, 0].item(), 0.0]))
    torch.testing.assert_close(far[:, 0], torch.tensor([4.0, near[1, 0].item(), 1.0]))  # ray 1 misses: empty


@pytest.mark.parametrize("num_samples", [16, 128])
def test_constant_occupancy_follows_the_closed_form_at_any_sampling(num_samples):
    """o = 1/2 everywhere over a length L: silhouette = 1 - (1/2)^(L / v), whatever the number of samples."""
    cell, length = 0.0625, 0.5
    occupancy = torch.full((1, num_samples, 1), 0.5)
    deltas = torch.full((1, num_samples, 1), length / num_samples)
    weights, silhouette, depth = composite_occupancy(occupancy, deltas, cell, "product")
    expected = 1.0 - 0.5 ** (length / cell)
    torch.testing.assert_close(silhouette, torch.tensor([[expected]]))
    torch.testing.assert_close(depth, torch.tensor([[length / cell * math.log(2.0)]]))
    torch.testing.assert_close(weights.sum(dim=1), silhouette)
    assert (weights[0, 1:] < weights[0, :-1]).all()  # transmittance decays along the ray
    _, peak, _ = composite_occupancy(occupancy, deltas, cell, "max")
    torch.testing.assert_close(peak, torch.tensor([[0.5]]))


def test_silhouette_bce_from_optical_depth_is_exact_and_never_saturates():
    tau = torch.tensor([[0.05], [0.7], [3.0], [0.7]])
    mask = torch.tensor([[1.0], [1.0], [0.0], [0.0]])
    silhouette = 1.0 - torch.exp(-tau)
    torch.testing.assert_close(depth_silhouette_bce(tau, mask),
                               torch.nn.functional.binary_cross_entropy(silhouette, mask))
    # an almost empty ray inside the mask: the clamped BCE on the silhouette gives no gradient, this one does
    logit = torch.tensor([-30.0], requires_grad=True)
    depth = -torch.log1p(-torch.sigmoid(logit))[:, None]
    depth_silhouette_bce(depth, torch.ones(1, 1)).backward()
    assert logit.grad.item() == pytest.approx(-1.0, rel=1e-3)  # d/dlogit -log(1 - exp(-tau)) -> -1 as tau -> 0


def test_sample_grid_uses_x_y_z_order_and_each_rays_own_grid():
    grids = torch.zeros(2, 1, 8, 8, 8)
    grids[0, 0, 6, 1, 3] = 1.0  # cell centre (0.625, -0.625, -0.125)
    grids[1, 0, 3, 1, 6] = 1.0  # the x and z indices swapped
    centre = torch.tensor([[[0.625, -0.625, -0.125]]])
    points = centre.expand(4, 1, 3)
    values = sample_grid(grids, points, torch.tensor([0, 1, 0, 1]))
    torch.testing.assert_close(values[:, 0, 0], torch.tensor([1.0, 0.0, 1.0, 0.0]))
    swapped = sample_grid(grids, centre.flip(-1), torch.tensor([1]))
    assert swapped.item() == pytest.approx(1.0)


@pytest.mark.parametrize("axis", [0, 2])
def test_cube_projects_to_its_square_silhouette(axis):
    resolution, half = 32, 0.5
    x, y, z = cell_centres(resolution)
    cube = ((x.abs() < half) & (y.abs() < half) & (z.abs() < half)).float()[None, None]
    coords = pixel_grid()
    origins, directions = axis_rays(axis, coords)
    rays = project_grids(cube, torch.zeros(len(coords), dtype=torch.long), origins, directions, num_samples=64)
    silhouette = rays.silhouette
    inside = (coords.abs() < half).all(dim=-1)
    margin = (coords.abs() - half).abs().amin(dim=-1) > 2.0 / resolution  # pixels a cell away from the edges
    assert torch.equal((silhouette[:, 0] > 0.5)[margin], inside[margin])
    assert (silhouette[inside & margin] > 0.999).all()
    assert (silhouette[~inside & margin] == 0).all()
    depth = (rays.weights * rays.distances).sum(dim=1) / rays.weights.sum(dim=1)
    centre = inside & (coords.abs() < half - 2.0 / resolution).all(dim=-1)
    assert (depth[centre] - (3.0 - half)).abs().max() < 1.0 / resolution  # the front face, within half a cell


def test_sphere_projects_to_a_disc_and_passes_gradients():
    resolution, radius = 32, 0.6
    x, y, z = cell_centres(resolution)
    sphere = (x**2 + y**2 + z**2 < radius**2).float()[None, None].requires_grad_(True)
    coords = pixel_grid()
    origins, directions = axis_rays(0, coords)
    silhouette = project_grids(sphere, torch.zeros(len(coords), dtype=torch.long), origins, directions, 64).silhouette
    rho = coords.norm(dim=-1)
    clear = (rho - radius).abs() > 2.0 / resolution
    assert torch.equal((silhouette[:, 0] > 0.5)[clear], (rho < radius)[clear])
    silhouette.sum().backward()
    assert sphere.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# Voxelisation and mesh extraction.


def box_overlaps(half_extents, resolution: int):
    """Per axis, the fraction of each cell's extent along that axis inside the centred box."""
    edges = np.linspace(-1.0, 1.0, resolution + 1)
    return [np.clip(np.minimum(edges[1:], h) - np.maximum(edges[:-1], -h), 0.0, None) / (2.0 / resolution)
            for h in half_extents]


def test_voxelize_box_gives_the_exact_inside_fractions():
    resolution = 16  # cells of 1/8; every face below lies on a sub-cell boundary (1/32) but on no cell centre
    half = (0.59375, 0.25, 0.53125)  # covers 3/4, all, 1/4 of the outermost cells along x, y, z
    box = trimesh.creation.box(extents=[2 * h for h in half])
    overlaps = box_overlaps(half, resolution)
    grid = voxelize_mesh(box, resolution, supersample=4)
    assert grid.shape == (resolution,) * 3
    np.testing.assert_allclose(grid, np.einsum("i,j,k->ijk", *overlaps), atol=1e-6)
    assert grid.sum() * (2.0 / resolution) ** 3 == pytest.approx(box.volume)
    centres = voxelize_mesh(box, resolution, supersample=1)  # binary: is the cell centre inside
    np.testing.assert_array_equal(centres, np.einsum("i,j,k->ijk", *[(o > 0.5).astype(np.float32) for o in overlaps]))


def test_voxelize_file_rejects_unreadable_and_empty_meshes(tmp_path):
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"not a mesh at all")
    with pytest.raises(FormatError, match="garbage.ply"):
        voxelize_file(garbage, 8)
    tiny = tmp_path / "tiny.ply"
    trimesh.creation.box(extents=(0.01, 0.01, 0.01)).export(tiny)
    with pytest.raises(FormatError, match="tiny.ply: mesh encloses no cell"):
        voxelize_file(tiny, 8, supersample=1)


def test_grid_to_mesh_recovers_a_sphere_with_its_colour():
    resolution, radius = 32, 0.5
    x, y, z = cell_centres(resolution)
    occupancy = (x**2 + y**2 + z**2 < radius**2).float()
    colour = torch.tensor([0.2, 0.6, 0.8])[:, None, None, None].expand(3, resolution, resolution, resolution)
    mesh = grid_to_mesh(torch.cat([occupancy[None], colour]), resolution=64)
    assert mesh.is_watertight
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - radius).max() < 2.0 / resolution  # within one cell
    assert mesh.volume == pytest.approx(4.0 / 3.0 * math.pi * radius**3, rel=0.1)
    np.testing.assert_array_equal(np.unique(mesh.visual.vertex_colors, axis=0), [[51, 153, 204, 255]])
    empty = grid_to_mesh(torch.zeros(4, 8, 8, 8), resolution=16)
    assert len(empty.faces) == 0


# ----------------------------------------------------------------------------------------------
# The model's supervision.


def test_supervision_choice(tmp_path):
    inputs = [tmp_path / "a" / "input.png", tmp_path / "b" / "input.png"]
    meshes = [tmp_path / "a" / "mesh.ply", tmp_path / "b" / "mesh.ply"]
    assert resolve_supervision("auto", meshes, inputs) == "mesh"
    assert resolve_supervision("auto", [meshes[0], None], inputs) == "silhouette"
    assert resolve_supervision("silhouette", meshes, inputs) == "silhouette"
    with pytest.raises(ValueError, match=r"b/mesh.ply: missing"):
        resolve_supervision("mesh", [meshes[0], None], inputs)


def tiny_pipeline(data: Path, supervision: str, real_images: Optional[Path] = None):
    """A small gansvr-voxel pipeline built from the method's own config, conditioned on input images only."""
    from gansvr_ns.voxel.method_config import gansvr_voxel_config

    config = gansvr_voxel_config().pipeline
    config.datamanager.data, config.datamanager.real_images = data, real_images
    config.datamanager.instances_per_batch, config.datamanager.views_per_instance = 2, 2
    config.datamanager.rays_per_view, config.datamanager.condition_view_probability = 32, 0.0
    model = config.model
    model.resolution, model.base_channels, model.min_channels, model.latent_dim = 16, 32, 8, 32
    model.encoder_input_size, model.num_samples, model.supervision = 32, 24, supervision
    return config.setup(device="cpu", test_mode="val")


def occupancy_gradient(loss: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """d loss / d (occupancy logits), zeros when the loss does not depend on them."""
    (grad,) = torch.autograd.grad(loss, logits, retain_graph=True, allow_unused=True)
    return torch.zeros_like(logits) if grad is None else grad


def test_mesh_supervision_fits_the_voxelised_ground_truth(ellipsoids):
    torch.manual_seed(0)
    pipeline = tiny_pipeline(ellipsoids, "mesh")
    model, data = pipeline.model, pipeline.datamanager.train_data
    assert model.supervision == "mesh" and model.mesh_level() == 0.5
    ray_bundle, batch = pipeline.datamanager.next_train(0)  # one step of GanSvrPipeline.get_train_loss_dict
    model.condition(batch["condition_images"])
    outputs = model(ray_bundle)
    metrics = model.get_metrics_dict(outputs, batch)
    loss_dict = model.get_loss_dict(outputs, batch, metrics)
    assert {"rgb_loss", "voxel_loss"} <= set(loss_dict) and "mask_loss" not in loss_dict
    assert 0.0 <= float(metrics["voxel_iou"]) <= 1.0
    # the slots' instances, read off the rays' cameras, are those whose input images condition the batch
    torch.testing.assert_close(data.inputs[model._batch_instances], batch["condition_images"])
    # geometry comes from the shapes alone: the colour loss does not reach the occupancy
    rgb_grad = occupancy_gradient(loss_dict["rgb_loss"], model._batch_logits)
    assert rgb_grad[:, 0].abs().max() == 0 and rgb_grad[:, 1:].abs().max() > 0
    assert occupancy_gradient(loss_dict["voxel_loss"], model._batch_logits)[:, 0].abs().max() > 0

    images = data.inputs
    targets = model.voxel_targets()
    assert targets.shape == (len(images), 16, 16, 16) and targets.max() == 1.0

    def voxel_bce() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.binary_cross_entropy_with_logits(model.decode(model.encode(images))[:, 0],
                                                                               targets))

    before = voxel_bce()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(10):
        _, loss_dict, _ = pipeline.get_train_loss_dict(step)
        optimizer.zero_grad()
        sum(loss_dict.values()).backward()
        optimizer.step()
    assert voxel_bce() < 0.7 * before


def test_silhouette_supervision_trains_the_occupancy_through_the_masks(ellipsoids):
    torch.manual_seed(0)
    pipeline = tiny_pipeline(ellipsoids, "silhouette")
    model = pipeline.model
    _, loss_dict, _ = pipeline.get_train_loss_dict(0)
    assert {"rgb_loss", "mask_loss"} <= set(loss_dict) and "voxel_loss" not in loss_dict
    assert occupancy_gradient(loss_dict["mask_loss"], model._batch_logits)[:, 0].abs().max() > 0
    assert model._voxel_targets is None  # no ground-truth shape was read
    assert model.mesh_level() == SILHOUETTE_MESH_LEVEL < 0.5
    model.config.mesh_level = 0.4
    assert model.mesh_level() == 0.4


def parameter_gradient(loss: torch.Tensor, module: torch.nn.Module) -> float:
    """Sum of |d loss / d p| over the parameters of `module` (0 when the loss does not depend on them)."""
    grads = torch.autograd.grad(loss, list(module.parameters()), retain_graph=True, allow_unused=True)
    return float(sum(g.abs().sum() for g in grads if g is not None))


def test_real_images_align_the_encoder_latents_as_in_gansvr(ellipsoids, tmp_path):
    from nerfstudio.engine.optimizers import Optimizers

    from gansvr_ns.voxel.method_config import gansvr_voxel_config

    torch.manual_seed(0)
    plain = tiny_pipeline(ellipsoids, "silhouette")
    _, loss_dict, _ = plain.get_train_loss_dict(0)
    assert plain.model.alignment is None and "alignment" not in plain.get_param_groups()
    assert not {"alignment_loss", "autoencoder_loss"} & set(loss_dict)

    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(real / f"{i}.png")
    pipeline = tiny_pipeline(ellipsoids, "silhouette", real_images=real)
    model = pipeline.model
    _, loss_dict, _ = pipeline.get_train_loss_dict(0)
    alignment, autoencoder = loss_dict["alignment_loss"], loss_dict["autoencoder_loss"]
    assert torch.isfinite(alignment) and torch.isfinite(autoencoder)
    assert parameter_gradient(alignment, model.encoder) > 0
    assert parameter_gradient(alignment, model.alignment.discriminator) > 0
    assert parameter_gradient(autoencoder, model.encoder) > 0
    assert parameter_gradient(autoencoder, model.alignment.decoder) > 0
    assert parameter_gradient(alignment, model.decoder) == 0  # the voxel decoder is not part of the alignment
    # the method's optimizers cover the "alignment" group (nerfstudio raises for a group without an optimizer)
    optimizers = Optimizers(gansvr_voxel_config().optimizers, pipeline.get_param_groups())
    assert optimizers.parameters["alignment"] == list(model.alignment.parameters())


# ----------------------------------------------------------------------------------------------
# End to end through the real command lines.

FAST = [
    "--max-num-iterations", "20", "--machine.device-type", "cpu", "--vis", "tensorboard",
    "--steps-per-eval-batch", "10", "--steps-per-eval-image", "15", "--steps-per-save", "20",
    "--pipeline.datamanager.instances-per-batch", "2", "--pipeline.datamanager.views-per-instance", "2",
    "--pipeline.datamanager.rays-per-view", "16", "--pipeline.model.resolution", "16",
    "--pipeline.model.base-channels", "32", "--pipeline.model.encoder-input-size", "32",
    "--pipeline.model.num-samples", "24",
]



def test_ns_train_gansvr_voxel_then_reconstruct(tmp_path):
    from tests.conftest import make_ellipsoid_dataset

    data = make_ellipsoid_dataset(tmp_path / "ellipsoids")
    run(BIN / "ns-train", "gansvr-voxel", "--data", data, "--output-dir", tmp_path / "outputs", "--timestamp", "run",
        *FAST, cwd=tmp_path)
    config = tmp_path / "outputs" / "ellipsoids" / "gansvr-voxel" / "run" / "config.yml"
    assert "method_name: gansvr-voxel" in config.read_text()
    assert list((config.parent / "nerfstudio_models").glob("step-*.ckpt"))

    out = tmp_path / "meshes"
    test_ids = reconstruct_test_split(config, data, out, cwd=tmp_path)
    summary = json.loads((out / "reconstruct.json").read_text())
    assert set(summary["meshes"]) == set(test_ids) | {"input"}
    result = run(BIN / "gansvr-reconstruct", "--load-config", config, "--images", data / "ell_000" / "input.png",
                 "--overlay", "--output-dir", tmp_path / "drawn", cwd=tmp_path, check=False)
    assert result.returncode == 2 and not (tmp_path / "drawn").exists()  # it drew nothing and said nothing before
    assert "--overlay draws each mesh by its image's camera, which a gansvr-voxel run does not" in result.stderr

    # without its dataset a gansvr-voxel run (whose mesh level depends on it) is refused in one line
    data.rename(tmp_path / "moved-away")
    result = run(BIN / "gansvr-reconstruct", "--load-config", config, "--images", tmp_path / "moved-away" / "ell_000" /
                 "input.png", "--output-dir", tmp_path / "again", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "the run's dataset is missing" in result.stderr
    assert "Traceback" not in result.stderr and not data.exists()

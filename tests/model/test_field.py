"""The conditioned SDF field: sphere initialisation, conditioning, backend selection."""

import pytest
import torch

from gansvr_ns.model import field as field_module
from gansvr_ns.model.field import ConditionedSDFField, SDFFieldConfig, resolve_implementation


def random_points(n: int, radius: float = 1.0) -> torch.Tensor:
    points = torch.randn(n, 3)
    return points / points.norm(dim=-1, keepdim=True) * torch.rand(n, 1) * radius


@pytest.mark.parametrize("conditioning", ["concat", "film"])
@pytest.mark.parametrize("hash_grid", [True, False])
def test_initial_field_is_a_sphere_with_unit_gradient(conditioning, hash_grid):
    torch.manual_seed(0)
    config = SDFFieldConfig(conditioning=conditioning, use_hash_grid=hash_grid, implementation="torch", init_radius=0.5)
    field = ConditionedSDFField(config, latent_dim=32)
    points = random_points(4000)
    code = field.encode_latents(torch.randn(1, 32))
    geometry, gradient = field.sdf_and_gradient(points, code, create_graph=False)
    expected = points.norm(dim=-1) - 0.5
    torch.testing.assert_close(geometry[:, 0], expected, atol=0.02, rtol=0)
    norms = gradient.norm(dim=-1)
    assert (norms - 1.0).abs().mean() < 0.02
    assert (norms - 1.0).abs().max() < 0.15


@pytest.mark.parametrize("conditioning", ["concat", "film"])
def test_changing_the_latent_changes_the_sdf(conditioning):
    torch.manual_seed(1)
    field = ConditionedSDFField(SDFFieldConfig(conditioning=conditioning, use_hash_grid=False), latent_dim=16)
    points = random_points(500)
    a = field.sdf(points, field.encode_latents(torch.randn(1, 16)))
    b = field.sdf(points, field.encode_latents(torch.randn(1, 16)))
    assert (a - b).abs().max() > 1e-5
    same = field.sdf(points, field.encode_latents(torch.ones(1, 16)))
    torch.testing.assert_close(same, field.sdf(points, field.encode_latents(torch.ones(1, 16))))


def test_film_scales_start_near_one_and_move_a_tenth_as_fast():
    """FiLM's per-unit scales 1 + s start near 1 for unit-scaled latents (at full gain many were negative, and
    training diverged), and a change of the latent map moves them a tenth as far as the shifts."""
    from gansvr_ns.model.field import FILM_SCALE_GAIN
    from gansvr_ns.model.gansvr_model import unit_scale

    torch.manual_seed(0)
    field = ConditionedSDFField(SDFFieldConfig(conditioning="film", use_hash_grid=False), latent_dim=64)
    code = field.encode_latents(unit_scale(torch.randn(16, 64)))
    scales, shifts = code.geo[:, :, 0], code.geo[:, :, 1]
    assert (1.0 + scales).min() > 0.4 and scales.std() < 0.15
    assert 0.7 < shifts.std() < 1.3  # the shifts at full scale, as concatenation's bias
    assert "film_gain" not in field.state_dict()
    latent = unit_scale(torch.randn(1, 64))
    before = field.encode_latents(latent).geo
    with torch.no_grad():
        field.latent_to_geo.bias.add_(1.0)
    moved = field.encode_latents(latent).geo - before
    torch.testing.assert_close(moved[:, :, 0], torch.full_like(moved[:, :, 0], FILM_SCALE_GAIN))
    torch.testing.assert_close(moved[:, :, 1], torch.ones_like(moved[:, :, 1]))


def test_per_ray_codes_broadcast_over_samples():
    torch.manual_seed(2)
    field = ConditionedSDFField(SDFFieldConfig(use_hash_grid=False), latent_dim=8)
    latents = torch.randn(3, 8)
    positions = random_points(5 * 7).reshape(5, 7, 3)
    index = torch.tensor([0, 2, 1, 1, 0])
    batched = field.sdf(positions, field.encode_latents(latents).take(index).unsqueeze(1))
    for ray in range(5):
        single = field.sdf(positions[ray], field.encode_latents(latents[index[ray] : index[ray] + 1]))
        torch.testing.assert_close(batched[ray], single)


def test_forward_geonetwork_uses_the_selected_latent():
    torch.manual_seed(3)
    field = ConditionedSDFField(SDFFieldConfig(use_hash_grid=False), latent_dim=8)
    with torch.no_grad():
        field.latent_to_geo.weight.mul_(100.0)
    points = random_points(100)
    z = torch.randn(1, 8)
    field.select_latent(z)
    out = field.forward_geonetwork(points)
    assert out.shape == (100, 1 + field.config.geo_feat_dim)
    torch.testing.assert_close(out[:, :1], field.sdf(points, field.encode_latents(z)))


def test_implementation_selection(monkeypatch):
    assert resolve_implementation("torch") == "torch"
    monkeypatch.setattr(field_module, "tcnn_available", lambda: False)
    assert resolve_implementation("auto") == "torch"
    from gansvr_ns.data.datamanager import DataError

    with pytest.raises(DataError, match="^gansvr: --pipeline.model.sdf-field.implementation tcnn needs tinycudann"):
        resolve_implementation("tcnn")
    monkeypatch.setattr(field_module, "tcnn_available", lambda: True)
    assert resolve_implementation("auto") == "tcnn"
    assert resolve_implementation("tcnn") == "tcnn"


def test_hypernetwork_field_starts_as_a_sphere_and_depends_on_the_latent():
    torch.manual_seed(4)
    config = SDFFieldConfig(architecture="hypernetwork", use_hash_grid=False, init_radius=0.4)
    field = ConditionedSDFField(config, latent_dim=16)
    points = random_points(2000)
    geometry, gradient = field.sdf_and_gradient(points, field.encode_latents(torch.randn(1, 16)), create_graph=False)
    torch.testing.assert_close(geometry[:, 0], points.norm(dim=-1) - 0.4, atol=0.02, rtol=0)
    assert (gradient.norm(dim=-1) - 1).abs().mean() < 0.02
    with torch.no_grad():
        field.latent_to_geo[-1].weight.mul_(1000.0)
    latents = torch.randn(3, 16)
    codes = field.encode_latents(latents)
    a = field.sdf(points, field.encode_latents(latents[:1]))
    b = field.sdf(points, field.encode_latents(latents[1:2]))
    assert (a - b).abs().max() > 1e-4
    # per-ray evaluation agrees with evaluating each instance on its own
    positions = points[:12].reshape(4, 3, 3)
    index = torch.tensor([2, 0, 1, 2])
    batched = field.sdf(positions, codes.take(index).unsqueeze(1))
    for ray in range(4):
        single = field.sdf(positions[ray], field.encode_latents(latents[index[ray] : index[ray] + 1]))
        torch.testing.assert_close(batched[ray], single)
    # rays without an instance of their own (viewer, eval images) all use the one selected code
    field.select_latent(latents[1:2])
    selected = field.sdf(positions, field.selected.unsqueeze(1))
    torch.testing.assert_close(selected, field.sdf(positions, codes.take(torch.ones(4, dtype=torch.long)).unsqueeze(1)))


def test_field_starts_from_the_given_ellipsoid_and_keeps_it_in_its_state():
    field = ConditionedSDFField(SDFFieldConfig(use_hash_grid=False), latent_dim=8)
    field.set_init_axes(torch.tensor([0.8, 0.4, 0.3]))
    code = field.encode_latents(torch.randn(1, 8))
    tips = torch.tensor([[0.8, 0.0, 0.0], [0.0, -0.4, 0.0], [0.0, 0.0, 0.3]])
    assert torch.allclose(field.sdf(tips, code)[:, 0], torch.zeros(3), atol=1e-2)
    assert field.sdf(torch.zeros(1, 3), code)[0, 0] < -0.25 and field.sdf(torch.tensor([[0.0, 0.5, 0.0]]), code) > 0
    restored = ConditionedSDFField(SDFFieldConfig(use_hash_grid=False), latent_dim=8)
    restored.load_state_dict(field.state_dict())
    assert torch.equal(restored.init_axes, torch.tensor([0.8, 0.4, 0.3]))


def test_field_starts_from_a_base_grid_resampled_to_its_resolution():
    from gansvr_ns.data.hull import grid_points

    config = SDFFieldConfig(use_hash_grid=False, base_grid_resolution=16)
    field = ConditionedSDFField(config, latent_dim=8)
    box = (grid_points(16).abs() - torch.tensor([0.7, 0.3, 0.3])).max(dim=-1).values.reshape(16, 16, 16)
    field.set_base_grid(box)
    code = field.encode_latents(torch.randn(1, 8))
    probe = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.6]])
    # between cell centres the interpolated box SDF is exact up to the half-cell offset of the centres (1/16)
    assert torch.allclose(field.sdf(probe, code)[:, 0], torch.tensor([-0.3 + 1 / 16, 0.3]), atol=0.01)
    coarse = (grid_points(8).abs() - torch.tensor([0.7, 0.3, 0.3])).max(dim=-1).values.reshape(8, 8, 8)
    field.set_base_grid(coarse)  # another size is resampled to the field's own
    assert field.base_grid.shape == (16, 16, 16)
    assert torch.allclose(field.sdf(probe, code)[:, 0], torch.tensor([-0.3 + 1 / 8, 0.3]), atol=0.03)


def test_latent_grid_starts_at_zero_moves_with_the_latent_and_broadcasts_per_ray():
    torch.manual_seed(4)
    config = SDFFieldConfig(use_hash_grid=False, latent_grid_resolution=8)
    field = ConditionedSDFField(config, latent_dim=8)
    plain = ConditionedSDFField(SDFFieldConfig(use_hash_grid=False), latent_dim=8)
    plain.load_state_dict({k: v for k, v in field.state_dict().items() if not k.startswith("latent_to_grid")})
    points = random_points(200)
    z = torch.randn(3, 8)
    # zero-initialised: the same field as without the grid
    start = field.sdf(points, field.encode_latents(z[:1]))
    torch.testing.assert_close(start, plain.sdf(points, plain.encode_latents(z[:1])))
    with torch.no_grad():
        field.latent_to_grid.weight.normal_()
    code = field.encode_latents(z)
    assert code.grid.shape == (3, 8**3)
    offset = field.sdf(points, field.encode_latents(z[:1])) - plain.sdf(points, plain.encode_latents(z[:1]))
    # the offset is the decoded grid read trilinearly at the points
    grid = code.grid[0].reshape(8, 8, 8)
    from gansvr_ns.data.hull import trilinear

    torch.testing.assert_close(offset, trilinear(grid, points), atol=1e-5, rtol=1e-4)
    # per-ray codes (rays x samples) give each ray its own instance's grid, with gradients of second order
    positions = random_points(4 * 6).reshape(4, 6, 3).requires_grad_(True)
    index = torch.tensor([2, 0, 1, 2])
    geometry, gradient = field.sdf_and_gradient(positions, code.take(index).unsqueeze(1), create_graph=True)
    for ray in range(4):
        single = field.sdf(positions[ray].detach(), field.encode_latents(z[index[ray] : index[ray] + 1]))
        torch.testing.assert_close(geometry[ray, :, :1], single)
    (gradient.norm(dim=-1) - 1.0).pow(2).sum().backward()
    assert field.latent_to_grid.weight.grad.abs().sum() > 0
    # a code of several instances, not taken per ray: entry i reads grid i
    per_instance = field.sdf(positions[:3].detach(), code.unsqueeze(1))
    for i in range(3):
        single = field.sdf(positions[i].detach(), field.encode_latents(z[i : i + 1]))
        torch.testing.assert_close(per_instance[i], single)


@pytest.mark.parametrize("symmetric", [True, False])
def test_symmetric_field_is_its_own_mirror_image(symmetric):
    torch.manual_seed(5)
    config = SDFFieldConfig(use_hash_grid=False, latent_grid_resolution=8, symmetric=symmetric)
    field = ConditionedSDFField(config, latent_dim=8)
    with torch.no_grad():  # move the field away from its (symmetric) start
        field.output.weight.normal_(0.0, 0.3)
        field.latent_to_grid.weight.normal_()
    code = field.encode_latents(torch.randn(1, 8))
    points = random_points(500)
    mirrored = points * torch.tensor([1.0, -1.0, 1.0])
    geometry, gradient = field.sdf_and_gradient(points, code, create_graph=False)
    geometry_m, gradient_m = field.sdf_and_gradient(mirrored, code, create_graph=False)
    gap = (geometry - geometry_m).abs().max()
    if not symmetric:  # the control: a free field is not symmetric by chance
        assert gap > 1e-2
        return
    torch.testing.assert_close(geometry, geometry_m)
    # the normal is mirrored too, and the y-component vanishes smoothly on the plane
    torch.testing.assert_close(gradient_m, gradient * torch.tensor([1.0, -1.0, 1.0]))
    on_plane = points * torch.tensor([1.0, 0.0, 1.0])
    _, gradient_0 = field.sdf_and_gradient(on_plane, code, create_graph=False)
    assert gradient_0[:, 1].abs().max() < 1e-6
    # the sphere start is kept to within the smoothing
    fresh = ConditionedSDFField(SDFFieldConfig(use_hash_grid=False, symmetric=True, init_radius=0.5), latent_dim=8)
    start = fresh.sdf(points, fresh.encode_latents(torch.randn(1, 8)))[:, 0]
    torch.testing.assert_close(start, points.norm(dim=-1) - 0.5, atol=fresh.config.symmetry_smoothing, rtol=0)


def test_shade_is_ambient_plus_key_plus_fill():
    light = torch.tensor([[0.0, 0.0, 2.0, *torch.tensor([0.3, 0.6, 0.2]).expm1().log()]])
    up, side = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    down = -up
    # lit from above and seen from above: all three terms; lit from above and seen side-on: no fill
    assert field_module.shade(light, up, down).item() == pytest.approx(1.1, abs=1e-5)
    assert field_module.shade(light, up, side).item() == pytest.approx(0.9, abs=1e-5)
    # facing away from the key light and from the camera: the ambient alone
    assert field_module.shade(light, down, down).item() == pytest.approx(0.3, abs=1e-5)


def test_lambertian_colour_is_one_albedo_times_the_shading_of_a_per_latent_light():
    torch.manual_seed(0)
    field = ConditionedSDFField(SDFFieldConfig(shading="lambertian"), latent_dim=8)
    code = field.encode_latents(torch.randn(1, 8))
    features = torch.randn(1, field.config.geo_feat_dim).expand(2, -1)
    normals = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # towards the light (initially above), then side-on
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # seen side-on: no fill light
    rgb = field.color(normals, directions, features, code)
    lit, unlit = rgb
    # the same albedo, lit at about ambient + key in one case and ambient alone in the other
    expected = field_module.shade(code.light, normals, directions)
    assert torch.allclose(lit / unlit, (expected[0] / expected[1]).expand(3), rtol=1e-4)
    assert (expected[0] / expected[1]).item() > 2.5  # about (0.3 + 0.6) / 0.3 while the latent's part is small
    # the light follows the latent, so each instance is lit its own way
    other = field.encode_latents(torch.randn(1, 8))
    assert not torch.allclose(code.light, other.light)


def test_lambertian_colour_sends_gradients_to_the_sdf_through_the_normals():
    torch.manual_seed(0)
    field = ConditionedSDFField(SDFFieldConfig(shading="lambertian", geo_feat_dim=1), latent_dim=8)
    code = field.encode_latents(torch.randn(1, 8))
    positions = torch.randn(64, 3) * 0.5
    geometry, gradient = field.sdf_and_gradient(positions, code, create_graph=True)
    normals = torch.nn.functional.normalize(gradient, dim=-1)
    directions = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    # features held fixed: whatever reaches the SDF MLP comes through the normals alone
    field.color(normals, directions, geometry[:, 1:].detach(), code).sum().backward()
    assert field.layers[0].weight.grad.abs().sum() > 0

"""The two uncertainty sources and one training step of the whole model with each of them."""

from pathlib import Path

import pytest
import torch

from gansvr_ns.model.uncertainty import ImageUncertaintyHead, UncertaintyField
from tests.conftest import small_training_pipeline


@pytest.mark.parametrize("with_mask", [False, True])
def test_image_head_reads_each_rays_own_pixel(with_mask):
    torch.manual_seed(0)
    head = ImageUncertaintyHead(sigma_min=0.05, with_mask=with_mask)
    views, masks = torch.rand(3, 3, 16, 20), (torch.rand(3, 1, 16, 20) > 0.5).float()
    maps = head(views, masks)
    channels = 2 if with_mask else 1
    assert maps.shape == (3, channels, 16, 20) and (maps >= 0.05).all()
    ray_view = torch.tensor([0, 2, 1, 2])
    ray_pixel = torch.tensor([[0, 0], [15, 19], [7, 3], [4, 11]])
    sigma = head.at_pixels(views, ray_view, ray_pixel, masks)
    expected = torch.stack([maps[v, :, y, x] for v, (y, x) in zip(ray_view.tolist(), ray_pixel.tolist())])
    torch.testing.assert_close(sigma, expected)


def test_a_per_view_colour_sigma_is_the_maps_mean_inside_the_views_mask():
    torch.manual_seed(0)
    head = ImageUncertaintyHead(with_mask=True)
    views = torch.rand(2, 3, 8, 8)
    masks = torch.zeros(2, 1, 8, 8)
    masks[0, :, 2:5, 3:7] = 1.0  # view 1 has an empty mask: its whole view's mean
    maps = head(views, masks)
    ray_view = torch.tensor([0, 0, 1, 1])
    ray_pixel = torch.tensor([[0, 0], [3, 4], [0, 0], [7, 7]])
    sigma = head.at_pixels(views, ray_view, ray_pixel, masks, colour_per_view=True)
    inside = maps[0, 0][masks[0, 0] > 0.5].mean()
    torch.testing.assert_close(sigma[:, 0], torch.stack([inside, inside, maps[1, 0].mean(), maps[1, 0].mean()]))
    # the mask's sigma stays per pixel
    torch.testing.assert_close(sigma[:, 1], torch.stack([maps[v, 1, y, x] for v, (y, x) in
                                                        zip(ray_view.tolist(), ray_pixel.tolist())]))
    assert not torch.allclose(inside, maps[0, 0].mean())  # the background does not count


def test_mask_head_sees_the_mask_and_needs_it():
    torch.manual_seed(0)
    head = ImageUncertaintyHead(with_mask=True)
    views = torch.rand(1, 3, 16, 20)
    full, empty = torch.ones(1, 1, 16, 20), torch.zeros(1, 1, 16, 20)
    assert not torch.allclose(head(views, full), head(views, empty))
    with pytest.raises(ValueError, match="mask"):
        head(views)


def test_uncertainty_field_depends_on_the_view_and_falls_back_to_the_mean_embedding():
    torch.manual_seed(1)
    field = UncertaintyField(geo_feat_dim=5, latent_dim=4, num_views=10)
    with torch.no_grad():
        field.view_embedding.weight.normal_()
    geo, latent = torch.randn(2, 7, 5), torch.randn(2, 1, 4)
    a = field(geo, latent, torch.tensor([0, 0]))
    b = field(geo, latent, torch.tensor([3, 3]))
    assert a.shape == (2, 7, 1) and (a >= 0).all()
    assert not torch.allclose(a, b)
    mean = field(geo, latent, None)
    embed = field.view_embedding.weight.mean(0)
    h = torch.relu(field.geo(geo) + field.latent_proj(latent) + field.view(embed))
    torch.testing.assert_close(mean, torch.nn.functional.softplus(field.out(h)))


@pytest.mark.parametrize(
    "uncertainty,conditioning,mask_uncertainty,weighting,colour",
    [
        ("image", "concat", "pixel", "likelihood", "pixel"),
        ("image", "concat", "view", "likelihood", "view"),
        ("image", "film", "off", "relative", "pixel"),
        ("image", "concat", "off", "likelihood", "view"),
        ("field", "film", "off", "relative", "pixel"),
        ("none", "concat", "off", "likelihood", "pixel"),
    ],
)
def test_one_training_step_reaches_every_part(ellipsoids: Path, uncertainty, conditioning, mask_uncertainty, weighting,
                                              colour):
    def configure(config):
        config.pipeline.model.uncertainty = uncertainty
        config.pipeline.model.colour_uncertainty = colour
        config.pipeline.model.sdf_field.conditioning = conditioning
        config.pipeline.model.mask_uncertainty = mask_uncertainty
        config.pipeline.model.uncertainty_weighting = weighting

    pipeline = small_training_pipeline(ellipsoids, configure)
    _, losses, metrics = pipeline.get_train_loss_dict(step=0)
    assert {"rgb_loss", "mask_loss", "eikonal_loss", "camera_opt_regularizer"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert "pose_rotation_error_deg" in metrics
    sum(losses.values()).backward()
    model = pipeline.model
    assert model.encoder.head.weight.grad.abs().sum() > 0
    assert model.field.output.weight.grad.abs().sum() > 0
    assert model.field.latent_to_grid.weight.grad.abs().sum() > 0  # the default's latent offset grid learns too
    heads = {"image": model.image_uncertainty, "field": model.uncertainty_field, "none": None}[uncertainty]
    if heads is not None:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.parameters())
    assert ("mask_sigma_loss" in losses) == (uncertainty == "image" and mask_uncertainty != "off")
    assert ("rgb_sigma_loss" in losses) == (uncertainty != "none" and weighting == "relative")
    if uncertainty == "image" and mask_uncertainty != "off":
        out = model.image_uncertainty.net[-1]
        assert out.weight.grad[1].abs().sum() > 0  # the mask's sigma channel learns
    assert set(pipeline.get_param_groups()) >= {"fields", "encoder", "camera_opt"}


def test_pose_network_learns_in_a_training_step_and_reports_the_drawn_views_errors(ellipsoids: Path):
    def configure(config):
        config.pipeline.model.pose_network = True

    pipeline = small_training_pipeline(ellipsoids, configure)
    _, losses, metrics = pipeline.get_train_loss_dict(step=0)
    assert "pose_network" in pipeline.get_param_groups()
    assert float(metrics["pose_rotation_error_deg"]) < 0.1  # the test data's rough poses are its true ones
    losses["mask_loss"].backward()
    assert pipeline.model.pose_network.head[-1].weight.grad.abs().sum() > 0
    model, data = pipeline.model, pipeline.datamanager.train_data
    with torch.no_grad():
        model.pose_network.head[-1].bias[:] = torch.tensor([0.0, 0.1, 0.0])  # every view turns by 0.1 rad
    refined = model.refined_poses((data.images, data.masks), chunk=5)
    assert refined.shape == (len(data.images), 3, 4)
    errors = model.pose_errors((data.images, data.masks))
    assert abs(float(errors["pose_rotation_error_deg"]) - 5.73) < 0.05
    with pytest.raises(ValueError, match="every train view"):
        model.refined_poses()


def test_silhouette_loss_reaches_both_parts_of_the_pose_refinement(ellipsoids: Path):
    """The refined poses move the rays' sample positions; the SDF must keep that graph (rotation and translation)."""
    pipeline = small_training_pipeline(ellipsoids)
    _, losses, _ = pipeline.get_train_loss_dict(step=0)
    losses["mask_loss"].backward()
    grad = pipeline.model.camera_optimizer.pose_adjustment.grad
    assert grad[:, :3].abs().sum() > 0 and grad[:, 3:].abs().sum() > 0

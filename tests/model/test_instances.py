"""The instance that the gansvr and gansvr-voxel models render for the viewer: the dropdown only records a request,
frames encode the selection once per request and training step, held-out renderings keep it, and the gansvr
viewer's "uncertainty" output in each uncertainty mode."""

import json
import re
from types import SimpleNamespace

import pytest
import torch
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation

from gansvr_ns.data.datamanager import DataError
from gansvr_ns.data.format import load_rgb

METHODS = ["gansvr", "gansvr-voxel"]


def tiny_pipeline(data, method: str, **model_fields):
    """A CPU pipeline of `method` on `data`, small enough to render a 24 px view in a fraction of a second."""
    if method == "gansvr":
        from gansvr_ns.method_config import gansvr_config as trainer_config

        small = dict(num_samples=8, num_samples_importance=8)
    else:
        from gansvr_ns.voxel.method_config import gansvr_voxel_config as trainer_config

        small = dict(resolution=16, base_channels=32, min_channels=8, num_samples=24)
    config = trainer_config().pipeline
    config.datamanager.data = data
    config.datamanager.rays_per_view = 16
    for name, value in {"latent_dim": 32, "encoder_input_size": 32, **small, **model_fields}.items():
        setattr(config.model, name, value)
    torch.manual_seed(0)
    return config.setup(device="cpu", test_mode="val")


def count_encodings(model) -> list:
    """Record the image of every `selection_for` call of `model` (the list grows as the model encodes)."""
    images = []
    original = model.selection_for

    def selection_for(image):
        images.append(image)
        return original(image)

    model.selection_for = selection_for
    return images


def after_training_step(model, step: int) -> None:
    """Run the model's training callbacks as nerfstudio's trainer does around one iteration."""
    iteration = (TrainingCallbackLocation.BEFORE_TRAIN_ITERATION, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    for callback in model.get_training_callbacks(TrainingCallbackAttributes(None, None, None, None)):
        for location in iteration:
            callback.run_callback_at_location(step, location)


def input_image(data, instance_id: str) -> torch.Tensor:
    return torch.from_numpy(load_rgb(data / instance_id / "input.png")).permute(2, 0, 1)[None]


@pytest.mark.parametrize("method", METHODS)
def test_frames_encode_the_selection_once_per_request_and_training_step(ellipsoids, method):
    pipeline = tiny_pipeline(ellipsoids, method)
    model = pipeline.model.eval()
    splits = json.loads((ellipsoids / "dataset.json").read_text())["splits"]
    camera, _ = pipeline.datamanager.eval_image(0)
    encoded = count_encodings(model)

    first = model.get_outputs_for_camera(camera)["rgb"]
    torch.testing.assert_close(model.get_outputs_for_camera(camera)["rgb"], first)
    assert len(encoded) == 1 and model.selected_instance == splits["test"][0]
    torch.testing.assert_close(encoded[-1], input_image(ellipsoids, splits["test"][0]))

    other = splits["train"][1]
    model.instance_control.cb_hook(SimpleNamespace(value=other))  # what viser's thread runs: no encoding there
    assert len(encoded) == 1 and model.selected_instance == splits["test"][0]
    model.get_outputs_for_camera(camera)
    model.get_outputs_for_camera(camera)
    assert len(encoded) == 2 and model.selected_instance == other
    torch.testing.assert_close(encoded[-1], input_image(ellipsoids, other))

    after_training_step(model, 0)  # the parameters may have changed: the next frame encodes again, once
    kept = model.get_outputs_for_camera(camera)["rgb"]
    model.get_outputs_for_camera(camera)
    assert len(encoded) == 3

    pipeline.get_eval_image_metrics_and_images(0)  # a held-out view of another instance, then the viewer again
    assert len(encoded) == 4
    model.eval()  # the pipeline leaves the model in training mode; the viewer sets eval mode for every frame
    torch.testing.assert_close(model.get_outputs_for_camera(camera)["rgb"], kept)
    assert len(encoded) == 4 and model.selected_instance == other


@pytest.mark.parametrize("method", METHODS)
def test_a_loaded_checkpoint_is_encoded_once(ellipsoids, method):
    pipeline = tiny_pipeline(ellipsoids, method)
    model = pipeline.model.eval()
    camera, _ = pipeline.datamanager.eval_image(0)
    encoded = count_encodings(model)
    model.load_state_dict(model.state_dict())  # what ns-viewer and ns-export do
    assert len(encoded) == 1
    for _ in range(3):
        model.get_outputs_for_camera(camera)
    assert len(encoded) == 1


def test_an_unknown_instance_ends_the_program_with_one_line(ellipsoids, monkeypatch):
    model = tiny_pipeline(ellipsoids, "gansvr").model
    monkeypatch.setenv("GANSVR_INSTANCE", "no_such_car")
    with pytest.raises(DataError) as err:
        model.load_state_dict(model.state_dict())
    first_test = json.loads((ellipsoids / "dataset.json").read_text())["splits"]["test"][0]
    assert isinstance(err.value, SystemExit) and "\n" not in str(err.value)
    assert "unknown instance 'no_such_car'" in str(err.value) and first_test in str(err.value)


def render_non_square(pipeline):
    """The model's viewer outputs for a held-out camera cropped to 24 x 20 px (a transposed map would show)."""
    camera, _ = pipeline.datamanager.eval_image(0)
    camera.width = camera.width - 4
    return pipeline.model.eval().get_outputs_for_camera(camera)


def test_viewer_uncertainty_of_a_per_pixel_image_head_is_its_map_of_the_rendered_image(ellipsoids):
    pipeline = tiny_pipeline(ellipsoids, "gansvr", uncertainty="image", mask_uncertainty="pixel",
                             colour_uncertainty="pixel")
    outputs = render_non_square(pipeline)
    sigma = outputs["uncertainty"]
    assert sigma.shape == (24, 20, 1) and float(sigma.min()) >= pipeline.model.config.sigma_min
    with torch.no_grad():
        maps = lambda t: t.permute(2, 0, 1)[None]  # noqa: E731
        expected = pipeline.model.image_uncertainty(maps(outputs["rgb"]), maps(outputs["accumulation"]))
    torch.testing.assert_close(sigma[..., 0], expected[0, 0])
    torch.testing.assert_close(outputs["mask_uncertainty"][..., 0], expected[0, 1])


def test_viewer_uncertainty_of_a_per_view_colour_sigma_is_one_value_the_maps_mean_inside_the_opacity(ellipsoids):
    pipeline = tiny_pipeline(ellipsoids, "gansvr", uncertainty="image", colour_uncertainty="view")
    outputs = render_non_square(pipeline)
    with torch.no_grad():
        maps = lambda t: t.permute(2, 0, 1)[None]  # noqa: E731
        expected = pipeline.model.image_uncertainty(maps(outputs["rgb"]), maps(outputs["accumulation"]))[0, 0]
    inside = outputs["accumulation"][..., 0] > 0.5
    assert inside.any() and not inside.all()
    torch.testing.assert_close(outputs["uncertainty"][..., 0], expected[inside].mean().expand(24, 20))


def test_viewer_uncertainty_of_the_field_is_rendered(ellipsoids):
    pipeline = tiny_pipeline(ellipsoids, "gansvr", uncertainty="field")
    sigma = render_non_square(pipeline)["uncertainty"]
    assert sigma.shape == (24, 20, 1) and float(sigma.min()) >= pipeline.model.config.sigma_min


def test_viewer_has_no_uncertainty_without_a_model_of_it(ellipsoids):
    outputs = render_non_square(tiny_pipeline(ellipsoids, "gansvr", uncertainty="none"))
    assert set(outputs) >= {"rgb", "normals", "depth", "accumulation"} and "uncertainty" not in outputs


def test_a_checkpoint_of_other_shapes_is_refused_in_one_line(ellipsoids):
    from tests.conftest import small_training_pipeline

    pipeline = small_training_pipeline(ellipsoids)
    state = {f"module.{key}": value.clone() for key, value in pipeline.state_dict().items()}
    pipeline.load_pipeline(state, step=3)  # its own shapes load
    key = next(key for key in state if key.endswith("searched_rotations"))
    state[key] = state[key][:2]  # as from a dataset with 2 train views
    expected = list(pipeline.state_dict()[key.removeprefix("module.")].shape)
    message = rf"^gansvr: the checkpoint loaded does not fit this run: its {re.escape(key[7:])} has shape \[2, 3, 3\], "
    with pytest.raises(DataError, match=message + re.escape(f"this run's {expected}")):
        pipeline.load_pipeline(state, step=3)


@pytest.mark.parametrize("settings, message", [
    ({"num_samples": 1}, "--pipeline.model.num-samples must be at least 2, got 1"),
    ({"num_samples_importance": 0}, "--pipeline.model.num-samples-importance must be a positive multiple of"),
    ({"num_samples_importance": 3}, r"num-upsample-steps \(2\), got 3"),
    ({"num_upsample_steps": 0}, "--pipeline.model.num-upsample-steps must be at least 1, got 0"),
    ({"latent_dim": 1}, "--pipeline.model.latent-dim must be at least 2, got 1"),
    ({"pose_search_resolution": 1}, "--pipeline.model.pose-search-resolution must be at least 2, got 1"),
    ({"pose_search_span": -5.0}, "--pipeline.model.pose-search-span must be positive, got -5"),
    ({"latent_contrast_temperature": 0.0}, "--pipeline.model.latent-contrast-temperature must be positive, got 0"),
    ({"sdf_silhouette_alpha": (0.0, 0.0)}, "--pipeline.model.sdf-silhouette-alpha must be positive, got 0"),
    ({"sigma_min": -1.0}, "--pipeline.model.sigma-min must be positive, got -1"),
    ({"sdf_field": {"num_layers": 0}}, "--pipeline.model.sdf-field.num-layers must be at least 1, got 0"),
    ({"sdf_field": {"softplus_beta": 0.0}}, "--pipeline.model.sdf-field.softplus-beta must be positive, got 0"),
    ({"sdf_field": {"latent_grid_resolution": 1}}, "latent-grid-resolution must be 0 \\(no grid\\) or at least 2"),
    ({"uncertainty": "none", "mask_uncertainty": "pixel"}, "it needs --pipeline.model.uncertainty image, not none"),
])
def test_model_settings_that_cannot_train_are_refused_in_one_line(settings, message):
    from dataclasses import replace

    from gansvr_ns.model.field import SDFFieldConfig
    from gansvr_ns.model.gansvr_model import GanSvrModelConfig, check_model_config

    check_model_config(GanSvrModelConfig())  # the defaults pass
    settings = dict(settings)
    field_settings = settings.pop("sdf_field", {})
    config = replace(GanSvrModelConfig(), sdf_field=SDFFieldConfig(**field_settings), **settings)
    with pytest.raises(DataError, match=f"^gansvr: .*{message}"):
        check_model_config(config)


def test_pipeline_settings_that_cannot_train_or_evaluate_are_refused_in_one_line(ellipsoids):
    from tests.conftest import small_training_pipeline

    def no_eval_images(config):
        config.pipeline.num_eval_images = 0

    def prior_without_hulls(config):
        config.pipeline.model.hull_prior_mult = 1.0
        config.pipeline.datamanager.instance_hull_resolution = 0

    with pytest.raises(DataError, match="^gansvr: --pipeline.num-eval-images must be at least 1, got 0$"):
        small_training_pipeline(ellipsoids, no_eval_images)
    with pytest.raises(DataError, match="instance-hull-resolution must be at least 2, got 0$"):
        small_training_pipeline(ellipsoids, prior_without_hulls)
    pipeline = small_training_pipeline(ellipsoids, lambda config: setattr(config.pipeline, "num_eval_images", 1))
    metrics = pipeline.get_average_eval_image_metrics(get_std=True)
    assert all(metrics[key] == 0.0 for key in metrics if key.endswith("_std"))  # one view: no spread, not NaN

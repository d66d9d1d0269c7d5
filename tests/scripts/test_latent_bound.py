"""`scripts/benchmark.py latent-bound`: latents fitted to every view of a test instance, the decoder frozen."""

import json
from pathlib import Path

import torch

from gansvr_ns.data import format as fmt
from gansvr_ns.scripts.reconstruct import load_pipeline
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")


def tiny_run(ablation_run) -> Path:
    _, _, output, _ = ablation_run
    return Path(json.loads(output.read_text())["variants"]["no_pose_refinement"]["seeds"]["0"]["config"])


def test_fit_latent_lowers_the_loss_and_leaves_the_model_alone(ablation_run):
    _, data, _, _ = ablation_run
    pipeline = load_pipeline(tiny_run(ablation_run))
    model = pipeline.model
    info = fmt.read_dataset(data)
    instance = info.instances("test")[0]
    cameras, _, images, masks = benchmark.instance_views(info, instance)
    start = model.encode(torch.from_numpy(fmt.load_rgb(data / instance / "input.png")).permute(2, 0, 1)[None]).detach()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    selected = model.field.selected
    # every pixel in every step: the same batch each time, so the loss may only fall at a small step size
    latent, history = benchmark.fit_latent(model, cameras, images, masks, start, steps=6, rays=masks.numel(), lr=1e-2)
    assert len(history) == 6
    assert history[-1] < history[0]
    assert latent.shape == start.shape and not torch.allclose(latent, start)
    # the fitted latent stays in the encoder's space: zero mean, unit variance over its dimensions
    assert abs(float(latent.mean())) < 1e-4 and abs(float(latent.std(unbiased=False)) - 1.0) < 1e-3
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.field.parameters())
    assert model.field.selected is selected


def test_latent_bound_of_a_trained_run(ablation_run, tmp_path, capsys):
    _, data, _, _ = ablation_run
    out = tmp_path / "bound"
    result = benchmark.LatentBound(load_config=tiny_run(ablation_run), steps=2, rays=64, resolution=32,
                                   max_instances=1, output_dir=out).main()
    first = fmt.read_dataset(data).instances("test")[0]
    assert result["instances"] == [first]
    assert list(result["rows"]) == ["the encoder's latent of the input image",
                                    "latent fitted to its 4 views, true poses",
                                    "latent fitted to its 4 views, rough poses"]
    assert all(row["chamfer_ratio"] > 0 for row in result["rows"].values())
    assert result["latent_moved"]["true"] > 0 and result["latent_moved"]["rough"] > 0
    for folder in ("own", "fitted-true", "fitted-rough"):
        assert [p.name for p in (out / folder).glob("*.ply")] == [f"{first}.ply"]
    assert json.loads((out / "latent_bound.json").read_text())["steps"] == 2
    assert "latent fitted to its 4 views, true poses" in capsys.readouterr().out

"""`scripts/benchmark.py encoder-probe`: can the image encoder tell the generator's subtypes apart."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gansvr_ns.data import format as fmt
from tests.conftest import make_ellipsoid_dataset
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")


def test_nearest_subtype_accuracy():
    keys = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    subtypes = {"a": "van", "b": "sedan", "c": "van", "q1": "van", "q2": "van", "q3": "sedan"}
    queries = torch.tensor([[1.0, 0.0], [9.0, 0.0], [0.0, 9.0]])  # nearest: a (van), b (sedan), c (van)
    assert benchmark.nearest_subtype_accuracy(queries, ["q1", "q2", "q3"], keys, ["a", "b", "c"], subtypes) == 1 / 3


def test_view_spread():
    # two instances, two images each: within-instance pairs are 1 apart, between-instance pairs 10 or sqrt(101)
    latents = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 10.0], [1.0, 10.0]])
    within, between = benchmark.view_spread(latents, ["a", "a", "b", "b"])
    assert within == pytest.approx(1.0)
    assert between == pytest.approx((10.0 + 101.0**0.5) / 2)


def shaded_dataset(out: Path) -> Path:
    """Ellipsoids whose every image is dark for subtype "dark" and light for "light", a subtype any encoder learns,
    and whose every mask is the image's top half for "dark" and its bottom half for "light"."""
    data = make_ellipsoid_dataset(out, num_instances=16, views=3, size=24)
    info = json.loads((data / "dataset.json").read_text())
    ids = sorted(i for split in info["splits"].values() for i in split)
    subtypes = {i: ("dark", "light")[k % 2] for k, i in enumerate(ids)}
    for i, name in subtypes.items():
        for path in [data / i / "input.png", *(data / i / "views").glob("*.png")]:
            fmt.save_rgb(path, np.full((24, 24, 3), 0.1 if name == "dark" else 0.9, dtype=np.float32))
        mask = np.zeros((24, 24), dtype=bool)
        mask[:12] = True
        for path in [data / i / "input_mask.png", *(data / i / "masks").glob("*.png")]:
            fmt.save_mask(path, mask if name == "dark" else ~mask)
    info["generator"] = {"name": "test", "subtypes": subtypes}
    fmt.write_json(data / "dataset.json", info)
    return data


def test_probe_learns_a_subtype_the_images_show(tmp_path, capsys):
    data = shaded_dataset(tmp_path / "shaded")
    out = tmp_path / "probe.json"
    result = benchmark.EncoderProbe(data=data, steps=30, batch_size=8, report_every=15, output=out).main()
    assert [c["step"] for c in result["classifier"]] == [15, 30]
    assert result["classifier"][-1]["held_out_accuracy"] == 1.0
    assert result["held_out_images"] == 4 * sum(len(json.loads((data / "dataset.json").read_text())["splits"][s])
                                                for s in ("val", "test"))
    assert json.loads(out.read_text())["subtypes"] == ["dark", "light"]
    assert result["classifier"][-1]["train_accuracy"] == 1.0
    # a held-out input mask equals every train mask of its subtype
    assert result["silhouette_retrieval_accuracy"] == 1.0
    assert "held-out 1.000" in capsys.readouterr().out


def test_probe_needs_subtypes(tmp_path):
    data = make_ellipsoid_dataset(tmp_path / "ellipsoids", num_instances=8, views=3, size=24)
    with pytest.raises(SystemExit, match="generator.subtypes"):
        benchmark.EncoderProbe(data=data, steps=2, output=tmp_path / "probe.json").main()
    assert not (tmp_path / "probe.json").exists()


def test_probe_of_a_trained_run(ablation_run, tmp_path):
    _, data, output, _ = ablation_run
    config = Path(json.loads(output.read_text())["variants"]["no_pose_refinement"]["seeds"]["0"]["config"])
    info = json.loads((data / "dataset.json").read_text())
    result = benchmark.EncoderProbe(data=data, steps=0, load_config=config, output=tmp_path / "probe.json").main()
    assert result["classifier"] == []  # steps 0: only the run's latents are probed
    assert result["run"]["held_out_inputs"] == len(info["splits"]["val"]) + len(info["splits"]["test"])
    assert 0.0 <= result["run"]["nearest_neighbour_accuracy"] <= 1.0
    assert 0.0 < result["run"]["latent_distance_within_instance"]
    assert 0.0 < result["run"]["latent_distance_between_instances"]
    assert 0.0 < result["input_majority_accuracy"] <= 1.0

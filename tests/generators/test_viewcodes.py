"""Label files, w+ view mixing and the `gansvr-viewcodes` script."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gansvr_ns.data.format import FormatError
from gansvr_ns.generators.viewcodes import (
    check_against_generator,
    load_view_codes,
    mix_views,
    parse_view_codes,
    seed_to_z,
    view_code_ws,
)
from gansvr_ns.scripts import viewcodes as script
from tests.generators.conftest import NARROW_ARCH, random_generator

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "viewcodes"


def test_label_file_with_defaults_seeds_w_and_input_codes():
    data = {"view_codes": [{"seed": 11, "azimuth_deg": 0, "elevation_deg": 10},
                           {"w": [0.5, -1.0], "azimuth_deg": 90, "elevation_deg": 5, "_comment": "ok"},
                           {"seed": 12, "azimuth_deg": 180, "elevation_deg": 0, "input_only": True}],
            "_note": "comments are ignored"}
    codes = parse_view_codes(data)
    assert (codes.mix_layers, codes.truncation) == (4, 0.7)
    assert [c.seed for c in codes.views] == [11, None] and codes.views[1].w == (0.5, -1.0)
    assert [c.seed for c in codes.inputs] == [12]


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"view_codes": []}, "view_codes must be a non-empty list"),
        ({"view_codes": [{"seed": 1, "azimuth_deg": 0}]}, r"view_codes\[0\] is missing elevation_deg"),
        ({"view_codes": [{"seed": 1, "w": [1.0], "azimuth_deg": 0, "elevation_deg": 0}]}, "exactly one of"),
        ({"view_codes": [{"seed": 1, "azimuth": 0, "elevation_deg": 0}]}, r"unknown key\(s\) azimuth"),
        ({"view_codes": [{"seed": 1, "azimuth_deg": 0, "elevation_deg": 95}]}, r"must lie in \[-90, 90\]"),
        ({"view_codes": [{"seed": -1, "azimuth_deg": 0, "elevation_deg": 0}]}, "seed must be an integer"),
        ({"view_codes": [{"seed": 1, "azimuth_deg": "front", "elevation_deg": 0}]}, "azimuth_deg must be a finite"),
        ({"view_codes": [{"seed": 3, "azimuth_deg": 0, "elevation_deg": 0},
                         {"seed": 3, "azimuth_deg": 90, "elevation_deg": 0}]}, r"view_codes\[1\] repeats"),
        ({"view_codes": [{"seed": 3, "azimuth_deg": 0, "elevation_deg": 0, "input_only": True}]}, "input_only"),
        ({"view_codes": [{"seed": 3, "azimuth_deg": 0, "elevation_deg": 0}], "truncation": 1.5}, r"in \(0, 1\]"),
        ({"view_codes": [{"seed": 3, "azimuth_deg": 0, "elevation_deg": 0}], "mix_layer": 3}, "unknown key"),
        ({"view_codes": [{"seed": 3, "azimuth_deg": 0, "elevation_deg": 0}], "mix_layers": 0}, "positive integer"),
    ],
)
def test_bad_label_files_give_one_line_naming_the_file(data, problem, tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=problem) as err:
        load_view_codes(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_label_file_must_fit_the_generator(tmp_path):
    codes = parse_view_codes({"view_codes": [{"w": [0.0] * 3, "azimuth_deg": 0, "elevation_deg": 0}]})
    with pytest.raises(FormatError, match=r"view_codes\[0\].w has 3 values.*style_dim is 32"):
        check_against_generator(codes, 32, 8, "labels.json")
    codes = parse_view_codes({"view_codes": [{"seed": 0, "azimuth_deg": 0, "elevation_deg": 0}], "mix_layers": 8})
    with pytest.raises(FormatError, match="mix_layers 8 must be below the generator's 8 w\\+ rows"):
        check_against_generator(codes, 32, 8, "labels.json")


def test_example_label_files_are_valid():
    paths = sorted(CONFIGS.glob("*.json"))
    assert paths
    for path in paths:
        assert load_view_codes(path).views


def test_seed_follows_the_numpy_random_state_convention():
    expected = np.random.RandomState(7).randn(16).astype(np.float32)
    assert np.array_equal(seed_to_z(7, 16).numpy(), expected)


def test_view_mixing_changes_only_the_coarse_rows():
    content, views = torch.randn(32), torch.randn(3, 32)
    w_plus = mix_views(content, views, n_latent=8, mix_layers=4)
    assert w_plus.shape == (3, 8, 32)
    assert torch.equal(w_plus[:, :4], views[:, None].expand(3, 4, 32))
    assert torch.equal(w_plus[:, 4:], content.expand(3, 4, 32))
    with pytest.raises(ValueError, match="mix_layers"):
        mix_views(content, views, n_latent=8, mix_layers=8)


def test_view_codes_change_the_image_of_one_content():
    generator = random_generator(NARROW_ARCH)
    codes = parse_view_codes({"view_codes": [{"seed": 1, "azimuth_deg": 0, "elevation_deg": 0},
                                             {"w": [0.1] * 32, "azimuth_deg": 90, "elevation_deg": 0}]})
    ws = view_code_ws(codes.views, generator)
    torch.testing.assert_close(ws[0], generator.map(seed_to_z(1, 32)[None])[0])
    assert torch.equal(ws[1], torch.full((32,), 0.1))
    content = generator.map(torch.randn(1, 32))[0]
    with torch.no_grad():
        images = generator(generator.truncate(mix_views(content, ws, generator.n_latent, 4), 0.7))
        same = generator(generator.truncate(mix_views(content, ws[:1].expand(2, 32), generator.n_latent, 4), 0.7))
    assert not torch.allclose(images[0], images[1], atol=1e-3)
    assert torch.equal(same[0], same[1])


def _run(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["gansvr-viewcodes", *argv])
    script.entrypoint()


def test_contact_sheet_of_a_seed_range(artefacts, tmp_path, monkeypatch):
    out = tmp_path / "sheet.png"
    _run(monkeypatch, "sheet", "--checkpoint", str(artefacts / "narrow.pt"), "--num-seeds", "5", "--columns", "2",
         "--tile", "16", "--content-seeds", "1", "2", "--out", str(out), "--device", "cpu")
    with Image.open(out) as sheet:
        # 2 columns of cells 2 tiles (32 px) + 6 px gap wide; 3 rows of 16 px + 16 px caption.
        assert sheet.size == (2 * 38 - 6, 3 * 32)
        pixels = np.asarray(sheet.convert("RGB"))
    assert pixels[:16, :32].std() > 0  # a rendered tile, not blank


def test_contact_sheet_of_a_label_file_and_validation(artefacts, tmp_path, monkeypatch, capsys):
    labels = artefacts / "labels.json"
    _run(monkeypatch, "sheet", "--checkpoint", str(artefacts / "narrow.pt"), "--view-codes", str(labels),
         "--tile", "16", "--columns", "4", "--out", str(tmp_path / "check.png"), "--device", "cpu")
    with Image.open(tmp_path / "check.png") as sheet:
        assert sheet.size == (4 * 54 - 6, 2 * 32)
    summary = script.ValidateConfig(labels, checkpoint=artefacts / "narrow.pt").run()
    assert summary[1] == "8 pseudo-view codes, 0 input-only codes"
    assert "largest azimuth gap 45 deg" in summary[2]


def test_validate_reports_a_bad_file_in_one_line(artefacts, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"view_codes": [{"w": [1.0, 2.0], "azimuth_deg": 0, "elevation_deg": 0}]}))
    with pytest.raises(SystemExit) as exit_info:
        _run(monkeypatch, "validate", str(bad), "--checkpoint", str(artefacts / "narrow.pt"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {bad}: view_codes[0].w has 2 values, the generator's style_dim is 32"

"""Dataset presets: the shipped files, loading errors, path resolution, generation, and a light import."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gansvr_ns.data import format as fmt
from gansvr_ns.data import presets


def test_shipped_presets_describe_gan_like_datasets(tmp_path):
    assert {"gan-car", "gan-chair", "gan-airplane"} <= set(presets.preset_names())
    for name in ("gan-car", "gan-chair", "gan-airplane"):
        config = presets.load_preset(name, tmp_path / name)
        assert config.category == name.removeprefix("gan-") and config.out == tmp_path / name
        assert config.num_instances >= 64 and config.views >= 10 and config.resolution >= 64
        assert 5.0 <= config.pose_noise_deg <= 10.0
        assert min(config.color_flaw_fraction, config.blob_fraction, config.mask_flaw_fraction) > 0.0
        assert isinstance(config.split_fractions, tuple) and isinstance(config.elevation_range, tuple)


@pytest.fixture
def preset_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "presets"
    folder.mkdir()
    monkeypatch.setattr(presets, "PRESET_DIR", folder)
    return folder


def test_bad_presets_fail_with_one_line_naming_the_file(tmp_path, preset_dir):
    (preset_dir / "broken.json").write_text("{not json")
    (preset_dir / "typo.json").write_text(json.dumps({"category": "car", "num_instance": 3}))
    (preset_dir / "wrong.json").write_text(json.dumps({"category": "car", "views": 0}))
    (preset_dir / "list.json").write_text("[1, 2]")
    (preset_dir / "sets-out.json").write_text(json.dumps({"out": "/elsewhere"}))
    cases = {
        "broken": "not valid JSON",
        "typo": "unknown option 'num_instance'",
        "wrong": "views must be >= 1",
        "list": "JSON object",
        "sets-out": "unknown option 'out'",
        "absent": "unknown preset 'absent'",
    }
    for name, words in cases.items():
        with pytest.raises(ValueError) as err:
            presets.load_preset(name, tmp_path / "out")
        message = str(err.value)
        assert words in message and str(preset_dir / f"{name}.json") in message and "\n" not in message
    assert "available: broken, list, sets-out, typo, wrong" in str(err.value)


def test_resolve_preset_path(tmp_path):
    assert presets.resolve_preset_path(tmp_path / "data" / "gan-car") == "gan-car"
    assert presets.resolve_preset_path(tmp_path / "data" / "my-cars") is None
    (tmp_path / "gan-car").mkdir()
    assert presets.resolve_preset_path(tmp_path / "gan-car") is None


def test_generate_preset_announces_and_writes_a_dataset(tmp_path, preset_dir, capsys):
    options = {"category": "airplane", "num_instances": 3, "views": 2, "resolution": 16, "seed": 2,
               "pose_noise_deg": 5.0, "blob_fraction": 0.5}
    (preset_dir / "tiny-plane.json").write_text(json.dumps(options))
    out = tmp_path / "data" / "tiny-plane"
    assert presets.resolve_preset_path(out) == "tiny-plane"
    assert presets.generate_preset("tiny-plane", out) == out
    assert f"Generating preset tiny-plane at {out} ..." in capsys.readouterr().out
    info = fmt.read_dataset(out)
    assert info.category == "airplane" and info.image_size == (16, 16)
    assert info.generator["pose_noise_deg"] == 5.0 and info.generator["seed"] == 2
    assert len(fmt.read_instance(info, info.splits["train"][0]).views) == 2
    assert presets.resolve_preset_path(out) is None


def test_module_imports_without_numpy_or_torch():
    code = (
        "import sys, gansvr_ns.data.presets as presets\n"
        "presets.preset_names()\n"
        "print('torch' in sys.modules, 'numpy' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_a_dataset_from_an_older_preset_is_used_with_a_one_line_note(tmp_path, preset_dir, capsys):
    from gansvr_ns.data.dataparser import ensure_dataset

    options = {"category": "car", "num_instances": 3, "views": 2, "resolution": 16,
               "split_fractions": [0.34, 0.33, 0.33]}
    (preset_dir / "tiny-car.json").write_text(json.dumps(options))
    out = tmp_path / "data" / "tiny-car"
    presets.generate_preset("tiny-car", out)
    capsys.readouterr()
    assert presets.preset_mismatch(out) is None  # generated from the preset as it is
    assert ensure_dataset(out) == out and capsys.readouterr().out == ""
    (preset_dir / "tiny-car.json").write_text(json.dumps({**options, "views": 10, "split_fractions": [0.8, 0.1, 0.1]}))
    note = presets.preset_mismatch(out)
    assert note is not None and "\n" not in note and str(out) in note
    assert "views 2 (preset: 10)" in note and "split_fractions [0.34, 0.33, 0.33] (preset: [0.8, 0.1, 0.1])" in note
    assert "num_instances" not in note
    ensure_dataset(out)
    ensure_dataset(out)  # the other split: the note is printed once
    assert capsys.readouterr().out == note + "\n"
    assert fmt.read_dataset(out).generator["views"] == 2  # used as it is, not regenerated
    other = tmp_path / "data" / "my-cars"
    out.rename(other)
    assert presets.preset_mismatch(other) is None  # not named like a preset

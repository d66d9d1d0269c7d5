"""Output names of `gansvr-reconstruct`: one distinct name per image, never a dataset instance's id."""

from pathlib import Path

from gansvr_ns.scripts.reconstruct import output_names


def test_unique_stems_are_kept():
    assert output_names([Path("a/car.png"), Path("b/bus.jpg")], taken=set()) == ["car", "bus"]


def test_repeated_stems_take_their_folder_then_extension_then_a_number(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    names = output_names([Path("x/car.png"), Path("y/car.png"), Path("a.png"), Path("a.jpg"), Path("b.png"),
                          Path("/elsewhere/here/b.png")], taken=set())
    # a relative path's folder is the working directory's ("here"), not "": a.png and a.jpg share it, and the two
    # b.png share folder and extension
    assert names == ["x_car", "y_car", "a_png", "a_jpg", "b_2", "b_3"]


def test_a_dataset_instance_id_is_not_reused():
    names = output_names([Path("photos/car_0001.png")], taken={"car_0001"})
    assert names == ["photos_car_0001"]
    assert output_names([Path("car_0001/x.png"), Path("car_0001/x.jpg")], taken={"car_0001_x"}) == ["x_png", "x_jpg"]


def test_every_name_is_distinct_even_when_all_levels_collide():
    images = [Path("d/a.png"), Path("d/a.png"), Path("e/d/a.png")]
    names = output_names(images, taken={"a"})
    assert len(set(names)) == 3 and "a" not in names

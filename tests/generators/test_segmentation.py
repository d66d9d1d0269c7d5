"""DeepLabV3 masks: VOC classes, loading from a local file only, post-processing."""

import numpy as np
import pytest
import torch

from gansvr_ns.generators import segmentation as seg


def test_category_to_voc_class():
    assert seg.voc_class_index("car") == 7 and seg.VOC_CLASSES[7] == "car"
    assert seg.voc_class_index("Airplane") == 1 and seg.voc_class_index("motorcycle") == 14
    with pytest.raises(ValueError, match="'church' is not a Pascal VOC class"):
        seg.voc_class_index("church")


def test_clean_mask_keeps_the_largest_component_and_fills_its_holes():
    mask = np.zeros((9, 12), dtype=bool)
    mask[1:8, 1:8] = True
    mask[4, 4] = False  # a hole
    mask[2:4, 10:12] = True  # a smaller blob
    cleaned = seg.clean_mask(mask)
    expected = np.zeros_like(mask)
    expected[1:8, 1:8] = True
    assert np.array_equal(cleaned, expected)
    assert not seg.clean_mask(np.zeros((4, 4), dtype=bool)).any()


def test_resize_masks_uses_coverage():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :, :3] = True  # output column 0 is fully covered, column 1 half: 0.5 is not above 0.5
    assert seg.resize_masks(mask, (2, 2)).tolist() == [[[True, False], [True, False]]]
    mask[0, 0, 3] = True  # now the top-right output pixel is 3/4 covered
    assert seg.resize_masks(mask, (2, 2)).tolist() == [[[True, True], [True, False]]]
    assert seg.resize_masks(mask, (4, 4)) is mask


@pytest.fixture(scope="module")
def mobilenet_state():
    torch.manual_seed(0)
    return seg.build_segmenter("mobilenet_v3_large", aux_loss=False).state_dict()


def test_load_segmenter_infers_backbone_and_aux_head(artefacts, mobilenet_state, tmp_path):
    with_aux = seg.load_segmenter(artefacts / "deeplab.pt")  # saved with an auxiliary head
    assert with_aux.aux_classifier is None  # dropped after a strict load
    torch.save({"model": mobilenet_state}, tmp_path / "reference_training.pth")
    model = seg.load_segmenter(tmp_path / "reference_training.pth", arch="mobilenet_v3_large")
    assert torch.equal(model.classifier[4].weight, mobilenet_state["classifier.4.weight"])
    masks = seg.predict_class_mask(model, torch.rand(2, 3, 24, 40), seg.voc_class_index("car"))
    assert masks.shape == (2, 24, 40) and masks.dtype == torch.bool
    with torch.device("meta"):
        resnet_keys = dict.fromkeys(seg.build_segmenter("resnet50", aux_loss=False).state_dict())
    assert seg.infer_segmenter_arch(resnet_keys, "x") == "resnet50"


def test_bad_segmenter_weights_are_named(mobilenet_state, tmp_path):
    path = tmp_path / "deeplab.pt"
    broken = dict(mobilenet_state)
    broken.pop("classifier.4.bias")
    broken["classifier.0.project.0.weight"] = torch.zeros(3)
    torch.save(broken, path)
    with pytest.raises(ValueError) as err:
        seg.load_segmenter(path)
    assert str(err.value) == (f"{path}: does not match DeepLabV3 mobilenet_v3_large: missing classifier.4.bias; "
                              "wrong shape classifier.0.project.0.weight")
    torch.save(mobilenet_state, path)
    with pytest.raises(ValueError, match="holds DeepLabV3 mobilenet_v3_large weights, but --segmenter-arch is"):
        seg.load_segmenter(path, arch="resnet50")
    torch.save({k: v for k, v in mobilenet_state.items() if not k.startswith("backbone.")}, path)
    with pytest.raises(ValueError, match="not a torchvision DeepLabV3"):
        seg.load_segmenter(path)
    with pytest.raises(ValueError, match="segmenter weights file is missing"):
        seg.load_segmenter(tmp_path / "absent.pt")

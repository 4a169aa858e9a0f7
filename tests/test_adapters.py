"""Feature-pyramid adapters: SFP / FPN shapes and names, torchvision Mask R-CNN on zoo backbones."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

import zoo
from zoo.adapters import FPN, SimpleFeaturePyramid, create_pyramid


# One plain backbone (ViTDet, through its own simple feature pyramid) and one hierarchical zoo family (NAT,
# the DESIGN example, through an FPN on its four stages).
BACKBONES = {
    "test_vitdet": lambda out_channels: create_pyramid("test_vitdet", out_channels=out_channels),
    "test_nat": lambda out_channels: create_pyramid("test_nat", out_channels=out_channels),
}


def test_simple_feature_pyramid_keys_follow_detectron2():
    sfp = SimpleFeaturePyramid(64, 32)
    keys = set(sfp.state_dict())
    for k in ("simfp_2.0.weight", "simfp_2.1.weight", "simfp_2.3.weight", "simfp_2.4.weight", "simfp_2.4.norm.weight",
              "simfp_2.5.weight", "simfp_3.0.weight", "simfp_3.1.norm.bias", "simfp_4.0.weight", "simfp_4.1.weight",
              "simfp_5.1.weight", "simfp_5.2.norm.weight"):
        assert k in keys, k
    out = sfp(torch.randn(2, 64, 5, 7))
    assert isinstance(out, OrderedDict) and list(out) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(20, 28), (10, 14), (5, 7), (2, 3), (1, 2)]
    assert all(v.shape[1] == 32 for v in out.values())


def test_fpn_shapes_on_odd_sizes():
    fpn = FPN([8, 16, 24, 32], out_channels=12)
    feats = [torch.randn(1, c, s, t) for c, (s, t) in zip([8, 16, 24, 32], [(25, 30), (13, 15), (7, 8), (4, 4)])]
    out = fpn(feats)
    assert list(out) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape) for v in out.values()] == [
        (1, 12, 25, 30), (1, 12, 13, 15), (1, 12, 7, 8), (1, 12, 4, 4), (1, 12, 2, 2)]


def test_create_pyramid_on_a_single_scale_backbone_uses_a_simple_feature_pyramid():
    body = zoo.create_model("test_vitdet", pyramid=False, features_only=True)
    pyr = create_pyramid(body, out_channels=8)
    assert isinstance(pyr.neck, SimpleFeaturePyramid)
    out = pyr(torch.randn(1, 3, 64, 96))
    assert [tuple(v.shape) for v in out.values()] == [
        (1, 8, 16, 24), (1, 8, 8, 12), (1, 8, 4, 6), (1, 8, 2, 3), (1, 8, 1, 2)]


def test_create_pyramid_uses_vitdets_own_pyramid():
    pyr = create_pyramid("test_vitdet", out_channels=8)
    assert pyr.neck is None and pyr.out_channels == 8
    out = pyr(torch.randn(1, 3, 64, 64))
    assert list(out) == ["0", "1", "2", "3", "pool"] and all(v.shape[1] == 8 for v in out.values())


def _targets(images):
    targets = []
    for i, img in enumerate(images):
        h, w = img.shape[-2:]
        boxes = torch.tensor([[4.0 + i, 6.0, w / 2, h / 2 + i], [w / 3, h / 4, w - 3.0, h - 5.0]])
        masks = torch.zeros(2, h, w, dtype=torch.uint8)
        for j, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
            masks[j, y0:y1, x0:x1] = 1
        targets.append(dict(boxes=boxes, labels=torch.tensor([1, 5 + i]), masks=masks))
    return targets


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_torchvision_mask_rcnn_trains_and_infers(backbone):
    detection = pytest.importorskip("torchvision.models.detection")
    torch.manual_seed(0)
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

    body = BACKBONES[backbone](16)
    # narrow box and mask heads keep the test fast; the backbone contract is what is under test
    model = detection.MaskRCNN(
        body, num_classes=None, min_size=72, max_size=120,  # 91 classes, set by the predictors
        box_head=TwoMLPHead(16 * 7 * 7, 64), box_predictor=FastRCNNPredictor(64, 91),
        mask_head=MaskRCNNHeads(16, (16, 16), 1), mask_predictor=MaskRCNNPredictor(16, 16, 91),
        rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50, box_batch_size_per_image=32, box_detections_per_img=10,
        box_score_thresh=0.0)
    # non-square sizes that are not multiples of 32 (the transform resizes and pads them)
    images = [torch.rand(3, 72, 101), torch.rand(3, 83, 61)]
    model.train()
    losses = model(images, _targets(images))
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in body.body.parameters())
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o, img in zip(out, images):
        assert {"boxes", "labels", "scores", "masks"} <= set(o)
        assert o["masks"].shape[-2:] == img.shape[-2:]

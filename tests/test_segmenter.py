"""Mask2Former / MaskFormer from transformers on zoo backbones (the optional zoo[seg] extra)."""

import pytest
import torch

import zoo
from zoo.registry import model_entry, test_models

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install 'zoo[seg]')")

from zoo.segmenter import segmenter_backbone  # noqa: E402

def _is_pyramid(name):
    """features_only gives NCHW levels at (at least) four distinct strides."""
    return len({f["reduction"] for f in zoo.registry.measure(name)["feature_info"]}) >= 4


# one test configuration per family whose features_only output is a 4-level NCHW pyramid
BACKBONES = list({model_entry(n).family: n for n in reversed(test_models())
                  if model_entry(n).task in ("classification", "dense") and _is_pyramid(n)}.values())
SMALL_HEAD = dict(num_queries=8, decoder_layers=2, encoder_layers=1, hidden_dim=32, mask_feature_size=32,
                  feature_size=32, dim_feedforward=64, encoder_feedforward_dim=64, num_attention_heads=2,
                  train_num_points=256)
SIZE = (72, 104)  # non-square, not a multiple of 32


def _targets(batch):
    g = torch.Generator().manual_seed(0)
    masks = [(torch.rand(2, *SIZE, generator=g) > 0.5).float() for _ in range(batch)]
    classes = [torch.tensor([1, 2]) for _ in range(batch)]
    return masks, classes


@pytest.mark.parametrize("backbone", BACKBONES)
def test_mask2former_trains_and_post_processes(backbone):
    model = zoo.create_segmenter(backbone, "mask2former", num_labels=4, **SMALL_HEAD)
    x = torch.randn(2, 3, *SIZE)
    masks, classes = _targets(2)
    out = model(pixel_values=x, mask_labels=masks, class_labels=classes)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None for p in segmenter_backbone(model).parameters())
    model.eval()
    with torch.no_grad():
        pred = model(pixel_values=x)
    processor = zoo.create_segmentation_processor("mask2former")
    seg = processor.post_process_semantic_segmentation(pred, target_sizes=[SIZE, SIZE])
    assert seg[0].shape == SIZE and seg[0].dtype in (torch.int64, torch.long)


def test_maskformer_trains_and_post_processes():
    backbone = BACKBONES[0]
    small = dict(num_queries=8, decoder_config=dict(decoder_layers=2, d_model=32, encoder_ffn_dim=64,
                                                    decoder_ffn_dim=64, decoder_attention_heads=2,
                                                    encoder_attention_heads=2), mask_feature_size=32, fpn_feature_size=32)
    model = zoo.create_segmenter(backbone, "maskformer", num_labels=4, **small)
    x = torch.randn(2, 3, *SIZE)
    masks, classes = _targets(2)
    out = model(pixel_values=x, mask_labels=masks, class_labels=classes)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    model.eval()
    with torch.no_grad():
        pred = model(pixel_values=x)
    seg = zoo.create_segmentation_processor("maskformer").post_process_semantic_segmentation(
        pred, target_sizes=[SIZE, SIZE])
    assert seg[1].shape == SIZE


def test_pretrained_backbone_weights_really_load(tmp_path):
    backbone = BACKBONES[0]
    src = zoo.create_model(backbone)
    path = tmp_path / "backbone.safetensors"
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = zoo.create_segmenter(backbone, num_labels=3, checkpoint_path=path, **SMALL_HEAD)
    loaded = segmenter_backbone(model).state_dict()
    ref = zoo.create_model(backbone, checkpoint_path=path, features_only=True).state_dict()
    assert loaded.keys() == ref.keys() and all(torch.equal(loaded[k], ref[k]) for k in ref)


def test_save_and_reload_round_trip(tmp_path):
    backbone = BACKBONES[0]
    model = zoo.create_segmenter(backbone, num_labels=3, **SMALL_HEAD).eval()
    model.save_pretrained(tmp_path / "seg")
    cls = type(model)
    again = cls.from_pretrained(tmp_path / "seg").eval()
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        a, b = model(pixel_values=x), again(pixel_values=x)
    torch.testing.assert_close(a.masks_queries_logits, b.masks_queries_logits, atol=0, rtol=0)
    torch.testing.assert_close(a.class_queries_logits, b.class_queries_logits, atol=0, rtol=0)


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="unknown head"):
        zoo.create_segmenter(BACKBONES[0], head="upernet")

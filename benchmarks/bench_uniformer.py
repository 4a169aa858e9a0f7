"""Speed of zoo UniFormer-S (image 224x224, video 8x224x224) against the official implementation.

    python benchmarks/bench_uniformer.py [--official PATH] [--repeats 10] [--threads 1] [--batches 1 8] [--image-only]

``--official`` (or ``$UNIFORMER_OFFICIAL``) is a checkout of https://github.com/Sense-X/UniFormer: its
``image_classification/models/uniformer.py`` and ``video_classification/slowfast/models/uniformer.py``
are loaded beside zoo (their timm registration and slowfast imports stubbed out). Without it, the
reference is ``ReferenceUniFormer`` below: the official forward written out from its description
(explicit softmax attention, tokens flattened with ``flatten(2).transpose(1, 2)`` around every LayerNorm).
Nothing official is stored in this repository.

Both models get the same random official-layout weights (zoo through ``checkpoint_filter_fn``), their
outputs are compared, and forward passes are timed interleaved (reference, zoo, zoo after
``zoo.optimize_for_cpu``, and for the image model timm's swin_tiny; one of each in turn, repeated) in
one process, so the printed ratios are robust to the machine's load; the absolute times are not.
"""
from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo  # noqa: E402
from _compare import compare, randomise, swin_tiny, zoo_pair  # noqa: E402
from zoo.models import uniformer as U  # noqa: E402


# ---------------------------------------------------------------- reference written from the description
class _RefAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class _RefMlp(nn.Module):
    def __init__(self, dim, hidden, conv=None):
        super().__init__()
        self.fc1 = conv(dim, hidden, 1) if conv else nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = conv(hidden, dim, 1) if conv else nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _RefCBlock(nn.Module):
    def __init__(self, dim, conv, bn):
        super().__init__()
        self.pos_embed = conv(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = bn(dim)
        self.conv1 = conv(dim, dim, 1)
        self.conv2 = conv(dim, dim, 1)
        self.attn = conv(dim, dim, 5, padding=2, groups=dim)
        self.norm2 = bn(dim)
        self.mlp = _RefMlp(dim, 4 * dim, conv)

    def forward(self, x):
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class _RefSABlock(nn.Module):
    def __init__(self, dim, heads, conv):
        super().__init__()
        self.pos_embed = conv(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _RefAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _RefMlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.pos_embed(x)
        shape = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x.transpose(1, 2).reshape(shape)


class _RefPatchEmbed(nn.Module):
    def __init__(self, cin, cout, kernel, stride, padding, conv):
        super().__init__()
        self.proj = conv(cin, cout, kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x):
        x = self.proj(x)
        shape = x.shape
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(shape).contiguous()


class ReferenceUniFormer(nn.Module):
    """UniFormer with the patch stem, as the official forward computes it (official key names)."""

    def __init__(self, depths, dims, head_dim, num_classes, video=False):
        super().__init__()
        conv = nn.Conv3d if video else nn.Conv2d
        bn = nn.BatchNorm3d if video else nn.BatchNorm2d
        for i, (d, dim) in enumerate(zip(depths, dims)):
            cin = 3 if i == 0 else dims[i - 1]
            if video:
                k, s, p = ((3, 4, 4), (2, 4, 4), (1, 0, 0)) if i == 0 else ((1, 2, 2), (1, 2, 2), 0)
            else:
                k, s, p = (4, 4, 0) if i == 0 else (2, 2, 0)
            setattr(self, f"patch_embed{i + 1}", _RefPatchEmbed(cin, dim, k, s, p, conv))
            blocks = [_RefCBlock(dim, conv, bn) if i < 2 else _RefSABlock(dim, dim // head_dim, conv)
                      for _ in range(d)]
            setattr(self, f"blocks{i + 1}", nn.ModuleList(blocks))
        self.norm = bn(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        for i in range(1, 5):
            x = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"blocks{i}"):
                x = blk(x)
        return self.head(self.norm(x).flatten(2).mean(-1))


# ---------------------------------------------------------------- the official code, loaded beside
def _load_official(root: Path):
    """The official image and video modules, with timm registration / slowfast imports stubbed."""
    def load(path: Path, name: str, replace):
        src = path.read_text()
        for a, b in replace:
            src = src.replace(a, b)
        mod = types.ModuleType(name)
        exec(compile(src, str(path), "exec"), mod.__dict__)
        return mod

    img = load(root / "image_classification/models/uniformer.py", "official_uniformer_image",
               [("@register_model\n", "\n"), ('print(f"Use layer_scale', 'pass  # print(f"Use layer_scale')])
    vid = load(root / "video_classification/slowfast/models/uniformer.py", "official_uniformer_video",
               [("from .build import MODEL_REGISTRY", ""), ("@MODEL_REGISTRY.register()", ""),
                ("import slowfast.utils.logging as logging", "import logging"),
                ("logging.get_logger(", "logging.getLogger(")])
    return img, vid


def _official_models(root: Path):
    img, vid = _load_official(root)
    img_model = img.uniformer_small()
    ns = types.SimpleNamespace
    cfg = ns(UNIFORMER=ns(DEPTH=[3, 4, 8, 3], EMBED_DIM=[64, 128, 320, 512], HEAD_DIM=64, MLP_RATIO=4,
                          QKV_BIAS=True, QKV_SCALE=None, REPRESENTATION_SIZE=None, DROPOUT_RATE=0,
                          ATTENTION_DROPOUT_RATE=0, DROP_DEPTH_RATE=0., SPLIT=False, STD=False, PRETRAIN_NAME=None),
             MODEL=ns(NUM_CLASSES=400, USE_CHECKPOINT=False, CHECKPOINT_NUM=[0, 0, 0, 0]),
             DATA=ns(TRAIN_CROP_SIZE=224, INPUT_CHANNEL_NUM=[3], NUM_FRAMES=8))
    vid_model = vid.Uniformer(cfg)
    return img_model, (lambda x: vid_model([x]), vid_model)


def bench(name, ref_fn, ref_module, zoo_name, make_input, batches, repeats, num_classes, reference=None):
    ref_module.eval()
    randomise(ref_module)
    model = zoo.create_model(zoo_name, num_classes=num_classes).eval()
    model.load_state_dict(U.checkpoint_filter_fn(ref_module.state_dict(), model), strict=True)
    x = make_input(min(batches))
    with torch.inference_mode():
        diff = (ref_fn(x) - model(x)).abs().max().item()
    print(f"\n{name}: input {tuple(x.shape[1:])}, max|diff| reference vs zoo {diff:.1e}")
    models = {"official": ref_fn, **zoo_pair(model)}
    if reference is not None:
        models["swin_tiny"] = reference
    return compare(models, make_input, batches, repeats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", default=os.environ.get("UNIFORMER_OFFICIAL"),
                   help="checkout of Sense-X/UniFormer to run beside (default: the written-out reference)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[1])
    p.add_argument("--image-only", action="store_true", help="skip the video model")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batches {args.batches}, {args.repeats} interleaved "
          f"repeats (median); the row 'official' is the reference named below")
    if args.official:
        img, (vid_fn, vid) = _official_models(Path(args.official))
        kind = f"official code ({args.official})"
        img_fn = img
    else:
        img = ReferenceUniFormer((3, 4, 8, 3), (64, 128, 320, 512), 64, 1000)
        vid = ReferenceUniFormer((3, 4, 8, 3), (64, 128, 320, 512), 64, 400, video=True)
        img_fn, vid_fn = img, vid
        kind = "reference written from the official description"
    print(f"reference: {kind}")
    bench("UniFormer-S image", img_fn, img, "uniformer_small", lambda b: torch.randn(b, 3, 224, 224),
          args.batches, args.repeats, 1000, reference=swin_tiny())
    if not args.image_only:
        bench("UniFormer-S video", vid_fn, vid, "uniformer_small_video", lambda b: torch.randn(b, 3, 8, 224, 224),
              args.batches, args.repeats, 400)


if __name__ == "__main__":
    main()

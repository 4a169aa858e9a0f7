"""Every pretrained tag's location, preprocessing, licence and reported metric, held to tables written from
the official sources (each table cites its files), so that a wrong edit of a cfg or of ``reported=`` fails here.

A row is ``(location, input side, crop_pct, mean/std, num_classes, licence, (metric, value)[, clip length])``;
``location`` is ``hf:<repo>/<file>``, a direct ``url``, or ``origin:<share page>`` for weights that have no direct
download (loaded with ``checkpoint_path=``). For families other than UniFormer the rows record what the cfgs say,
checked against the official READMEs where they could be (issue 21).
"""
from __future__ import annotations

import pytest
import torch
import yaml
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

import zoo
from zoo.cards import render_card, render_hub_card, shipped_families
from zoo.hub import CheckpointError, cache_filename, licence_of, load_checkpoint
from zoo.registry import model_entry, pretrained_tags

IMNET = (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
HALF = ((0.5,) * 3, (0.5,) * 3)
VIDEO = ((0.45,) * 3, (0.225,) * 3)
RAW = "raw"  # images in [0, 1], no normalisation (mean 0, std 1 per channel)
KINETICS_CROP = 224 / 256


def hf(repo: str, filename: str) -> str:
    return f"hf:Sense-X/{repo}/{filename}"


def drive(file_id: str) -> str:
    return f"origin:https://drive.google.com/file/d/{file_id}/view?usp=sharing"


# --- UniFormer, Sense-X/UniFormer at 52a0415 ------------------------------------------------------------------
# image_classification/README.md: Drive ids and top-1 of every image checkpoint; the Hub repo Sense-X/uniformer_image
# holds uniformer_{small,small_plus,base}_in1k.pth. Preprocessing: image_classification/datasets.py (resize
# 256/224, ImageNet mean/std); token labeling: token_labeling/tlt/models/uniformer.py (timm 0.4.12 ViT _cfg: crop
# 0.9, mean = std = 0.5) run by exp/*/test.sh with --no-test-pool (crop kept at 384).
UNIFORMER_IMAGE = {
    "uniformer_small.in1k": (hf("uniformer_image", "uniformer_small_in1k.pth"), 224, 0.875, IMNET, 1000, "apache-2.0", ("top1", 82.9)),
    "uniformer_small_plus.in1k": (hf("uniformer_image", "uniformer_small_plus_in1k.pth"), 224, 0.875, IMNET, 1000, "apache-2.0", ("top1", 83.4)),
    "uniformer_small_plus_dim64.in1k": (drive("178ipRvMBKeAP_Fzy6fEr2HQkIQWdgEY6"), 224, 0.875, IMNET, 1000, "apache-2.0", ("top1", 83.4)),
    "uniformer_base.in1k": (hf("uniformer_image", "uniformer_base_in1k.pth"), 224, 0.875, IMNET, 1000, "apache-2.0", ("top1", 83.8)),
    "uniformer_base_ls.in1k": (drive("10FnwzMVgGL8bPO3EMZ7oG4vDvqnPoBK5"), 224, 0.875, IMNET, 1000, "apache-2.0", ("top1", 83.9)),
    "uniformer_xxs.in1k_128": (drive("1Cr7uB5hUck1BHioEROWZjfLpYRwg4Zps"), 128, 0.875, IMNET, 1000, "apache-2.0", ("top1", 76.8)),
    "uniformer_xxs.in1k_160": (drive("1CsXCzfVFPyM2mY8BA_1fO3q_VBngnF44"), 160, 0.875, IMNET, 1000, "apache-2.0", ("top1", 79.1)),
    "uniformer_xxs.in1k_192": (drive("1CjrCEnZCk2aLrN7nVG8vFvu3FAUL4_Y_"), 192, 0.875, IMNET, 1000, "apache-2.0", ("top1", 79.9)),
    "uniformer_xxs.in1k": (drive("1Cw9r_3c30N-esFI8RFYa6rQXJrr1rAHY"), 224, 0.875, IMNET, 1000, "apache-2.0", ("top1", 80.6)),
    "uniformer_xs.in1k_192": (drive("1Ce2Dk9-k_-sHt5dXp-gfNOEK37Jdcffv"), 192, 0.875, IMNET, 1000, "apache-2.0", ("top1", 81.5)),
    "uniformer_xs.in1k": (drive("1CwQ91fjuAu3Rhn3zV4vjAmQ8v36AfYPT"), 224, 0.875, IMNET, 1000, "apache-2.0", ("top1", 82.0)),
    "uniformer_small_tl.in1k": (drive("16wjfeyqQFZ2x9W91EXf0Py1bfv4Fydfr"), 224, 0.9, HALF, 1000, "apache-2.0", ("top1", 83.4)),
    "uniformer_small_plus_tl.in1k": (drive("16rgtEVEeX3jVTQaiLsojBQP5sRaj_2aZ"), 224, 0.9, HALF, 1000, "apache-2.0", ("top1", 83.9)),
    "uniformer_base_tl.in1k": (drive("16nsTjawiYZuoCHBRarr58zA7vCFcmQmL"), 224, 0.9, HALF, 1000, "apache-2.0", ("top1", 85.1)),
    "uniformer_large_ls_tl.in1k": (drive("173e2qaJhOwbuC_DbNQSH47Oo_04mSfDj"), 224, 0.9, HALF, 1000, "apache-2.0", ("top1", 85.6)),
    "uniformer_small_dim64_tl.in1k": (drive("17NC5qqAWCT2gI_jY_cJnFTOqRQTSwsoz"), 224, 0.9, HALF, 1000, "apache-2.0", ("top1", 83.4)),
    "uniformer_small_plus_dim64_tl.in1k": (drive("17OfoDWt2_nA0BYN0OuLPpG8mHJDTluQQ"), 224, 0.9, HALF, 1000, "apache-2.0", ("top1", 83.6)),
    "uniformer_base_dim64_tl.in1k": (drive("17MneG9CnZG6zBvXYUr4WUXoTYc4rjJj5"), 224, 0.9, HALF, 1000, "apache-2.0", ("top1", 84.8)),
    "uniformer_small_tl.in1k_384": (drive("16p4CXzuXC5J4_SJK67dsvnc8gTKmtKN1"), 384, 0.9, HALF, 1000, "apache-2.0", ("top1", 84.6)),
    "uniformer_small_plus_tl.in1k_384": (drive("16wJT87vTc43Dt1q2sXrxZRUuEdrNdFdk"), 384, 0.9, HALF, 1000, "apache-2.0", ("top1", 84.9)),
    "uniformer_base_tl.in1k_384": (drive("16kZlIarIwf9ldkCdHVKTQfFmDgfkucQ7"), 384, 0.9, HALF, 1000, "apache-2.0", ("top1", 86.0)),
    "uniformer_large_ls_tl.in1k_384": (drive("174rcA6rNzYVG9Ya9ik-NwTGoxW1M79ez"), 384, 0.9, HALF, 1000, "apache-2.0", ("top1", 86.3)),
}
# video_classification/README.md: Drive ids and top-1; Sense-X/uniformer_video holds exactly 8 files (issue 21).
# slowfast/config/defaults.py: DATA.MEAN [0.45]*3, DATA.STD [0.225]*3. Kinetics tests 1 crop of the 256 short side
# (slowfast/datasets/kinetics.py), Something-Something scales the short side to 224 and takes 3 crops
# (slowfast/datasets/sth.py): crop 1.0. Clip length: the README's #Frame.
UNIFORMER_VIDEO = {
    "uniformer_small_video.k400_8x8": (drive("1-kitVTkWErHXI_x-sLItvK9-sOmb53j6"), 224, KINETICS_CROP, VIDEO, 400, "apache-2.0", ("top1", 78.4), 8),
    "uniformer_small_video.k400_16x4": (drive("1-jGZIIuTM5IYIpqkNTojhGhfMc7Gu9Kt"), 224, KINETICS_CROP, VIDEO, 400, "apache-2.0", ("top1", 80.8), 16),
    "uniformer_small_video.k400_16x8": (hf("uniformer_video", "uniformer_small_k400_16x8.pth"), 224, KINETICS_CROP, VIDEO, 400, "apache-2.0", ("top1", 80.8), 16),
    "uniformer_small_video.k600_16x4": (drive("1-dqzjm5RZVspWHQLRD4S1vo4_6jyVltb"), 224, KINETICS_CROP, VIDEO, 600, "apache-2.0", ("top1", 82.8), 16),
    "uniformer_small_video.k600_16x8": (hf("uniformer_video", "uniformer_small_k600_16x8.pth"), 224, KINETICS_CROP, VIDEO, 600, "apache-2.0", ("top1", 82.7), 16),
    "uniformer_small_video.sthv1_16_prek400": (drive("1-bdFsmXt2Ztf43lrVgmqS8_VYJ8tub6J"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 57.2), 16),
    "uniformer_small_video.sthv1_16_prek600": (hf("uniformer_video", "uniformer_small_sthv1_16_prek600.pth"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 57.6), 16),
    "uniformer_small_video.sthv1_32_prek400": (drive("1-Y5ADssqM2C8o_1jix48fQM788mVGWQ3"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 58.8), 32),
    "uniformer_small_video.sthv1_32_prek600": (drive("1-XEgaGqXGp1EGzFl63ctApnvU54X27WP"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 59.9), 32),
    "uniformer_small_video.sthv2_16_prek400": (drive("1-Wq22024HB7tT8kPX6eSMn2GUNMI-_gY"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 67.7), 16),
    "uniformer_small_video.sthv2_16_prek600": (hf("uniformer_video", "uniformer_small_sthv2_16_prek600.pth"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 69.4), 16),
    "uniformer_small_video.sthv2_32_prek400": (drive("1-5Q5S-NRmHFkIBygaRYpJLT7aI9cpmky"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 69.0), 32),
    "uniformer_small_video.sthv2_32_prek600": (drive("1-1K5R3Ed4t8d_DZnJ62xysIt1dBNmx96"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 70.4), 32),
    "uniformer_base_video.k400_8x8": (drive("1hBxGU-QE8hGRBjSNCymJ7Au06LhluvTv"), 224, KINETICS_CROP, VIDEO, 400, "apache-2.0", ("top1", 79.8), 8),
    "uniformer_base_video.k400_16x4": (drive("15ipzFaZdTt-aHv7jcr_h_vgYD2X7D6AD"), 224, KINETICS_CROP, VIDEO, 400, "apache-2.0", ("top1", 82.0), 16),
    "uniformer_base_video.k400_16x8": (drive("1VoZcpFZbk9lEyRQ7gqRgT4CsnVt9g7uk"), 224, KINETICS_CROP, VIDEO, 400, "apache-2.0", ("top1", 81.7), 16),
    "uniformer_base_video.k400_32x4": (hf("uniformer_video", "uniformer_base_k400_32x4.pth"), 224, KINETICS_CROP, VIDEO, 400, "apache-2.0", ("top1", 82.9), 32),
    "uniformer_base_video.k600_16x4": (drive("1nBQCBCsCflhZ4OGUoGB3pAkc_GDau7vd"), 224, KINETICS_CROP, VIDEO, 600, "apache-2.0", ("top1", 84.0), 16),
    "uniformer_base_video.k600_16x8": (drive("1aidHdSd-h65-_EUkfNOdMMw0ZB8G5maY"), 224, KINETICS_CROP, VIDEO, 600, "apache-2.0", ("top1", 83.4), 16),
    "uniformer_base_video.k600_32x4": (hf("uniformer_video", "uniformer_base_k600_32x4.pth"), 224, KINETICS_CROP, VIDEO, 600, "apache-2.0", ("top1", 84.5), 32),
    "uniformer_base_video.sthv1_16_prek400": (drive("1uMq4W5lf17vOHUmccNjYLeTMqaWHSh6v"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 59.1), 16),
    "uniformer_base_video.sthv1_16_prek600": (drive("1xpiL8zEDWYHFR55gOsbQiI41YEjTD89J"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 58.8), 16),
    "uniformer_base_video.sthv1_32_prek400": (drive("18A3FuUUbdQ8ehMQ0D78qTTtm6YmIVWaO"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 60.9), 32),
    "uniformer_base_video.sthv1_32_prek600": (hf("uniformer_video", "uniformer_base_sthv1_32_prek600.pth"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 61.0), 32),
    "uniformer_base_video.sthv2_16_prek400": (drive("1s78JBpnykyJ7pYEGRDK8BZL9seIRIUlC"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 70.4), 16),
    "uniformer_base_video.sthv2_16_prek600": (drive("16nCBGWzMM8n8Vr_EY0UmvgzLG0S_QYef"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 70.2), 16),
    "uniformer_base_video.sthv2_32_prek400": (drive("1-rpMARXnyvyj6YUJkIvVqtna86egpjoS"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 71.1), 32),
    "uniformer_base_video.sthv2_32_prek600": (hf("uniformer_video", "uniformer_base_sthv2_32_prek600.pth"), 224, 1.0, VIDEO, 174, "apache-2.0", ("top1", 71.2), 32),
}

# --- NAT (SHI-Labs/Neighborhood-Attention-Transformer classification/NAT.md, DiNAT.md) -------------------------
_NAT = {
    "nat_base.in1k": ('hf:shi-labs/nat-base-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 84.3)),
    "nat_isotropic_base.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/isotropic/nat_isotropic_base_in1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 81.6)),
    "nat_isotropic_small.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/isotropic/nat_isotropic_small_in1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 80.0)),
    "nat_mini.in1k": ('hf:shi-labs/nat-mini-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 81.8)),
    "nat_small.in1k": ('hf:shi-labs/nat-small-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 83.7)),
    "nat_tiny.in1k": ('hf:shi-labs/nat-tiny-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 83.2)),
}

# --- DiNAT (SHI-Labs/Neighborhood-Attention-Transformer classification/DiNAT.md: checkpoint links and top-1;
# the Hub copies shi-labs/dinat-*; in22k files have no reported top-1). Rows record the cfgs (issue 23).
_DINAT = {
    "dinat_base.in1k": ('hf:shi-labs/dinat-base-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 84.4)),
    "dinat_isotropic_base.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/isotropic/dinat_isotropic_base_in1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 82.1)),
    "dinat_isotropic_small.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/isotropic/dinat_isotropic_small_in1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 80.8)),
    "dinat_large.in22k": ('https://shi-labs.com/projects/dinat/checkpoints/imagenet22k/dinat_large_in22k_224.pth', 224, 0.875, IMNET, 1000, "mit", None),
    "dinat_large.in22k_ft_in1k": ('hf:shi-labs/dinat-large-in22k-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 86.6)),
    "dinat_large_11x11.in22k": ('https://shi-labs.com/projects/dinat/checkpoints/imagenet22k/dinat_large_in22k_224_11x11interp.pth', 224, 0.875, IMNET, 1000, "mit", None),
    "dinat_large_11x11.in22k_ft_in1k_384": ('hf:shi-labs/dinat-large-11x11-in22k-in1k-384/pytorch_model.bin', 384, 1.0, IMNET, 1000, "mit", ('top1', 87.5)),
    "dinat_large_384.in22k_ft_in1k": ('hf:shi-labs/dinat-large-in22k-in1k-384/pytorch_model.bin', 384, 1.0, IMNET, 1000, "mit", ('top1', 87.4)),
    "dinat_mini.in1k": ('hf:shi-labs/dinat-mini-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 81.8)),
    "dinat_s_base.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/imagenet1k/dinat_s_base_1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 83.8)),
    "dinat_s_large.in22k": ('https://shi-labs.com/projects/dinat/checkpoints/imagenet22k/dinat_s_large_in22k_224.pth', 224, 0.875, IMNET, 1000, "mit", None),
    "dinat_s_large.in22k_ft_in1k": ('https://shi-labs.com/projects/dinat/checkpoints/imagenet1k/dinat_s_large_1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 86.5)),
    "dinat_s_large_384.in22k_ft_in1k": ('https://shi-labs.com/projects/dinat/checkpoints/imagenet1k/dinat_s_large_1k_384.pth', 384, 1.0, IMNET, 1000, "mit", ('top1', 87.4)),
    "dinat_s_small.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/imagenet1k/dinat_s_small_1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 83.5)),
    "dinat_s_tiny.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/imagenet1k/dinat_s_tiny_1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 81.8)),
    "dinat_small.in1k": ('hf:shi-labs/dinat-small-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 83.8)),
    "dinat_tiny.in1k": ('hf:shi-labs/dinat-tiny-in1k-224/pytorch_model.bin', 224, 0.875, IMNET, 1000, "mit", ('top1', 82.7)),
    "vitrpb_base.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/isotropic/vitrpb_base_in1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 82.5)),
    "vitrpb_small.in1k": ('https://shi-labs.com/projects/dinat/checkpoints/isotropic/vitrpb_small_in1k_224.pth', 224, 0.875, IMNET, 1000, "mit", ('top1', 81.2)),
}

# --- MixFormer (PaddleClas docs/en/models/MixFormer_en.md 'Reference top1'; ppcls/arch/backbone MODEL_URLS) ---
_PADDLE = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
_MIXFORMER = {
    "mixformer_b1.in1k": (_PADDLE + 'MixFormer_B1_pretrained.pdparams', 224, 0.875, IMNET, 1000, "apache-2.0", ('top1', 78.9)),
    "mixformer_b2.in1k": (_PADDLE + 'MixFormer_B2_pretrained.pdparams', 224, 0.875, IMNET, 1000, "apache-2.0", ('top1', 80.0)),
    "mixformer_b3.in1k": (_PADDLE + 'MixFormer_B3_pretrained.pdparams', 224, 0.875, IMNET, 1000, "apache-2.0", ('top1', 81.7)),
    "mixformer_b4.in1k": (_PADDLE + 'MixFormer_B4_pretrained.pdparams', 224, 0.875, IMNET, 1000, "apache-2.0", ('top1', 83.0)),
    "mixformer_b6.in1k": (_PADDLE + 'MixFormer_B6_pretrained.pdparams', 224, 0.875, IMNET, 1000, "apache-2.0", ('top1', 83.8)),
}

# --- Shunted (OliverRensu/Shunted-Transformer README: Google Drive folder, paper Table 2) ----------------------
_SHUNTED = {
    "shunted_b.in1k": ('origin:https://drive.google.com/drive/folders/15iZKXFT7apjUSoN2WUMAbb0tvJgyh3YP', 224, 0.875, IMNET, 1000, "other", ('top1', 84.0)),
    "shunted_s.in1k": ('origin:https://drive.google.com/drive/folders/15iZKXFT7apjUSoN2WUMAbb0tvJgyh3YP', 224, 0.875, IMNET, 1000, "other", ('top1', 82.9)),
    "shunted_t.in1k": ('origin:https://drive.google.com/drive/folders/15iZKXFT7apjUSoN2WUMAbb0tvJgyh3YP', 224, 0.875, IMNET, 1000, "other", ('top1', 79.8)),
}

# --- VSA (ViTAE-Transformer/ViTAE-VSA README: OneDrive shares) -------------------------------------------------
_VSA = {
    "vitaev2_vsa_s.in1k": ('origin:https://1drv.ms/u/s!AimBgYV7JjTlgcgB0Xlyc3U4WO11AQ?e=AGRBDl', 224, 0.9, IMNET, 1000, "other", ('top1', 82.7)),
    "vitaev2_vsa_widepcm_48m.in1k": ('origin:https://1drv.ms/u/s!AimBgYV7JjTlgcgCOt1UwhNQRfO0bw?e=rtEQJV', 224, 0.9, IMNET, 1000, "other", ('top1', 83.9)),
}

# --- MT-UNet (Dootmaan/MT-UNet README: Zenodo / Google Drive, DSC) ------------------------------------------------
_MTUNET = {
    "mtunet_acdc.acdc": ('origin:https://github.com/Dootmaan/MT-UNet', 224, 1.0, RAW, 4, "mit", ('dsc', 91.61)),
    "mtunet_synapse.synapse": ('origin:https://github.com/Dootmaan/MT-UNet', 224, 1.0, RAW, 9, "mit", ('dsc', 79.2)),
}

# --- Restormer (swz30/Restormer releases v1.0; PSNRs unverified against the paper, see the card) ------------
_RESTORMER = "https://github.com/swz30/Restormer/releases/download/v1.0/"
_RESTORMER_FACTS = {
    "restormer_defocus_deblurring.dpdd": (_RESTORMER + 'single_image_defocus_deblurring.pth', 256, 1.0, RAW, 0, "other", ('psnr', 25.98)),
    "restormer_defocus_deblurring_dual_pixel.dpdd": (_RESTORMER + 'dual_pixel_defocus_deblurring.pth', 256, 1.0, RAW, 0, "other", ('psnr', 26.66)),
    "restormer_denoising_color.blind": (_RESTORMER + 'gaussian_color_denoising_blind.pth', 256, 1.0, RAW, 0, "other", ('psnr', 31.78)),
    "restormer_denoising_color.sigma15": (_RESTORMER + 'gaussian_color_denoising_sigma15.pth', 256, 1.0, RAW, 0, "other", ('psnr', 34.4)),
    "restormer_denoising_color.sigma25": (_RESTORMER + 'gaussian_color_denoising_sigma25.pth', 256, 1.0, RAW, 0, "other", ('psnr', 31.79)),
    "restormer_denoising_color.sigma50": (_RESTORMER + 'gaussian_color_denoising_sigma50.pth', 256, 1.0, RAW, 0, "other", ('psnr', 28.6)),
    "restormer_denoising_gray.blind": (_RESTORMER + 'gaussian_gray_denoising_blind.pth', 256, 1.0, RAW, 0, "other", ('psnr', 29.51)),
    "restormer_denoising_gray.sigma15": (_RESTORMER + 'gaussian_gray_denoising_sigma15.pth', 256, 1.0, RAW, 0, "other", ('psnr', 31.96)),
    "restormer_denoising_gray.sigma25": (_RESTORMER + 'gaussian_gray_denoising_sigma25.pth', 256, 1.0, RAW, 0, "other", ('psnr', 29.52)),
    "restormer_denoising_gray.sigma50": (_RESTORMER + 'gaussian_gray_denoising_sigma50.pth', 256, 1.0, RAW, 0, "other", ('psnr', 26.62)),
    "restormer_deraining.rain13k": (_RESTORMER + 'deraining.pth', 256, 1.0, RAW, 0, "other", ('psnr', 33.96)),
    "restormer_motion_deblurring.gopro": (_RESTORMER + 'motion_deblurring.pth', 256, 1.0, RAW, 0, "other", ('psnr', 32.92)),
    "restormer_real_denoising.sidd": (_RESTORMER + 'real_denoising.pth', 256, 1.0, RAW, 0, "other", ('psnr', 40.02)),
}

# --- ViTDet (detectron2 projects/ViTDet README model zoo; MAE / iBOT READMEs) -----------------------------------
_D2 = "https://dl.fbaipublicfiles.com/detectron2/"
_VITDET = {
    "vitdet_base_patch16.coco_cascade_mask_rcnn": (_D2 + 'ViTDet/COCO/cascade_mask_rcnn_vitdet_b/f325358525/model_final_435fa9.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 54.0)),
    "vitdet_base_patch16.coco_mask_rcnn": (_D2 + 'ViTDet/COCO/mask_rcnn_vitdet_b/f325346929/model_final_61ccd1.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 51.6)),
    "vitdet_base_patch16.ibot_in1k": ('https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot/vitb_16/checkpoint_teacher.pth', 1024, 1.0, IMNET, 0, "apache-2.0", None),
    "vitdet_base_patch16.lvis_cascade_mask_rcnn": (_D2 + 'ViTDet/LVIS/cascade_mask_rcnn_vitdet_b/329226874/model_final_df306f.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 43.0)),
    "vitdet_base_patch16.lvis_mask_rcnn": (_D2 + 'ViTDet/LVIS/mask_rcnn_vitdet_b/329225748/model_final_5251c5.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 40.2)),
    "vitdet_base_patch16.mae_in1k": ('hf:timm/vit_base_patch16_224.mae/None', 1024, 1.0, IMNET, 0, "cc-by-nc-4.0", None),
    "vitdet_base_patch16.mae_in1k_d2": (_D2 + 'ImageNetPretrained/MAE/mae_pretrain_vit_base.pth', 1024, 1.0, IMNET, 0, "cc-by-nc-4.0", None),
    "vitdet_huge_patch16.coco_cascade_mask_rcnn": (_D2 + 'ViTDet/COCO/cascade_mask_rcnn_vitdet_h/f328730692/model_final_f05665.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 58.7)),
    "vitdet_huge_patch16.coco_mask_rcnn": (_D2 + 'ViTDet/COCO/mask_rcnn_vitdet_h/f329145471/model_final_7224f1.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 56.7)),
    "vitdet_huge_patch16.lvis_cascade_mask_rcnn": (_D2 + 'ViTDet/LVIS/cascade_mask_rcnn_vitdet_h/332552778/model_final_11bbb7.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 51.5)),
    "vitdet_huge_patch16.lvis_mask_rcnn": (_D2 + 'ViTDet/LVIS/mask_rcnn_vitdet_h/332434656/model_final_866730.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 49.1)),
    "vitdet_huge_patch16.mae_in1k": ('hf:timm/vit_huge_patch14_224.mae/None', 1024, 1.0, IMNET, 0, "cc-by-nc-4.0", None),
    "vitdet_huge_patch16.mae_in1k_d2": (_D2 + 'ImageNetPretrained/MAE/mae_pretrain_vit_huge_p14to16.pth', 1024, 1.0, IMNET, 0, "cc-by-nc-4.0", None),
    "vitdet_large_patch16.coco_cascade_mask_rcnn": (_D2 + 'ViTDet/COCO/cascade_mask_rcnn_vitdet_l/f328021305/model_final_1a9f28.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 57.6)),
    "vitdet_large_patch16.coco_mask_rcnn": (_D2 + 'ViTDet/COCO/mask_rcnn_vitdet_l/f325599698/model_final_6146ed.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 55.5)),
    "vitdet_large_patch16.ibot_in1k": ('https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot/vitl_16/checkpoint_teacher.pth', 1024, 1.0, IMNET, 0, "apache-2.0", None),
    "vitdet_large_patch16.lvis_cascade_mask_rcnn": (_D2 + 'ViTDet/LVIS/cascade_mask_rcnn_vitdet_l/329042206/model_final_3e81c2.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 49.2)),
    "vitdet_large_patch16.lvis_mask_rcnn": (_D2 + 'ViTDet/LVIS/mask_rcnn_vitdet_l/329211570/model_final_021b3a.pkl', 1024, 1.0, IMNET, 0, "cc-by-sa-3.0", ('box_ap', 46.1)),
    "vitdet_large_patch16.mae_in1k": ('hf:timm/vit_large_patch16_224.mae/None', 1024, 1.0, IMNET, 0, "cc-by-nc-4.0", None),
    "vitdet_large_patch16.mae_in1k_d2": (_D2 + 'ImageNetPretrained/MAE/mae_pretrain_vit_large.pth', 1024, 1.0, IMNET, 0, "cc-by-nc-4.0", None),
}

FACTS = {**UNIFORMER_IMAGE, **UNIFORMER_VIDEO, **_NAT, **_DINAT, **_MIXFORMER, **_SHUNTED, **_VSA, **_MTUNET, **_RESTORMER_FACTS,
         **_VITDET}

# Hub licence identifiers zoo uses (https://huggingface.co/docs/hub/repositories-licenses)
HUB_LICENCES = {"apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
                "cc-by-nc-sa-4.0", "other"}
SHARE_PAGES = ("drive.google.com", "1drv.ms", "onedrive.live.com", "pan.baidu.com", "uc?export=download")


def _renamed(old: str) -> str:
    """A table key under the name the registry uses now (timm's deprecation map follows renames)."""
    from timm.models._registry import _deprecated_models

    arch, _, tag = old.partition(".")
    new = _deprecated_models.get(arch)
    if new:
        new_arch, _, new_tag = new.partition(".")
        # the old tag where the new architecture has it, else the tag the deprecation names
        return f"{new_arch}.{tag if tag in pretrained_tags(new_arch, include_unlinked=True) else new_tag or tag}"
    return old


def _all_tags():
    out = {}
    for family in shipped_families():
        for name in zoo.list_models(family=family):
            for tag, cfg in pretrained_tags(name, include_unlinked=True).items():
                if cfg.get("unlinked") and not model_entry(name).reported.get(tag) and "untrained" in tag:
                    continue  # a placeholder cfg of a variant without weights
                out[f"{name}.{tag}"] = cfg
    return out


TAGS = _all_tags()


def _location(cfg) -> str:
    if cfg.get("hf_hub_id"):
        return f"hf:{cfg['hf_hub_id']}/{cfg.get('hf_hub_filename')}"
    if cfg.get("url"):
        url = cfg["url"]
        return url[0] if isinstance(url, (tuple, list)) else url  # (url, cache file name)
    return f"origin:{cfg.get('origin_url')}"


def test_every_tag_is_in_a_table_and_every_row_is_a_tag():
    table = {_renamed(k) for k in FACTS}
    assert sorted(set(TAGS) - table) == [], "tags without a row: add them, with their official source"
    assert sorted(table - set(TAGS)) == [], "rows without a tag (renamed? update the table)"


@pytest.mark.parametrize("key", sorted(FACTS))
def test_tag_matches_its_official_source(key):
    location, side, crop, stats, classes, licence, metric, *clip = FACTS[key]
    name = _renamed(key)
    cfg = TAGS[name]
    assert _location(cfg) == location
    assert tuple(cfg["input_size"][-2:]) == (side, side)
    assert cfg["crop_pct"] == pytest.approx(crop)
    if stats == RAW:
        assert set(cfg["mean"]) == {0.0} and set(cfg["std"]) == {1.0}
    else:
        assert tuple(cfg["mean"]) == pytest.approx(stats[0]) and tuple(cfg["std"]) == pytest.approx(stats[1])
    assert cfg["num_classes"] == classes
    assert cfg["license"] == licence
    reported = model_entry(name).reported.get(name.partition(".")[2])
    assert (None if reported is None else (reported["metric"], reported["value"])) == metric
    if clip:  # video: the cfg's input_size is (C, T, H, W), pool_size[0] * 2 is T, and the notes say it
        assert cfg["input_size"][1] == clip[0] == cfg["pool_size"][0] * 2
        assert any(f"clip: {clip[0]} frames" in n for n in cfg["notes"])


def test_only_the_eight_hub_files_of_the_video_repo_are_hub_tags():
    hub = sorted(cfg["hf_hub_filename"] for cfg in TAGS.values() if cfg.get("hf_hub_id") == "Sense-X/uniformer_video")
    assert hub == sorted(f"{n}.pth" for n in (
        "uniformer_small_k400_16x8", "uniformer_small_k600_16x8", "uniformer_small_sthv1_16_prek600",
        "uniformer_small_sthv2_16_prek600", "uniformer_base_k400_32x4", "uniformer_base_k600_32x4",
        "uniformer_base_sthv1_32_prek600", "uniformer_base_sthv2_32_prek600"))


def test_no_share_page_is_a_download_url_and_cached_names_are_unique():
    seen = {}
    for name, cfg in TAGS.items():
        url = cfg.get("url") or ""
        url = url[0] if isinstance(url, (tuple, list)) else url
        assert not any(s in url for s in SHARE_PAGES), f"{name}: a share page is not a file URL: {url}"
        fname = cache_filename(cfg)
        if fname:
            assert seen.setdefault(fname, url) == url, f"{name} and another tag share the cache file {fname!r}"


def test_licences_are_hub_identifiers_and_other_names_its_licence():
    for name, cfg in TAGS.items():
        assert cfg["license"] in HUB_LICENCES, f"{name}: {cfg['license']!r} is not a Hub licence identifier"
        lic = licence_of(cfg)
        if cfg["license"] == "other":
            assert lic.get("license_name") and lic.get("license_link", "").startswith("https://"), name


def test_uniformer_records_its_licence_conflict():
    for name, cfg in TAGS.items():
        if name.startswith("uniformer"):
            assert any("LICENSE is Apache-2.0" in n and "MIT" in n for n in cfg["notes"]), name


def test_restormer_metrics_are_marked_unverified_in_the_card():
    card = render_card(model_entry("restormer_deraining").family)
    assert "(unverified)" in card and "Unverified: not checked against the paper's tables." in card


def test_pretrained_without_a_direct_download_says_where_the_file_is():
    with pytest.raises(ValueError, match=r"uniformer_xs\.in1k.*drive\.google\.com/file/d/1CwQ91.*checkpoint_path"):
        zoo.create_model("uniformer_xs.in1k", pretrained=True)


def test_a_downloaded_html_page_is_named_not_unpickled(tmp_path, monkeypatch):
    page = b"<!DOCTYPE html><html><body>Google Drive can't scan this file for viruses</body></html>"
    (tmp_path / "page.pth").write_bytes(page)
    with pytest.raises(CheckpointError, match="HTML page, not a checkpoint"):
        load_checkpoint(tmp_path / "page.pth")
    # timm's own URL path: torch.hub saves the page and torch.load fails on its first byte
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda url, dst, *a, **k: open(dst, "wb").write(page))
    # the stubbed download stands for the network: the suite runs offline (conftest), so let it through
    monkeypatch.setattr(zoo.factory, "_offline", lambda: False)
    with pytest.raises(CheckpointError, match=r"https://example\.invalid/w\.pth is an HTML page.*delete .*w\.pth"):
        zoo.create_model("uniformer_test", pretrained=True, pretrained_cfg_overlay=dict(url="https://example.invalid/w.pth"))


def test_hub_card_carries_the_weights_licence_task_metric_and_origin():
    card = render_hub_card("vitdet_base_patch16.mae_in1k")
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "cc-by-nc-4.0" and front["pipeline_tag"] == "image-feature-extraction"
    card = render_hub_card("uniformer_small_video.sthv2_16_prek600")
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0" and front["pipeline_tag"] == "video-classification"
    assert front["datasets"] == ["something-something-v2"]
    metric = front["model-index"][0]["results"][0]["metrics"][0]
    assert (metric["type"], metric["value"]) == ("top1", 69.4)
    assert "https://huggingface.co/Sense-X/uniformer_video" in card and "arxiv.org/abs/2201.04676" in card

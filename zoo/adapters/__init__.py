"""Feature-pyramid adapters that turn zoo backbones into inputs for dense-task heads."""
from .pyramid import FPN, PyramidBackbone, SimpleFeaturePyramid, create_pyramid

__all__ = ["SimpleFeaturePyramid", "FPN", "PyramidBackbone", "create_pyramid"]

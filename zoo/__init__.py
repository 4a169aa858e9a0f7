"""zoo: vision transformers from recent papers on timm's registry, exact to the official code.

    import zoo
    m = zoo.create_model("nat_tiny", pretrained=True)
    f = zoo.create_model("nat_tiny", features_only=True)
    zoo.list_models("uniformer*")

Models are plain PyTorch (standard modules, public ops); ``zoo.optimize_for_cpu(model)`` opts a model
(zoo's or timm's) into oneDNN's GEMMs for float32 CPU inference, ``enabled=False`` undoes it.

Importing zoo registers every zoo model with timm, so ``timm.create_model`` knows them too.
"""
from . import models as _models  # noqa: F401  (registers every family with timm)
from . import adapters  # noqa: F401
from .accel import optimize_for_cpu
from .restore import restore
from .segmenter import create_segmentation_processor, create_segmenter
from .factory import create_model
from .registry import (
    family_info,
    list_families,
    list_models,
    list_pretrained,
    model_info,
)

__version__ = "0.1.0"

__all__ = [
    "create_model", "list_models", "list_pretrained", "list_families", "family_info", "model_info",
    "create_segmenter", "create_segmentation_processor", "restore", "adapters", "optimize_for_cpu", "__version__",
]

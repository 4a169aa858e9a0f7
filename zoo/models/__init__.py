"""One module per family; importing this package registers every zoo model with timm."""
from . import restormer  # noqa: F401

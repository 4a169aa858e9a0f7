"""One module per family; importing this package registers every zoo model with timm."""
from zoo.models import mtunet  # noqa: F401

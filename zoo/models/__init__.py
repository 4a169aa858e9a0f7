"""One module per family; importing this package registers every zoo model with timm."""
from . import dinat  # noqa: F401
from . import mixformer  # noqa: F401
from . import mtunet  # noqa: F401
from . import nat  # noqa: F401
from . import restormer  # noqa: F401
from . import shunted  # noqa: F401
from . import uniformer  # noqa: F401
from . import vitdet  # noqa: F401
from . import vsa  # noqa: F401

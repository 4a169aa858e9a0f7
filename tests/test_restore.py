"""zoo.restore: the result comes back in the image's dtype, whatever the model's."""
import torch

import zoo
from zoo.restore import restore


def test_float64_image_through_float32_model_comes_back_float64():
    model = zoo.create_model(zoo.registry.test_models("restormer")[0]).eval()
    image = torch.rand(1, 3, 27, 45, dtype=torch.float64)
    out = restore(model, image)
    assert out.dtype == torch.float64 and out.shape == image.shape
    with torch.no_grad():
        ref = restore(model, image.float())
    assert torch.allclose(out.float(), ref)
    tiled = restore(model, image[0], tile=16, tile_overlap=8)
    assert tiled.dtype == torch.float64 and tiled.shape == image.shape[1:]

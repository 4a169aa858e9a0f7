"""Feature-pyramid adapters that turn zoo backbones into inputs for dense-task heads."""

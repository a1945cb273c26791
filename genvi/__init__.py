"""genvi: generative models from variational inference on joint distributions."""

__all__: list[str] = []

"""Networks and closed-form models. Importing this package registers every model kind with
`facespace.checkpoint`, so `load_model` can rebuild any of them."""

from facespace.models.base import TorchAutoencoder, TorchEncoder, check_codes, check_images

__all__ = ["TorchAutoencoder", "TorchEncoder", "check_codes", "check_images"]

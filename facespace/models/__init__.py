"""Models: the registry (kind -> class, `load_model`, `save_model`, `resolve_model`), the torch
plumbing every network shares (`base`), and one file per network or closed-form model (pca, linear,
conv, vae, verifier, ensemble, sketch_ae, pixels). Networks know nothing of files, noise or
training loops; objectives that wrap them live in `facespace.training`.

May import: the ground floor (errors, files, protocol, checkpoint, grid) and `data`.
"""

from facespace.models.registry import load_model, register_model, resolve_model, save_model

__all__ = ["load_model", "register_model", "resolve_model", "save_model"]

"""Training: the one generic loop, run folders, distributed (DDP) plumbing, objectives that wrap a
network (denoising, metric losses) and the recipes that turn a kind name into a trained model.

May import: the ground floor (errors, files, protocol, checkpoint, grid), `data`, `models`.
"""

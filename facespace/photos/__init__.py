"""Faces in whole photos: detection, landmark alignment and the face crops every `--detect` uses.

May import: the ground floor, `data`, `models`.
"""

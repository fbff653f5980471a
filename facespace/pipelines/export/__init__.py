"""Codes out and in: one row per face (path, name, box) as Parquet, `.npy` + JSON sidecar, or CSV.

May import: what `facespace.pipelines` may.
"""

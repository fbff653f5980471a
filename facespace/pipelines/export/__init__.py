"""Codes out and in: one row per face (path, name, box) as Parquet, `.npy` + JSON sidecar, or CSV.

`formats` says what each file holds; `write` writes (`save_codes`), `read` reads (`load_codes`).

May import: what `facespace.pipelines` may.
"""

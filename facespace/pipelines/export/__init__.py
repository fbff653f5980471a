"""Codes out and in: one row per face (path, name, box) as Parquet, `.npy` + JSON sidecar, or CSV.

`formats` says what each file holds; `write` writes (`save_codes`), `read` reads (`load_codes`).
`shards` writes a large set as a folder of shards and a manifest, resumable after a kill; `cluster`
writes the same folder with the shards encoded on a Dask cluster (the `[cluster]` extra, imported
inside its functions only).

May import: what `facespace.pipelines` may.
"""

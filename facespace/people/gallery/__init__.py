"""The gallery: enrolled people in one SQLite file (`store`), how a probe is matched against them
(`matching`) and the `Gallery` class users construct (`gallery`).

May import: what `facespace.people` may.
"""

"""Face groups: faces grouped by person in the gallery file, with corrections (merge, split, name,
link) that survive re-clustering.

May import: what `facespace.people` may.
"""

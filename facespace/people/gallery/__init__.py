"""The gallery: enrolled people in one SQLite file (`store`), how a probe is matched against them
(`matching`) and the `Gallery` class users construct (`gallery`); what enrolment checks before it
writes (`intake`); the change log SQLite keeps of the faces (`changes`), the search index kept
beside the file and caught up from it (`gallery_index`), naming probes through that index with the
full scan's answers (`shortlist`), the stranger threshold of large galleries (`sampled`) and the
person statistics S-norm galleries keep for both (`person_stats`).

May import: what `facespace.people` may.
"""

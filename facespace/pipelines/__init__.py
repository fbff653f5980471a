"""Pipelines: verbs that compose a trained model with a procedure: encode/decode/reconstruct,
search by image and duplicates, generation (morph, vary, fill), explanations, codes out and in,
sketch pipelines.

May import: everything below it (ground floor, `data`, `models`, `training`, `index`, `people`,
`photos`); never `reports` or the shells.
"""

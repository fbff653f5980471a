"""People: distances and thresholds, verification, the LFW protocol, calibration, galleries of
enrolled people, face groups, clustering and face quality.

May import: the ground floor, `data`, `models`, and its siblings `index`, `photos`, `training`
(never `pipelines`, `reports` or the shells).
"""

"""Reports: self-contained HTML pages (run report, duplicates report) and their figures.

May import: everything but the shells (`cli`, `web`).
"""

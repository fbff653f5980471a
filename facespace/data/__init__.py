"""Face data: loading, caching, splits and LFW pair lists."""

from facespace.data.faceset import FaceSet

__all__ = ["FaceSet"]

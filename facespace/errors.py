"""Errors a user can act on. Every message names the thing that is wrong and says what to do."""


class FacespaceError(ValueError):
    """Base class: bad input, a bad file or a bad option. The CLI prints it and exits with 2."""


class DataError(FacespaceError):
    """An image, folder, archive or list of pairs that cannot be used."""


class CheckpointError(FacespaceError):
    """A model file that is missing, truncated, of another kind or of a newer format."""


class IndexingError(FacespaceError):
    """Bad use of an index: wrong shape, NaN vectors, unknown ids, bad settings, a damaged file."""


class NotFittedError(FacespaceError):
    """An estimator used before `fit` (scikit-learn's convention)."""


class DataWarning(UserWarning):
    """Some images were skipped or converted; the load went on."""

"""What the store refuses: a bad value or id (StoreError), or a row the state of the store forbids
(StoreConflict)."""


class StoreError(ValueError):
    """A request the store refuses (duplicate id, bad value, newer schema). A ValueError, so
    command-line tools can report it like any other bad input."""


class StoreConflict(StoreError):
    """Refused for the state of the store: the id already exists."""

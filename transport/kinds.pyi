# Types of transport/kinds.py for mypy (the .py is board code and stays unannotated): the names
# hub/domain uses. The kind constants are made from the table at import (module __getattr__ and
# globals()), so every other name reads as Any, as mypy saw it from the .py.
from typing import Any

MAX_CONNECTORS: int
MAX_RESERVATIONS: int
ERROR: int
CONNECTOR_STATUSES: tuple[str, ...]

def __getattr__(name: str) -> Any: ...

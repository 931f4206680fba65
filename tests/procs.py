"""A process the tests run in the background with its output in a log file they can read.

The wrapper is tools.logged_process.LoggedProcess, shared with the bench: one copy.
"""

from tools.logged_process import LoggedProcess  # noqa: F401 (re-exported for the tests)

"""A process the tests run in the background with its output in a log file they can read.

The wrapper is tools.common.logged_process.LoggedProcess, shared with the bench: one copy.
"""

from tools.common.logged_process import LoggedProcess  # noqa: F401 (re-exported for the tests)

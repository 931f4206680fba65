"""The tests' name for tools.ptypair (one implementation, shared with `evhub pty-pair`)."""

from tools.ptypair import PtyPair

__all__ = ["PtyPair"]

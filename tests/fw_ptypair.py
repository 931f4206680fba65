"""The tests' name for tools.device.ptypair (one implementation, shared with `evhub pty-pair`)."""

from tools.device.ptypair import PtyPair

__all__ = ["PtyPair"]

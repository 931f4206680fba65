"""Runs first at power-up: keep it minimal. main.py starts the charge point."""

import gc

try:
    import esp

    esp.osdebug(None)  # no vendor debug output on UART0 (the REPL)
except ImportError:
    pass

gc.collect()
# Collect after every 4 KB allocated instead of only when an allocation fails: the garbage of the
# imports and of each link-up then never spreads through the heap, so a 64 KB heap keeps free
# blocks of the 300-500 bytes a new session needs (firmware/README.md: the real-hub romfs run
# passed in 60 KB with it, 62 without): more collections, each over a small heap.
try:
    gc.threshold(4096)
except AttributeError:  # a port built without MICROPY_GC_ALLOC_THRESHOLD
    pass

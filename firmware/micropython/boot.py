"""Runs first at power-up: keep it minimal. main.py starts the charge point."""

import gc

try:
    import esp

    esp.osdebug(None)  # no vendor debug output on UART0 (the REPL)
except ImportError:
    pass

gc.collect()

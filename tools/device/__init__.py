"""Tools that face a device: the board's filesystem, flashing it, talking to it over a serial line.

- ``bundle``      the board filesystem: which files ship, the config, optional .mpy compile
- ``romfs``       a ROMFS image of the bundle (code runs from flash, not from the heap)
- ``flash``       flash MicroPython and the bundle to an ESP32 charge point, as a plan of steps (a package)
- ``console``     a serial console that decodes evhub frames live
- ``term_escape`` what a raw terminal may show of bytes from a device (no escape sequences pass)
- ``ptypair``     two joined pseudo-terminals, to try serial links without hardware
"""

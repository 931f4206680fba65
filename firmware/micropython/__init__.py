"""Board glue for the ESP32 (boot.py, main.py, config); nothing here runs at import on CPython."""

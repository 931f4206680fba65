"""`evhub flash` (its arguments: tools/commands/flash.py), as a plan of steps.

- ``plan``     Step and Command as data; the plan is printed (--dry-run) or run, the same list
- ``steps``    the checks before anything is touched, and the steps planned from the arguments
- ``vendor``   esptool and mpremote: finding, running, and their failures in one line
- ``prepare``  what the board removes before the copy, and the script that does it
- ``board_prepare`` that script, run on the board by mpremote (MicroPython; not in the bundle)
"""

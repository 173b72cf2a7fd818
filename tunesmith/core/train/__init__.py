"""The training engine: run folders, the launcher the GUI calls, and the trainer process.

Light to import (no torch): the GUI uses :mod:`tunesmith.core.train.launcher` and :mod:`tunesmith.core.train.rundir`
at start-up; everything heavy is imported inside the trainer process.
"""

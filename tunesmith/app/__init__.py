"""Tunesmith studio: the Gradio GUI over the headless engine in ``core/``.

Nothing heavy is imported here: ``launch.py`` imports :mod:`tunesmith.app.ui` (which imports gradio) only
after the command-line flags have been checked, and torch/transformers/datasets are imported only
inside the callbacks that need them.
"""

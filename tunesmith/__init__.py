"""Tunesmith: a local studio for fine-tuning language models.

``tunesmith.core`` is the headless engine (data, training, export, chat, serving; it never imports
gradio) and ``tunesmith.app`` the browser studio on top of it. ``tunesmith`` (or ``python -m tunesmith``)
is the command line for both.
"""

__version__ = "0.1.0"

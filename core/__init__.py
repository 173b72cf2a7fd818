"""Tunesmith engine: data pipeline, trainer, export and chat. Never imports gradio."""

__version__ = "0.1.0"

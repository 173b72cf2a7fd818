"""Tunesmith engine: data pipeline, trainer, export, chat and serving. Never imports gradio."""


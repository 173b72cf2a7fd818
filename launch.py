"""Start the Tunesmith studio (the Gradio app lands in app/; until then, show the CLI)."""

from core.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["--help"]))

"""Start the studio from a checkout: ``python launch.py --help``, the same as ``tunesmith studio``."""

from tunesmith.app.launch import main

if __name__ == "__main__":
    raise SystemExit(main())

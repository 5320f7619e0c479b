"""``python -m swserve``: the same command as ``swserve``."""

from swserve.cli import main

if __name__ == "__main__":
    main()

"""`python run.py ...` is the `tinycdaae` command (tinycdaae/cli.py), runnable from a checkout."""
import sys

from tinycdaae.cli import main

if __name__ == "__main__":
    sys.exit(main())

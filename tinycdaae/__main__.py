"""`python -m tinycdaae ...` is the `tinycdaae` command."""
import sys

from .cli import main

sys.exit(main())

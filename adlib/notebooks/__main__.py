"""`python -m adlib.notebooks screenshots [--out docs] [--only 01,03]`."""
import sys

from .browser import main

sys.exit(main())

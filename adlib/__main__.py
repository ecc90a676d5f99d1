import sys

from adlib.cli import main

sys.exit(main())

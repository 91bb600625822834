import sys

from care.cli import main

sys.exit(main())

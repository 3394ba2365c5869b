import sys

from pmemd.cli.pmemd import main

sys.exit(main())

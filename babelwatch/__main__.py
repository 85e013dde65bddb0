import sys

from babelwatch.cli import main

sys.exit(main())

"""``python -m brainmvp_nnunet`` is the ``brainmvp`` command."""

import sys

from brainmvp_nnunet.cli import main

sys.exit(main())

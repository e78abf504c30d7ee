"""``python -m rpcx`` runs the ``rpcx`` command."""

from __future__ import annotations

import sys

from rpcx.cli import main

sys.exit(main())

"""``python -m chatmodels.testing serve|replay ...``."""

from ._cli import main

raise SystemExit(main())

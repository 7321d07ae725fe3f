"""``python -m menara`` is the ``menara`` command."""

from menara.cli import main

raise SystemExit(main())

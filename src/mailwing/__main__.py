"""``python -m mailwing`` is the ``mailwing`` command."""

from mailwing.cli.main import main

raise SystemExit(main())

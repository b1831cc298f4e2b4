"""``python -m neuroclip`` runs the command line."""

from neuroclip.cli import main

raise SystemExit(main())

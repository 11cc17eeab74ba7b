"""`python -m classicnets` runs the command-line interface."""

from classicnets.cli import main

raise SystemExit(main())

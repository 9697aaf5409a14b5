"""`python -m app.cli` runs the `tectonite` command."""

from app.cli import main

main()

"""`python -m sqlorch.cli`: the same entry point as the `sqlorch` script."""

from sqlorch.cli import main

main()

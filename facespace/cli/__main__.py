"""`python -m facespace.cli ...`: the command line without the console script."""

from facespace.cli import main

main()

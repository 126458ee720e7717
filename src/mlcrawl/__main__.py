"""``python -m mlcrawl``: the same command line as the ``mlcrawl`` script."""

from mlcrawl.cli import main

main(prog_name="mlcrawl")

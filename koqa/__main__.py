"""``python -m koqa``: the same as the ``koqa`` command."""

from koqa.cli import main

main()

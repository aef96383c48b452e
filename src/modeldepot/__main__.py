"""``python -m modeldepot`` runs the command line."""

from modeldepot.cli.main import main

main()

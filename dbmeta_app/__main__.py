"""``python -m dbmeta_app`` runs the CLI."""

from dbmeta_app.cli import main

main()

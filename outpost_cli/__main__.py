"""``python -m outpost_cli`` runs the ``outpost`` command."""

from outpost_cli.main import app

app(prog_name="outpost")

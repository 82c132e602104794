"""``python -m mrirecon.cli`` (and ``torchrun ... -m mrirecon.cli evaluate ...``)."""

from mrirecon.cli.main import app

app(prog_name="mrirecon")

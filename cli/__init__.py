"""The ``mrirecon`` command line (installed as the package ``mrirecon.cli``)."""

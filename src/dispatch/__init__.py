"""dispatch: personalised delivery of 《许昌竞争情报快递》.

The package follows the flow in docs/architecture.md: ingest → tagging → plan → render →
deliver → track → feedback, with the reader lists in ``readers``.
"""

__version__ = "0.1.0"

"""preservation: a long-term digital preservation repository."""

__version__ = "0.1.0"
AGENT_NAME = "preservation"

__all__ = ["AGENT_NAME", "__version__"]

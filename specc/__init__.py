"""specc: compile behaviour specifications into verified preference data."""

__version__ = "0.1.0"

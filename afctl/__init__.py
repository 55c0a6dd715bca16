"""Command-line companion of the analysis facility program."""

"""kbgen: the static site generator behind ketamine-kb."""

__version__ = "0.1.0"

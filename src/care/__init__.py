"""care: vision-language-action pretraining from videos and text alone (the CARE method)."""

__version__ = "0.1.0"

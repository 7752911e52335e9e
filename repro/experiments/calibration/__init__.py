"""Known-answer data for the statistics' controls: ``calibration.normal``."""

"""Checkpointing: DLIO's checkpoint sizes and layout, checkpoint metrics, and the --dlio-plan report."""

"""What the commands do, end to end: bench, the demo, the GPU check."""

"""Models: loading checkpoints and YAMLs safely, checking them, counting params and FLOPs."""

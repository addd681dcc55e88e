"""Images to inputs: the data YAML, the shared benchmark list, decoded inputs and their cache."""

"""Files from outside: bounded, regular-file-only reading and atomic writing."""

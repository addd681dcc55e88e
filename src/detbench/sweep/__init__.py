"""`detbench sweep`: one interleaved study per cell of a settings (and device) matrix, run locally or on Ray."""

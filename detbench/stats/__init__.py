"""Statistics of samples: summaries, diagnostics (CIs, outliers, warnings), significance."""

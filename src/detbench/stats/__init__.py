"""Statistics of samples: summaries, diagnostics (CIs, outliers, warnings), paired verdicts of a study."""

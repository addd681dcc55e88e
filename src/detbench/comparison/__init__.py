"""Reports to tables: loading, grouping, deltas and verdicts, accuracy, tables and plots."""

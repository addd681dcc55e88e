"""Reports to tables: loading, grouping, deltas and verdicts, accuracy, tables and plots."""

TABLE_FORMATS = ("csv", "md", "latex")  # the tables compare writes (comparison.tables.RENDERERS), in this order

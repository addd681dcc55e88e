"""Deployment backends (`--format`): the model exported by Ultralytics' own exporter and timed in its runtime.

formats (what each backend needs and where it runs) -> export (the exported file, made in a bounded child process
by export_child, cached only when it depends on the checkpoint's bytes alone) -> runtimes (a forward over the
runtime's own session, threads set explicitly) -> parity (its outputs against PyTorch's on the first batches of the
list).
"""

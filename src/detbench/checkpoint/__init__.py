"""Checkpoint security: what a file may hold before anything of it is loaded (archive, pickle_scan, policy), what
the loaded model may be (structure), and the bounded child that loads, counts and runs it first (model_check).
`fingerprint` reads a checkpoint's architecture from the scan alone, loading nothing."""

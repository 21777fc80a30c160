"""What quantsr writes to disk and reads back without torch: atomic writes, artifact digests, model cards and the
embedded models. Standard library only (``tests/test_layout.py`` checks it), so the app tooling and the
Android benchmark run without PyTorch."""

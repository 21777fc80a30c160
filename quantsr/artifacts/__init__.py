"""What quantsr writes to disk and reads back without torch: atomic writes and writability checks, artifact
digests, model cards, the embedded models, the .pte header check and where data and weights are found. Standard
library only (``tests/test_layout.py`` checks it), so the app tooling and the Android benchmark run without
PyTorch."""

"""Benchmarks users run: ``desktop`` (``quantsr bench``: eager / .pte / ONNX Runtime variants timed interleaved),
``android`` (``quantsr mobile bench-android`` over adb), ``report`` (tables and plots from their JSON), ``rows``
(the shared row schema). ``android``, ``report`` and ``rows`` are standard library only."""

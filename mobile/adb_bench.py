#!/usr/bin/env python3
"""On-device benchmark harness: ``quantsr mobile bench-android`` as a script (the logic is quantsr/bench/android.py).

    python mobile/adb_bench.py exported/imdn_x4_w4a4.pte --iterations 20 --sizes 64,256 --out android.json
"""
import sys

from quantsr.cli import main

if __name__ == "__main__":
    sys.exit(main(["mobile", "bench-android", *sys.argv[1:]]))

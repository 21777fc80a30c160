"""`quantsr <args>` as a torchrun worker, for tests/test_distributed.py.

QUANTSR_TEST_SAVE_LOG: append "rank path" for every checkpoint a rank writes (the test checks only rank 0 does).
QUANTSR_TEST_KILL_AT: rank 0 SIGKILLs itself right after it wrote the checkpoint of that iteration (a job killed
midway; torchrun then stops the other rank).
"""
import os
import signal
import sys

from quantsr.cli import main
from quantsr.train import trainer as trainer_module

_save = trainer_module.save_atomic
_kill_at = int(os.environ.get("QUANTSR_TEST_KILL_AT", "0"))


def _logged_save(obj, path):
    out = _save(obj, path)
    log = os.environ.get("QUANTSR_TEST_SAVE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.environ.get('RANK', '0')} {path}\n")
    if _kill_at and isinstance(obj, dict) and obj.get("iteration") == _kill_at and str(path).endswith("last.pt"):
        os.kill(os.getpid(), signal.SIGKILL)
    return out


trainer_module.save_atomic = _logged_save

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

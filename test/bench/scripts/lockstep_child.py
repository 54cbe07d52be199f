"""bench/torch/common.py's lockstep loop around a step that only counts its calls, for test/bench/lockstep.test.ts
(standard library only: common.py imports torch only where it measures)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'bench', 'torch'))
import common  # noqa: E402

calls = [0]


def step():
    calls[0] += 1


stats = common.lockstep_loop(step, 4, 2)
print(json.dumps(dict(stats, calls=calls[0])), flush=True)

"""Write the seeded inputs and initial parameters of the workloads, once per run:
DATA_DIR/<W>/inputs.npz and DATA_DIR/<W>/params.npz (arrays named as in the .nn models).

Usage: make_data.py DATA_DIR [W1,W2,W3,W4]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
ids = sys.argv[2].split(",") if len(sys.argv) == 3 else list(common.WORKLOADS)
common.write_data(sys.argv[1], [common.WORKLOADS[i] for i in ids])
print(f"data for {','.join(ids)} in {sys.argv[1]}")

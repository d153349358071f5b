"""The README quickstart as a script: tune an MLP on the embedded digits dataset.

    python examples/quickstart.py                       # = hyperoptax tune --config configs/digits_mlp.py --workdir runs/digits
    python examples/quickstart.py --config.search.n_iterations=2 --workdir runs/quick

Rerun it to resume an interrupted sweep; the results land in the workdir (trials.csv, results.json, plots).
"""

import argparse
import os

from hyperoptax import tune
from hyperoptax.tune import plotting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

parser = argparse.ArgumentParser()
parser.add_argument("--workdir", default=os.path.join("runs", "digits"))
parser.add_argument("--fresh", action="store_true")
args, overrides = parser.parse_known_args()

config = tune.load_config(os.path.join(ROOT, "configs", "digits_mlp.py"), overrides)
results = tune.tune(config, args.workdir, fresh=args.fresh)

best = results["best"]
print(f"\nbest validation accuracy {best['metric']:.4f} with {best['params']}")
print("plots:", ", ".join(plotting.render_plots(results, args.workdir)))

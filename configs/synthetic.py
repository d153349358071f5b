"""Branin through the same driver as the training configs: a quick demo, no training.

    hyperoptax tune --config configs/synthetic.py --workdir runs/branin
"""

from hyperoptax.tune import default_config


def get_config():
    config = default_config()
    config.task = "synthetic"
    config.synthetic.function = "branin"  # minimum 0.397887
    config.search.optimizer = "bayesian"
    config.search.n_parallel = 4
    config.search.n_iterations = 8
    config.search.metric = "value"
    config.search.mode = "min"
    config.search.space = {"x1": "linear(-5, 10)", "x2": "linear(0, 15)"}
    return config

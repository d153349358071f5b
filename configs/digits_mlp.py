"""An MLP on the embedded digits dataset (the README's default): Bayesian search, 4 models per batch.

    hyperoptax tune --config configs/digits_mlp.py --workdir runs/digits
"""

from hyperoptax.tune import default_config


def get_config():
    config = default_config()
    config.dataset.name = "digits"
    config.model.name = "mlp"
    config.model.depth = 1
    config.training.n_steps = 400
    config.training.batch_size = 64
    config.training.optimizer = "adamw"
    config.search.optimizer = "bayesian"
    config.search.n_parallel = 4
    config.search.n_iterations = 6
    config.search.metric = "accuracy"
    config.search.mode = "max"
    config.search.space = {
        "learning_rate": "log(1e-4, 3e-1)",
        "weight_decay": "log(1e-6, 1e-1)",
        "width": "choice(64, 256)",
    }
    return config

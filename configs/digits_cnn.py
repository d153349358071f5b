"""A small CNN on the embedded digits dataset: convolution width and dense size searched with the optimizer.

    hyperoptax tune --config configs/digits_cnn.py --workdir runs/digits_cnn
"""

from hyperoptax.tune import default_config


def get_config():
    config = default_config()
    config.dataset.name = "digits"
    config.model.name = "cnn"
    config.model.depth = 1  # 8x8 images: one conv block (then 4x4) is enough
    config.model.width = 64
    config.model.kernel_size = 3
    config.training.n_steps = 300
    config.training.batch_size = 64
    config.search.optimizer = "bayesian"
    config.search.n_parallel = 4
    config.search.n_iterations = 5
    config.search.space = {
        "learning_rate": "log(1e-4, 1e-1)",
        "weight_decay": "log(1e-6, 1e-2)",
        "features": "choice(8, 16)",
        "label_smoothing": "linear(0, 0.2)",
    }
    return config

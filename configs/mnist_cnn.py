"""A CNN on MNIST. hyperoptax reads TFDS datasets offline: prepare mnist once (array_record format), e.g.

    tfds build mnist --data_dir ~/.cache/hyperoptax/tensorflow_datasets --file_format=array_record

on a machine with internet and TensorFlow, then

    hyperoptax tune --config configs/mnist_cnn.py --workdir runs/mnist

Without it the run stops at once with a message saying exactly this. mnist has no validation split: the
metric is computed on `test` unless you hold out part of train (--config.dataset.train_split='train[:90%]'
--config.dataset.eval_split='train[90%:]').
"""

from hyperoptax.tune import default_config


def get_config():
    config = default_config()
    config.dataset.name = "mnist"
    config.model.name = "cnn"
    config.model.depth = 2  # 28x28 -> 14x14 -> 7x7
    config.model.features = 16
    config.model.width = 128
    config.training.n_steps = 1000
    config.training.batch_size = 128
    config.training.eval_batch_size = 2000
    config.search.optimizer = "bayesian"
    config.search.n_parallel = 4
    config.search.n_iterations = 5
    config.search.space = {
        "learning_rate": "log(1e-4, 1e-2)",
        "weight_decay": "log(1e-6, 1e-2)",
        "label_smoothing": "linear(0, 0.2)",
    }
    return config

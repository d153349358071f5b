"""PopulationTrainer from Python: BayesianSearch proposes 4 learning rates / weight decays at a time, the 4
MLPs train together as one vmapped population, the validation accuracies go back to the search.

    python examples/population_trainer.py
"""

import jax
import optax
from flax import nnx

import hyperoptax as hx
from hyperoptax.integrations import tfds as hdata
from hyperoptax.integrations.flax import PopulationTrainer

train, val = hdata.load_splits("digits")  # embedded: 8x8 images, 10 classes, no download


class MLP(nnx.Module):
    def __init__(self, width, rngs):
        self.hidden = nnx.Linear(64, width, rngs=rngs)
        self.out = nnx.Linear(width, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


def model_fn(hparams, rngs):
    return MLP(hparams["width"], rngs)  # width is static: members are bucketed by it


def optimizer_fn(hparams):  # traced per member: one compiled program for every learning rate
    return optax.inject_hyperparams(optax.adamw)(learning_rate=hparams["learning_rate"],
                                                 weight_decay=hparams["weight_decay"])


space = {
    "learning_rate": hx.LogSpace(1e-4, 1e-1),
    "weight_decay": hx.LogSpace(1e-6, 1e-2),
    "width": hx.DiscreteSpace([64, 128]),
}
trainer = PopulationTrainer(model_fn, optimizer_fn, train=train, eval=val, n_steps=300, batch_size=64,
                            static=("width",), space=space)

n_parallel, n_iterations = 4, 4
state, search = hx.BayesianSearch.init(space, n_max=n_parallel * n_iterations, n_parallel=n_parallel,
                                       maximize=trainer.maximize, **hx.RECOMMENDED)
key = jax.random.key(0)
for i in range(n_iterations):
    k_suggest, k_train, k_update = jax.random.split(jax.random.fold_in(key, i), 3)
    params = search.get_next_params(state, k_suggest)  # leaves (n_parallel,)
    accuracy = trainer(k_train, params)  # (n_parallel,), NaN for a diverged member
    state = search.update_state(state, k_update, accuracy, params)
    configs = hx.decode_params(space, params)
    for j in range(n_parallel):
        print(f"iteration {i}: accuracy {float(accuracy[j]):.4f}  "
              + ", ".join(f"{k}={v[j]:.3g}" for k, v in configs.items()))

print(f"\nbest validation accuracy {float(search.best_result(state)):.4f} with {search.best_params(state)}")
print(f"compiled {trainer.n_compiles} population program(s) for {n_parallel * n_iterations} trials")

"""Population-based training from Python: 8 MLPs train together as one vmapped population; every 25 steps the
worst quarter copies the weights and optimizer state of the best quarter and perturbs its learning rate and
weight decay. The result is a trained model and the hyperparameter schedule that trained it, which replays.

    python examples/pbt.py
"""

import jax
import optax
from flax import nnx

import hyperoptax as hx
from hyperoptax.integrations import tfds as hdata
from hyperoptax.integrations.flax import PopulationTrainer
from hyperoptax.integrations.flax.pbt import PBTPopulation
from hyperoptax.schedulers import PBT

train, val = hdata.load_splits("digits")  # embedded: 8x8 images, 10 classes, no download


class MLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(64, 64, rngs=rngs)
        self.out = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


def optimizer_fn(hparams):  # inject_hyperparams keeps the values in the optimizer state, where PBT changes them
    return optax.inject_hyperparams(optax.adamw)(learning_rate=hparams["learning_rate"],
                                                 weight_decay=hparams["weight_decay"])


space = {"learning_rate": hx.LogSpace(1e-4, 1e-1), "weight_decay": hx.LogSpace(1e-6, 1e-2)}
trainer = PopulationTrainer(lambda hparams, rngs: MLP(rngs), optimizer_fn, train=train, eval=val,
                            n_steps=200, batch_size=64)
initial = [{"learning_rate": lr, "weight_decay": 1e-4} for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 6e-2, 1e-1)]
population = PBTPopulation(trainer, PBT(ready_steps=25, explore="perturb"), space, initial, 200, jax.random.key(0))
population.run(on_interval=lambda it: print(
    f"steps {population.intervals[it.index][1]:3d}: accuracy " + " ".join(f"{m:.3f}" for m in it.results)))

best = population.best()
print(f"\nbest member {best}: accuracy {population.lineage.metrics()[best]:.4f}; its schedule:")
for entry in population.schedule():
    print(f"  steps {entry['steps'][0]:3d}-{entry['steps'][1]:3d} (trained by member {entry['member']}): "
          f"learning_rate={entry['params']['learning_rate']:.3g}, weight_decay={entry['params']['weight_decay']:.3g}")
print(f"replayed alone: accuracy {population.replay()[-1]:.4f}; {population.n_compiles} programs compiled")

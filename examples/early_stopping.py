"""Early stopping, two ways: inside a vmapped population, and around any training loop.

    python examples/early_stopping.py

1. ASHA in the population: 4 MLPs train as one compiled program on the embedded digits; at every rung the
   scheduler stops the unpromising ones and their slots are refilled by a GP over (configuration, steps)
   (a GPFIFOSearcher with resource_attr, MOBSTER-style: what `hyperoptax tune` uses).
2. The same scheduler as an ask/tell object around a plain Python loop (any framework would do).

From the command line the first is `hyperoptax tune --config configs/digits_mlp.py --workdir runs/asha
--config.search.scheduler=asha`.
"""

import math

import jax
import optax
from flax import nnx

import hyperoptax as hx
from hyperoptax.integrations import tfds as hdata
from hyperoptax.integrations.flax import PopulationTrainer
from hyperoptax.integrations.flax.scheduled import ScheduledPopulation
from hyperoptax.schedulers import Scheduler

space = {"learning_rate": hx.LogSpace(1e-4, 1.0), "weight_decay": hx.LogSpace(1e-6, 1e-1)}

# --- 1. in the population -----------------------------------------------------------------------------
train, evaluation = hdata.load_splits("digits")


def model_fn(hparams, rngs):
    return nnx.Sequential(lambda x: x.reshape(x.shape[0], -1), nnx.Linear(64, 64, rngs=rngs), nnx.relu,
                          nnx.Linear(64, 10, rngs=rngs))


def optimizer_fn(hparams):
    return optax.inject_hyperparams(optax.adamw)(learning_rate=hparams["learning_rate"],
                                                 weight_decay=hparams["weight_decay"])


trainer = PopulationTrainer(model_fn, optimizer_fn, train=train, eval=evaluation, n_steps=270, batch_size=64)
refills = hx.GPFIFOSearcher(space, "accuracy", "max", resource_attr="steps", max_resource=270, random_seed=0)
scheduler = Scheduler(refills, max_steps=270, min_steps=30, eta=3, seed=0)        # rungs at 30, 90, 270 steps
population = ScheduledPopulation(trainer, scheduler, space, n_slots=4, budget_steps=8 * 270, key=jax.random.key(0))
population.run()

best = scheduler.best()
statuses = [t["status"] for t in scheduler.trials.values()]
print(f"population: {len(statuses)} trials in the budget of 8 full trainings ({statuses.count('stopped')} stopped "
      f"early); best accuracy {best['curve'][-1][1]:.4f} with {best['config']}; {trainer.n_compiles} programs compiled")


# --- 2. around any loop ----------------------------------------------------------------------------------
def train_until(config, steps):
    """Stands in for your own training loop: a metric that rises with steps, best near lr = 1e-2."""
    quality = math.exp(-(math.log10(config["learning_rate"]) + 2.0) ** 2)
    return quality * (1.0 - math.exp(-steps / 100.0))


scheduler = Scheduler(space, max_steps=270, min_steps=30, eta=3, seed=0)            # random refills
for _ in range(20):
    trial = scheduler.ask()
    while True:
        decision = scheduler.report(trial.trial_id, trial.steps, train_until(trial.config, trial.steps))
        if decision.action != "continue":
            break
        trial = decision.trial
best = scheduler.best()
print(f"ask/tell: best {best['curve'][-1][1]:.4f} at {best['steps']} steps with lr={best['config']['learning_rate']:.3g}")

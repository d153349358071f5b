"""Real hyperparameter-optimization problems for the search benchmark (all minimized, deterministic).

Each problem is a mixed space (log-scale numbers, integers, categories) and an objective that trains
and validates a model on a dataset bundled with scikit-learn, cheap enough for 2 CPU cores (a tenth of
a second to a second per evaluation):

* ``svm``: an RBF/polynomial/linear/sigmoid SVM on breast cancer; ``1 - ROC AUC``, 3-fold CV.
  C and gamma on a log scale, the kernel (4 categories), the polynomial degree (integer).
* ``forest``: a random forest on wine; log loss, 3-fold CV. Trees (integer, log scale), depth
  (integer), leaf size (integer, log scale), the features per split (5 categories), the split
  criterion (3 categories), bootstrap (2).
* ``sgd``: a linear model trained by SGD on digits; error, 3-fold CV. The loss (5 categories), the
  penalty (3), the feature scaling (6), the regularization (log scale), the elastic-net mix, the
  number of epochs (integer, log scale).
* ``nas``: a NAS-Bench-201-like cell on digits: six edges of a four-node cell, each one of 5
  operations (zero, skip, linear, dense+ReLU, dense+tanh), trained the same way for a fixed budget
  (full-batch Adam on 800 images, 120 steps, one seed); error on the other 997. Categorical only (5^6 architectures), so results
  are cached by architecture.

A space is a dict ``name -> spec``: ``("log", lo, hi)``, ``("linear", lo, hi)``, ``("int", lo, hi)``,
``("int_log", lo, hi)`` or ``("cat", choices)``; :func:`hyperoptax_space` and
:func:`optuna_distributions` turn it into either library's space. ``objective(config)`` takes plain
values (strings for categories) and returns a float. The regret reported for these problems is the
value found minus the best value any method found on that problem in the run.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class HPOProblem:
    name: str
    space: dict
    objective: Callable[[dict], float]
    budget: int
    description: str
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def evaluate(self, config: dict) -> float:
        key = tuple(sorted((k, round(v, 12) if isinstance(v, float) else v) for k, v in config.items()))
        if key not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = float(self.objective(config))
            self._cache[key] = value if np.isfinite(value) else float("nan")
        return self._cache[key]


def hyperoptax_space(space: dict) -> dict:
    import hyperoptax as hx

    out = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log":
            out[name] = hx.LogSpace(spec[1], spec[2])
        elif kind == "linear":
            out[name] = hx.LinearSpace(spec[1], spec[2])
        elif kind == "int":
            out[name] = hx.QLinearSpace(spec[1], spec[2])
        elif kind == "int_log":
            out[name] = hx.QLogSpace(spec[1], spec[2])
        elif kind == "cat":
            out[name] = hx.DiscreteSpace(list(spec[1]))
        else:
            raise ValueError(spec)
    return out


def optuna_distributions(space: dict) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log":
            out[name] = FloatDistribution(spec[1], spec[2], log=True)
        elif kind == "linear":
            out[name] = FloatDistribution(spec[1], spec[2])
        elif kind == "int":
            out[name] = IntDistribution(spec[1], spec[2])
        elif kind == "int_log":
            out[name] = IntDistribution(spec[1], spec[2], log=True)
        elif kind == "cat":
            out[name] = CategoricalDistribution(list(spec[1]))
    return out


def random_config(space: dict, rng: np.random.Generator) -> dict:
    out = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "log":
            out[name] = float(np.exp(rng.uniform(np.log(spec[1]), np.log(spec[2]))))
        elif kind == "linear":
            out[name] = float(rng.uniform(spec[1], spec[2]))
        elif kind == "int":
            out[name] = int(rng.integers(spec[1], spec[2] + 1))
        elif kind == "int_log":
            out[name] = int(np.clip(np.round(np.exp(rng.uniform(np.log(spec[1] - 0.5), np.log(spec[2] + 0.5)))),
                                    spec[1], spec[2]))
        elif kind == "cat":
            out[name] = spec[1][int(rng.integers(len(spec[1])))]
    return out


# --- SVM on breast cancer --------------------------------------------------------------------------


@functools.cache
def _breast_cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


def svm_objective(c: dict) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = _breast_cancer()
    model = make_pipeline(StandardScaler(), SVC(C=c["C"], gamma=c["gamma"], kernel=c["kernel"], degree=c["degree"],
                                                max_iter=20000))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    return 1.0 - cross_val_score(model, X, y, cv=cv, scoring="roc_auc").mean()


# --- Random forest on wine ---------------------------------------------------------------------------


@functools.cache
def _wine():
    from sklearn.datasets import load_wine

    return load_wine(return_X_y=True)


_MAX_FEATURES = {"sqrt": "sqrt", "log2": "log2", "quarter": 0.25, "half": 0.5, "all": None}


def forest_objective(c: dict) -> float:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = _wine()
    model = RandomForestClassifier(
        n_estimators=c["n_estimators"], max_depth=c["max_depth"], min_samples_leaf=c["min_samples_leaf"],
        max_features=_MAX_FEATURES[c["max_features"]], criterion=c["criterion"], bootstrap=c["bootstrap"] == "yes",
        random_state=0, n_jobs=1,
    )
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    return -cross_val_score(model, X, y, cv=cv, scoring="neg_log_loss").mean()


# --- SGD linear model on digits ------------------------------------------------------------------------


@functools.cache
def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float64), y


def _scaler(name):
    from sklearn import preprocessing as pp

    return {
        "none": pp.FunctionTransformer(),
        "standard": pp.StandardScaler(),
        "minmax": pp.MinMaxScaler(),
        "robust": pp.RobustScaler(),
        "maxabs": pp.MaxAbsScaler(),
        "quantile": pp.QuantileTransformer(n_quantiles=100, random_state=0),
    }[name]


def sgd_objective(c: dict) -> float:
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    X, y = _digits()
    model = make_pipeline(_scaler(c["scaler"]), SGDClassifier(
        loss=c["loss"], penalty=c["penalty"], alpha=c["alpha"], l1_ratio=c["l1_ratio"], max_iter=c["epochs"],
        tol=None, random_state=0,
    ))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    return 1.0 - cross_val_score(model, X, y, cv=cv).mean()


# --- A NAS-Bench-201-like cell on digits ---------------------------------------------------------------

NAS_OPS = ("zero", "skip", "linear", "relu", "tanh")
NAS_EDGES = ("e01", "e02", "e12", "e03", "e13", "e23")  # edge i -> j of a 4-node cell


@functools.cache
def _nas_program():
    import jax
    import jax.numpy as jnp
    import optax

    X, y = _digits()
    X = X / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train, val = order[:800], order[800:]
    Xt, yt, Xv, yv = (jnp.asarray(a, jnp.float32) if a.dtype.kind == "f" else jnp.asarray(a)
                      for a in (X[train], y[train], X[val], y[val]))
    width, n_steps = 16, 120

    def init(key):
        k = jax.random.split(key, 3)
        scale = lambda fan_in: 1.0 / np.sqrt(fan_in)
        return {
            "inp": jax.random.normal(k[0], (64, width)) * scale(64),
            "edges": jax.random.normal(k[1], (6, 3, width, width)) * scale(width),  # linear, relu, tanh weights
            "out": jax.random.normal(k[2], (width, 10)) * scale(width),
        }

    def forward(params, ops, x):
        nodes = [jax.nn.relu(x @ params["inp"])]
        e = 0
        for j in range(1, 4):
            total = 0.0
            for i in range(j):
                h, W = nodes[i], params["edges"][e]
                # One branch runs: the program is compiled once for every architecture.
                total = total + jax.lax.switch(ops[e], [
                    lambda h, W: jnp.zeros_like(h), lambda h, W: h, lambda h, W: h @ W[0],
                    lambda h, W: jax.nn.relu(h @ W[1]), lambda h, W: jnp.tanh(h @ W[2]),
                ], h, W)
                e += 1
            nodes.append(total)
        return nodes[-1] @ params["out"]

    def loss(params, ops, x, labels):
        return optax.softmax_cross_entropy_with_integer_labels(forward(params, ops, x), labels).mean()

    @jax.jit
    def train_and_validate(ops):
        params = init(jax.random.key(0))
        opt = optax.adam(1e-2)

        def step(carry, _):
            params, state = carry
            grads = jax.grad(loss)(params, ops, Xt, yt)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=n_steps)
        logits = forward(params, ops, Xv)
        error = 1.0 - jnp.mean(jnp.argmax(logits, -1) == yv)
        return jnp.where(jnp.all(jnp.isfinite(logits)), error, 1.0)

    return train_and_validate


def nas_objective(c: dict) -> float:
    import jax.numpy as jnp

    ops = jnp.asarray([NAS_OPS.index(c[e]) for e in NAS_EDGES], jnp.int32)
    return float(_nas_program()(ops))


PROBLEMS = {
    p.name: p
    for p in [
        HPOProblem(
            "svm",
            {"C": ("log", 1e-3, 1e3), "gamma": ("log", 1e-5, 1e1), "kernel": ("cat", ("linear", "poly", "rbf", "sigmoid")),
             "degree": ("int", 2, 5)},
            svm_objective, 30, "SVC on breast cancer, 1 - ROC AUC (3-fold CV)",
        ),
        HPOProblem(
            "forest",
            {"n_estimators": ("int_log", 4, 32), "max_depth": ("int", 1, 12), "min_samples_leaf": ("int_log", 1, 32),
             "max_features": ("cat", tuple(_MAX_FEATURES)), "criterion": ("cat", ("gini", "entropy", "log_loss")),
             "bootstrap": ("cat", ("yes", "no"))},
            forest_objective, 30, "random forest on wine, log loss (3-fold CV)",
        ),
        HPOProblem(
            "sgd",
            {"loss": ("cat", ("hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron")),
             "penalty": ("cat", ("l2", "l1", "elasticnet")),
             "scaler": ("cat", ("none", "standard", "minmax", "robust", "maxabs", "quantile")),
             "alpha": ("log", 1e-7, 1e-1), "l1_ratio": ("linear", 0.0, 1.0), "epochs": ("int_log", 2, 20)},
            sgd_objective, 30, "SGD linear classifier on digits, error (3-fold CV)",
        ),
        HPOProblem(
            "nas",
            {e: ("cat", NAS_OPS) for e in NAS_EDGES},
            nas_objective, 40, "NAS-Bench-201-like cell (6 edges x 5 operations) on digits, validation error",
        ),
    ]
}


if __name__ == "__main__":
    import time

    rng = np.random.default_rng(0)
    for p in PROBLEMS.values():
        values, times = [], []
        for _ in range(5):
            c = random_config(p.space, rng)
            t = time.perf_counter()
            values.append(p.evaluate(c))
            times.append(time.perf_counter() - t)
        print(f"{p.name}: values {np.round(values, 4)}, seconds {np.round(times, 2)}")

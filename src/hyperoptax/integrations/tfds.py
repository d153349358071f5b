"""Datasets through TensorFlow Datasets, read offline from array_record files.

``tfds.data_source`` gives random access to datasets stored in the
``array_record`` format without TensorFlow, so a sweep can read whole splits as
numpy arrays. Nothing here downloads: datasets other than the embedded one must
already be prepared in the data directory (the error says how).

The embedded dataset ``"digits"`` is scikit-learn's copy of the UCI handwritten
digits (1797 grey 8x8 images, 10 classes). It needs no network, so examples and
tests run anywhere; it is built once, in seconds, by :class:`HyperoptaxDigits`.

    >>> from hyperoptax.integrations import tfds as hdata
    >>> train, val = hdata.load_splits("digits")
    >>> train["image"].shape, train["label"].dtype
    ((1258, 8, 8, 1), dtype('int32'))
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from hyperoptax.errors import ConfigurationError, DatasetNotFoundError, closest

__all__ = [
    "DEFAULT_DATA_DIR",
    "DIGITS_ALIAS",
    "DIGITS_NAME",
    "HyperoptaxDigits",
    "digits_split_indices",
    "load",
    "load_splits",
    "prepare_digits",
]


def _default_data_dir() -> str:
    env = os.environ.get("HYPEROPTAX_DATA_DIR")
    if env:
        return os.path.expanduser(env)
    return os.path.expanduser("~/.cache/hyperoptax/tensorflow_datasets")


DEFAULT_DATA_DIR: str = _default_data_dir()

DIGITS_ALIAS = "digits"
DIGITS_NAME = "hyperoptax_digits"

# Fractions of the 1797 digits that go to train / validation; test gets the rest.
_DIGITS_FRACTIONS = (0.70, 0.15)
_DIGITS_SEED = 0
_DIGITS_MAX_PIXEL = 16.0  # sklearn's digits count set pixels in 4x4 blocks: 0..16


def digits_split_indices() -> dict[str, np.ndarray]:
    """Rows of ``sklearn.datasets.load_digits()`` in each split, in stored order.

    A fixed-seed permutation, so the split is the same on every machine:
    ``load("digits", "train")["image"][k]`` is row ``digits_split_indices()["train"][k]``.
    """
    n = 1797
    order = np.random.default_rng(_DIGITS_SEED).permutation(n)
    n_train = round(_DIGITS_FRACTIONS[0] * n)
    n_validation = round(_DIGITS_FRACTIONS[1] * n)
    return {
        "train": order[:n_train],
        "validation": order[n_train : n_train + n_validation],
        "test": order[n_train + n_validation :],
    }


class HyperoptaxDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits as a TFDS dataset (``hyperoptax_digits``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 70/15/15 split with seed 0."}
    # tfds 4.9.x locates a builder's source through the `importlib_resources`
    # backport, which it does not declare as a dependency; naming the file
    # here skips that lookup (there are no checksums or metadata files to find).
    code_path = epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        # `dataset_info_from_configs` would look for metadata files next to this
        # module; the description lives here instead.
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "UCI Optical Recognition of Handwritten Digits as shipped by "
                "scikit-learn: 8x8 grey images scaled to [0, 1] (pixel / 16)."
            ),
            features=tfds.features.FeaturesDict(
                {
                    # float32 because the source range is 0..16, not 0..255:
                    # stored already in [0, 1], pixel / 16 is exact.
                    "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.float32),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            # Keep generator order so stored example k is split row k.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: sklearn ships the data.
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / _DIGITS_MAX_PIXEL).astype(np.float32)[..., None]
        labels = digits.target.astype(np.int64)
        return {
            split: self._generate_examples(images[rows], labels[rows])
            for split, rows in digits_split_indices().items()
        }

    def _generate_examples(self, images, labels):
        # Integer keys are the position in the split (order kept, see _info).
        for position, (image, label) in enumerate(zip(images, labels)):
            yield position, {"image": image, "label": int(label)}


def _resolve_data_dir(data_dir) -> str:
    return os.fspath(data_dir) if data_dir is not None else DEFAULT_DATA_DIR


def prepare_digits(data_dir=None) -> str:
    """Build the embedded digits dataset in ``data_dir`` unless it is there.

    Idempotent: an already prepared dataset is left untouched. Returns the
    dataset name to pass to :func:`load` (``"hyperoptax_digits"``).
    """
    builder = HyperoptaxDigits(
        data_dir=_resolve_data_dir(data_dir), file_format="array_record"
    )
    builder.download_and_prepare()  # a no-op when the version is on disk
    return DIGITS_NAME


def _base_name(name: str) -> str:
    """'mnist:3.0.1' -> 'mnist'; 'movielens/25m-ratings' -> 'movielens'."""
    return name.partition(":")[0].split("/")[0]


def _is_on_disk(name: str, data_dir: str) -> bool:
    return any(Path(data_dir, _base_name(name)).glob("**/dataset_info.json"))


def _not_found(name: str, data_dir: str) -> DatasetNotFoundError:
    where = Path(data_dir, _base_name(name))
    if _is_on_disk(name, data_dir):
        problem = (
            f"TFDS dataset {name!r} exists in {str(where)!r} but not in the "
            "array_record format, which random access (tfds.data_source) needs."
        )
    else:
        problem = f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r}."
    return DatasetNotFoundError(
        f"{problem} hyperoptax reads datasets offline and never downloads them. "
        "Prepare it once on a machine with internet (most TFDS builders need "
        "`pip install tensorflow tensorflow-datasets` there to build; reading "
        "here does not), either with\n"
        f"    tfds build {_base_name(name)} --data_dir={data_dir} "
        "--file_format=array_record\n"
        "or in Python with\n"
        f"    tfds.builder({name!r}, data_dir={data_dir!r})"
        '.download_and_prepare(file_format="array_record")\n'
        "then copy that data directory here (or pass data_dir= / set "
        "HYPEROPTAX_DATA_DIR to where it is). "
        f"The embedded {DIGITS_ALIAS!r} dataset needs no download."
    )


def _data_source(name: str, split: str, data_dir: str):
    """``tfds.data_source`` with its failures turned into hyperoptax errors."""
    try:
        # download=False: tfds would otherwise try to fetch and build here.
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except (NotImplementedError, FileNotFoundError, tfds.core.DatasetNotFoundError) as err:
        # A missing dataset surfaces as NotImplementedError ("TFRECORD is not
        # supported") because tfds assumes the default format for absent data.
        raise _not_found(name, data_dir) from err
    except ValueError as err:
        available = _available_splits(name, data_dir)
        requested = {part.split("[")[0].strip() for part in split.split("+")}
        if available and not requested <= set(available):
            raise ConfigurationError(
                f"split={split!r} is not a split of dataset {name!r}. Available "
                f"splits: {', '.join(repr(s) for s in available)}."
                f"{closest(split, available)}"
            ) from err
        raise


def _available_splits(name: str, data_dir: str) -> list[str]:
    try:
        return sorted(tfds.builder(name, data_dir=data_dir).info.splits.keys())
    except Exception:  # noqa: BLE001 - only used to improve an error message
        return []


def _feature_keys(info) -> tuple[str, str]:
    """The (image, label) feature names: supervised keys, else 'image'/'label'."""
    keys = info.supervised_keys
    is_pair = isinstance(keys, tuple) and len(keys) == 2
    if not (is_pair and all(isinstance(k, str) for k in keys)):
        keys = ("image", "label")
    missing = [k for k in keys if k not in info.features]
    if missing:
        raise ConfigurationError(
            f"Dataset {info.name!r} has features {sorted(info.features.keys())}, "
            f"not an image/label pair (looked for {list(keys)}). load() reads "
            "image classification datasets such as 'mnist' or 'digits'."
        )
    return keys


def _to_float_images(images: np.ndarray) -> np.ndarray:
    """uint8-style integer pixels -> [0, 1]; float pixels are taken as already scaled."""
    if np.issubdtype(images.dtype, np.integer):
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def load(name: str, split: str, data_dir=None) -> dict[str, np.ndarray]:
    """Read a whole split of a prepared TFDS image-classification dataset.

    Args:
      name: a TFDS name (``"mnist"``, ``"mnist:3.0.1"``) prepared in the
        array_record format in ``data_dir``, or ``"digits"`` for the embedded
        dataset, which is prepared on first use.
      split: a split name or TFDS slice (``"train"``, ``"train[:80%]"``).
      data_dir: defaults to :data:`DEFAULT_DATA_DIR`.

    Returns:
      ``{image_key: float32 (N, H, W, C) in [0, 1], label_key: int32 (N,)}``,
      keyed by the dataset's own image/label feature names (``"image"`` and
      ``"label"`` for mnist and digits). Integer images are divided by 255.

    Raises:
      DatasetNotFoundError: the dataset is not prepared in ``data_dir``.
      ConfigurationError: ``split`` is not one of the dataset's splits.
    """
    data_dir = _resolve_data_dir(data_dir)
    if name == DIGITS_ALIAS:
        name = DIGITS_NAME
    if _base_name(name) == DIGITS_NAME:
        prepare_digits(data_dir)
    source = _data_source(name, split, data_dir)
    image_key, label_key = _feature_keys(source.dataset_info)
    # One example at a time: `__getitems__` is ~1.7x faster on real files but
    # broken under tfds.testing.mock_data in tfds 4.9.x.
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(ex[image_key]) for ex in examples])
    labels = np.array([ex[label_key] for ex in examples], dtype=np.int32)
    if images.ndim == 3:  # (N, H, W) grey images -> one channel
        images = images[..., None]
    return {image_key: _to_float_images(images), label_key: labels}


def load_splits(
    name: str,
    data_dir=None,
    train_split: str = "train",
    eval_split: str = "validation",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(train, eval)`` arrays of a dataset, see :func:`load`.

    Datasets without a ``validation`` split (mnist has only ``train`` and
    ``test``) are evaluated on ``test`` instead when ``eval_split`` is left at
    its default ``"validation"``. Hold out part of ``train`` yourself
    (``train_split="train[:90%]", eval_split="train[90%:]"``) if test data must
    stay unseen during the search.
    """
    train = load(name, train_split, data_dir)
    try:
        evaluation = load(name, eval_split, data_dir)
    except ConfigurationError:
        if eval_split != "validation":
            raise
        evaluation = load(name, "test", data_dir)
    return train, evaluation

"""TFDS integration: real array_record files, read without TensorFlow."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

from etils import epath  # noqa: E402

from hyperoptax.errors import ConfigurationError, DatasetNotFoundError  # noqa: E402
from hyperoptax.integrations import tfds as hdata  # noqa: E402


class HyperoptaxTestTiny(tfds.core.GeneratorBasedBuilder):
    """An mnist-shaped dataset (uint8 images, only train/test) small enough to build here."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = epath.Path(__file__)  # see HyperoptaxDigits.code_path

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(4, 4, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(6), "test": self._generate_examples(3)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"image": np.full((4, 4, 1), 51 * (i % 6), np.uint8), "label": i % 3}


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    assert hdata.prepare_digits(data_dir) == hdata.DIGITS_NAME
    return data_dir


@pytest.fixture(scope="module")
def digits(digits_dir):
    splits = ("train", "validation", "test")
    return {split: hdata.load("digits", split, digits_dir) for split in splits}


def _record_files(data_dir):
    return sorted((data_dir / hdata.DIGITS_NAME).glob("*/*.array_record-*"))


def test_prepare_writes_array_record_files_without_tensorflow(digits_dir, digits):
    files = _record_files(digits_dir)
    assert {f.name.split(".")[0] for f in files} == {
        f"{hdata.DIGITS_NAME}-{split}" for split in ("train", "validation", "test")
    }
    assert all(f.stat().st_size > 0 for f in files)
    assert "tensorflow" not in sys.modules


def test_digits_splits_partition_the_dataset(digits):
    sizes = {split: len(arrays["label"]) for split, arrays in digits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes == {"train": 1258, "validation": 270, "test": 269}
    for arrays in digits.values():
        assert arrays["image"].dtype == np.float32 and arrays["image"].shape[1:] == (8, 8, 1)
        assert arrays["label"].dtype == np.int32
        assert 0.0 <= arrays["image"].min() and arrays["image"].max() <= 1.0
        assert set(np.unique(arrays["label"])) == set(range(10))


def test_digits_match_sklearn_rows(digits):
    sk = sklearn_datasets.load_digits()
    indices = hdata.digits_split_indices()
    assert np.array_equal(np.sort(np.concatenate(list(indices.values()))), np.arange(1797))
    for split, arrays in digits.items():
        rows = indices[split]
        np.testing.assert_array_equal(arrays["image"][..., 0], sk.images[rows] / 16.0)
        np.testing.assert_array_equal(arrays["label"], sk.target[rows])
    # The split is pinned, not just self-consistent: a few rows by hand.
    first_row = indices["train"][0]
    np.testing.assert_array_equal(digits["train"]["image"][0, ..., 0], sk.images[first_row] / 16)
    np.testing.assert_array_equal(hdata.digits_split_indices()["test"], indices["test"])
    assert indices["train"][:3].tolist() == np.random.default_rng(0).permutation(1797)[:3].tolist()


def test_prepare_twice_does_not_rebuild(digits_dir):
    before = {f: f.stat().st_mtime_ns for f in _record_files(digits_dir)}
    assert hdata.prepare_digits(digits_dir) == hdata.DIGITS_NAME
    hdata.load("digits", "test", digits_dir)
    assert {f: f.stat().st_mtime_ns for f in _record_files(digits_dir)} == before


def test_load_splits_uses_validation(digits_dir):
    train, evaluation = hdata.load_splits("digits", digits_dir)
    assert len(train["label"]) == 1258 and len(evaluation["label"]) == 270


def test_slices_are_passed_to_tfds(digits_dir, digits):
    head = hdata.load("digits", "train[:10]", digits_dir)
    np.testing.assert_array_equal(head["image"], digits["train"]["image"][:10])


def test_integer_images_scaled_and_eval_falls_back_to_test(tmp_path):
    HyperoptaxTestTiny(data_dir=tmp_path, file_format="array_record").download_and_prepare()
    train, evaluation = hdata.load_splits("hyperoptax_test_tiny", tmp_path)
    assert len(train["label"]) == 6 and len(evaluation["label"]) == 3  # test, no validation
    np.testing.assert_allclose(train["image"][:, 0, 0, 0], np.arange(6) * 51 / 255.0)
    with pytest.raises(ConfigurationError, match="validation"):
        hdata.load_splits("hyperoptax_test_tiny", tmp_path, eval_split="validation[:50%]")


@pytest.mark.parametrize(
    "policy", [tfds.testing.MockPolicy.USE_CODE, tfds.testing.MockPolicy.AUTO]
)
def test_mnist_under_mock_data(policy, tmp_path):
    with tfds.testing.mock_data(num_examples=12, policy=policy):
        train = hdata.load("mnist", "train", tmp_path)
    assert train["image"].shape == (12, 28, 28, 1) and train["image"].dtype == np.float32
    assert 0.0 <= train["image"].min() and train["image"].max() <= 1.0
    assert train["label"].dtype == np.int32 and train["label"].max() < 10


def test_mock_data_use_files_reads_prepared_metadata(digits_dir):
    with tfds.testing.mock_data(
        num_examples=5, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=digits_dir
    ):
        val = hdata.load("digits", "validation", digits_dir)
        with pytest.raises(ConfigurationError, match="Available splits"):
            hdata.load("digits", "valid", digits_dir)
    assert val["image"].shape == (5, 8, 8, 1)


def test_missing_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        hdata.load("mnist", "train", tmp_path)
    message = str(info.value)
    assert "'mnist'" in message and str(tmp_path) in message
    assert "download_and_prepare" in message and "tfds build mnist" in message
    assert "array_record" in message
    assert isinstance(info.value, FileNotFoundError)


def test_unknown_name_is_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no_such_dataset"):
        hdata.load("no_such_dataset", "train", tmp_path)


def test_unknown_split_lists_available_splits(digits_dir):
    with pytest.raises(ConfigurationError) as info:
        hdata.load("digits", "valid", digits_dir)
    message = str(info.value)
    assert "'valid'" in message and "'train', 'validation'" in message
    assert "Did you mean 'validation'?" in message


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HYPEROPTAX_DATA_DIR", str(tmp_path / "env"))
    assert hdata._default_data_dir() == str(tmp_path / "env")
    monkeypatch.delenv("HYPEROPTAX_DATA_DIR")
    expected = os.path.expanduser("~/.cache/hyperoptax/tensorflow_datasets")
    assert hdata._default_data_dir() == expected
    # data_dir=None means DEFAULT_DATA_DIR.
    monkeypatch.setattr(hdata, "DEFAULT_DATA_DIR", str(tmp_path / "default"))
    assert len(hdata.load("digits", "test")["label"]) == 269
    assert _record_files(tmp_path / "default")

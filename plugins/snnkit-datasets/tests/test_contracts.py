"""The dataset contract of snnkit.testing, for the dataset that ships inside the package."""

from snnkit.testing import DatasetContract
from snnkit_datasets.espeak_digits import EspeakDigits


class TestEspeakDigitsContract(DatasetContract):
    dataset_cls = EspeakDigits

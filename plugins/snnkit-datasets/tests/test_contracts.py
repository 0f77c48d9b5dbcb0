"""The dataset contract of snnkit_core.testing, for the dataset that ships inside the package."""

from snnkit_core.testing import DatasetContract
from snnkit_datasets.espeak_digits import EspeakDigits


class TestEspeakDigitsContract(DatasetContract):
    dataset_cls = EspeakDigits

import pytest
import torch

from synthmed.errors import ConfigError
from synthmed.utils.device import resolve_device


def test_auto_and_none_pick_the_gpu_only_when_there_is_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # named, not checked for presence


def test_a_bad_name_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="'gpu0'"):
        resolve_device("gpu0")

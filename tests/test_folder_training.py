"""A folder set trains with every recipe, at other input sizes, with presets adapted to its channels
and classes (the path the Train and Ablations pages launch)."""
import pytest
from PIL import Image

from nin_explorer.learn.config import RECIPES, TrainConfig
from nin_explorer.learn.data import load_dataset
from nin_explorer.learn.train import train
from nin_explorer.net.presets import get_preset
from nin_explorer.runs.plan import adapt_spec, adaptation_text


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for label, colour in (("cat", (220, 30, 30)), ("dog", (30, 30, 220)), ("owl", (30, 200, 30))):
        (root / "pets" / label).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (30 + i, 36), colour).save(root / "pets" / label / f"{i}.png")
    return root, load_dataset("folder:pets", root=root), load_dataset("folder:pets", root=root, train=False)


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("preset, input_size", [("tiny", 40), ("d2l", 67)])
def test_every_recipe_trains_an_adapted_preset_on_a_folder(pets, recipe, preset, input_size):
    _, train_data, test_data = pets
    spec = get_preset(preset)
    adapted = adapt_spec(spec, 3, 3)
    assert (adapted.in_channels, adapted.num_classes) == (3, 3)
    assert "3 channel(s) and 3 classes" in adaptation_text(spec, adapted, "folder:pets")
    cfg = TrainConfig.from_dict({"dataset": "folder:pets", "recipe": recipe, "epochs": 1, "batch_size": 8,
                                 "input_size": input_size, "device": "cpu", "precision": "fp32", "seed": 0})
    result = train(adapted, cfg, train_data, test_data, lambda event: None, lambda: False)
    assert result.status == "completed" and 0 <= result.final_test_acc <= 1

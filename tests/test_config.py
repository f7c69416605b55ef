"""Config layering: defaults -> preset -> recipe -> explicit flags -> key=value overrides."""
import pytest

from avfewshot.config import PRESETS, RunConfig, dump_yaml, from_dict, parse_overrides, resolve_config, to_dict
from avfewshot.errors import UserError


def test_defaults_then_preset():
    cfg = resolve_config({"data.root": "/data"})
    assert cfg.preset == "paper" and cfg.model.image_norm == "clip" and cfg.train.selection == "val"
    off = resolve_config({"preset": "dgsct-official", "data.root": "/data"})
    assert off.model.image_norm == "imagenet" and off.train.lr == 3e-4 and off.train.milestones == [10, 20, 30]
    assert off.method_args["fusion"] == "sum" and off.data.split_protocol == "dgsct"


def test_recipe_then_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("preset: dgsct-official\ntrain:\n  lr: 0.01\n  epochs: 3\nmethod_args:\n  n_ctx: 8\ndata:\n  root: /x\n")
    cfg = resolve_config({}, recipe=recipe, overrides=parse_overrides(["train.lr=0.5", "method.n_ctx=4"]))
    assert cfg.preset == "dgsct-official"
    assert cfg.train.lr == 0.5  # override beats recipe
    assert cfg.train.epochs == 3  # recipe beats preset/default
    assert cfg.train.optimizer == "adam"  # from the preset named in the recipe
    assert cfg.method_args["n_ctx"] == "4"  # typed later by the method's own dataclass
    assert cfg.data.root == "/x"


def test_demo_uses_tiny_encoders():
    cfg = resolve_config({})
    assert cfg.demo and cfg.model.clip_arch == "tiny"
    assert (cfg.model.clip_weights, cfg.model.clap_weights) == ("demo", "demo")  # the pretrained demo towers
    random = resolve_config({}, overrides={"model.clip_weights": "none", "model.clap_weights": "none"})
    assert (random.model.clip_weights, random.model.clap_weights) == ("none", "none")  # still an option
    real = resolve_config({"data.root": "/data"})
    assert not real.demo and real.model.clip_arch == "ViT-B-32"


def test_exponent_notation_is_a_number(tmp_path):
    # YAML 1.1 reads 3e-3 (no dot) as a string; a learning rate written that way must still be a number
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lr: 5e-4\n  weight_decay: 1E-2\n")
    cfg = resolve_config({"data.root": "/d"}, recipe=recipe, overrides=parse_overrides(["train.lr=3e-3"]))
    assert cfg.train.lr == 3e-3 and isinstance(cfg.train.lr, float)
    assert cfg.train.weight_decay == 1e-2
    assert resolve_config({"data.root": "/d"}, recipe=recipe).train.lr == 5e-4


@pytest.mark.parametrize(
    "override, message",
    [("train.lr=abc", "expected a number"), ("train.epochs=1.5", "expected an integer"), ("train.nope=1", "unknown config key"),
     ("data.cache=maybe", "true/false")],
)
def test_bad_overrides_are_clear(override, message):
    with pytest.raises(UserError, match=message):
        resolve_config({"data.root": "/d"}, overrides=parse_overrides([override]))


def test_override_syntax_and_unknown_preset(tmp_path):
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["train.lr"])
    with pytest.raises(UserError, match="valid presets: dgsct-official, paper"):
        resolve_config({"preset": "fast"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="bad.yaml is not valid YAML"):
        resolve_config({}, recipe=bad)


def test_round_trip_through_yaml():
    import yaml

    cfg = resolve_config({"preset": "dgsct-official", "data.root": "/d", "shots": 4}, overrides={"method.alpha": 0.3})
    again = from_dict(yaml.safe_load(dump_yaml(cfg)))
    assert to_dict(again) == to_dict(cfg)
    assert isinstance(again, RunConfig) and again.run_dir() == cfg.run_dir()


def test_presets_only_name_real_keys():
    for name, layer in PRESETS.items():
        resolve_config({"preset": name, "data.root": "/d"})  # every key must resolve
        assert layer


def test_demo_recipe_layer(tmp_path, monkeypatch):
    runners = tmp_path / "runners"
    (runners / "demo").mkdir(parents=True)
    (runners / "demo" / "linear_probe.yaml").write_text("train:\n  lr: 0.1\n  epochs: 7\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("method: linear_probe\ntrain:\n  lr: 0.002\n  batch_size: 3\n")
    monkeypatch.setenv("AVFEWSHOT_RUNNERS", str(runners))
    demo = resolve_config({}, recipe=recipe, overrides={"train.epochs": 2})
    assert (demo.train.lr, demo.train.batch_size, demo.train.epochs) == (0.1, 3, 2)  # demo recipe > recipe; CLI wins
    real = resolve_config({"data.root": "/d"}, recipe=recipe)
    assert (real.train.lr, real.train.epochs) == (0.002, 20)  # no demo layer on real data

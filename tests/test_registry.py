import pytest

from avfewshot.registry import Registry


def test_unknown_name_lists_valid_ones():
    reg = Registry("method")
    reg.add("coop", 1)
    reg.add("maple", 2)
    with pytest.raises(KeyError, match="unknown method 'copo'; valid methods: coop, maple"):
        reg.get("copo")
    assert reg.get("maple") == 2 and reg.names() == ["coop", "maple"]


def test_duplicate_is_an_error():
    reg = Registry("task")

    @reg.register("x")
    class A:
        pass

    with pytest.raises(KeyError, match="already registered"):
        reg.add("x", object())


def test_real_registries():
    from avfewshot.errors import UserError
    from avfewshot.methods import discover_methods
    from avfewshot.tasks import discover_tasks, get_task

    assert {"ave", "ave_cls", "llp_cls"} <= set(discover_tasks().names())
    with pytest.raises(UserError, match="valid tasks: ave, ave_cls, llp_cls"):
        get_task("llp")
    assert {"zeroshot", "linear_probe", "coop", "kgcoop", "cocoop", "clip_adapter", "maple", "dgsct"} <= set(discover_methods().names())


def test_a_new_method_file_registers_itself(tmp_path, monkeypatch):
    """Discovery imports every module of the methods package: no hand-kept list to edit."""
    import avfewshot.methods as methods_pkg
    from avfewshot.methods import base

    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "toy_method.py").write_text(
        "from avfewshot.methods.base import METHODS\n"
        "from avfewshot.methods.linear_probe import LinearProbe\n"
        "@METHODS.register('toy_method_for_test')\n"
        "class Toy(LinearProbe):\n"
        "    name = 'toy_method_for_test'\n")
    monkeypatch.setattr(methods_pkg, "__path__", [*methods_pkg.__path__, str(folder)])
    monkeypatch.setattr(base, "_DISCOVERED", False)
    try:
        assert base.get_method_class("toy_method_for_test").name == "toy_method_for_test"
    finally:
        base.METHODS._items.pop("toy_method_for_test", None)
        import sys

        sys.modules.pop("avfewshot.methods.toy_method", None)

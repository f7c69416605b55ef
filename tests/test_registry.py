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
    from avfewshot.tasks import TASKS

    assert {"ave", "ave_cls", "llp_cls"} <= set(TASKS.names())
    with pytest.raises(KeyError, match="valid tasks: ave, ave_cls, llp_cls"):
        TASKS.get("llp")

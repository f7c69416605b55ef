"""viz attention / tsne draw real figures from a DG-SCT method on demo clips."""
import numpy as np

from avfewshot.api import make_config
from avfewshot.engine.data import build_run_data
from avfewshot.engine.trainer import get_backbone
from avfewshot.experiments import viz
from avfewshot.methods import build_method
from avfewshot.tasks import get_task


def _method_and_clips():
    cfg = make_config(task="llp_cls", method="dgsct", shots=0)
    task = get_task("llp_cls")
    backbone = get_backbone(cfg)
    data = build_run_data(cfg, task, backbone, need_train=False)
    data.test.records = data.test.records[:8]
    method = build_method("dgsct", backbone, task, task.class_list(data.class_names), cfg.method_args).eval()
    return method, data.test, data.class_names


def test_tsne_and_attention_figures(tmp_path):
    method, dataset, names = _method_and_clips()
    img, aud, labels = viz.features(method, dataset, adapted=True)
    plain_img, _, _ = viz.features(method, dataset, adapted=False)
    assert img.shape[0] == aud.shape[0] == labels.shape[0] == 8
    np.testing.assert_allclose(img, plain_img, atol=1e-5)  # gates closed: adapters change nothing yet
    fig = viz.tsne_figure(method, dataset, names)
    assert len(fig.axes) == 4 and "with DG-SCT" in fig.axes[1].get_title()
    out = viz.save(fig, tmp_path / "tsne.png")
    assert out.stat().st_size > 10_000
    fig = viz.attention_figure(method, dataset, [0, 1])
    titles = [ax.get_title() for ax in fig.axes]
    assert "audio-guided spatial attention" in titles and "visual-guided time-frequency attention" in titles
    assert viz.save(fig, tmp_path / "att.png").stat().st_size > 10_000
    assert all(not u.record_maps for units in method.encoders.units().values() for u in units)

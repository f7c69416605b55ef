"""viz attention / tsne draw real figures from a DG-SCT method on demo clips."""
import numpy as np

from avfewshot.engine.build import build_run, resolve_run_config
from avfewshot.experiments import viz


def _method_and_clips():
    run = build_run(resolve_run_config(task="llp_cls", method="dgsct", shots=0), data="eval")
    run.data.test.records = run.data.test.records[:8]
    return run.method.eval(), run.data.test, run.data.class_names


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

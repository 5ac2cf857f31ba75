"""`archdsl stats --plot`: the cost bars draw the layers that carry cost (convolutions and
fully connected layers in AlexNet and VGG-16), each under its name; `--plot-layers all`
draws every row. The figure is read from matplotlib itself, caught before it is saved."""
from __future__ import annotations

import pytest

from archdsl import compile_file
from archdsl.backends.report_stats import report_stats
from archdsl.cli import main

from conftest import ROOT

pytest.importorskip("matplotlib")

PANELS = 3  # memory, parameters, MACs


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures plot_costs makes, kept open instead of saved."""
    from archdsl.backends import plot_costs
    caught = []

    def keep(figure, fmt, dpi, exact=False):
        caught.append(figure)
        return b"<svg/>"

    monkeypatch.setattr(plot_costs, "save", keep)
    yield caught
    from matplotlib import pyplot as plt
    for figure in caught:
        plt.close(figure)


def _columns(figure) -> list[list]:
    """The figure's axes, network by network (each a column of PANELS panels)."""
    axes = figure.axes
    count = len(axes) // PANELS
    return [[axes[row * count + column] for row in range(PANELS)] for column in range(count)]


def graph_of(spec: str):
    return compile_file(ROOT / "specs" / f"{spec}.arch").graph


def _bars(ax) -> int:
    return len(ax.patches)


def _ticks(ax) -> list[str]:
    return [label.get_text() for label in ax.get_xticklabels()]


def _conv_and_linear(report) -> list[str]:
    return [row.name for row in report.rows if row.op.split()[0] in ("conv", "linear")]


def test_by_default_alexnet_and_vgg16_draw_their_conv_and_fc_layers(figures, tmp_path):
    out = tmp_path / "costs.svg"
    assert main(["stats", str(ROOT / "specs" / "alexnet.arch"),
                 str(ROOT / "specs" / "vgg16.arch"), "--plot", str(out)]) == 0
    reports = [report_stats(graph_of(name)) for name in ("alexnet", "vgg16")]
    expected = [_conv_and_linear(report) for report in reports]
    assert [len(names) for names in expected] == [5 + 3, 13 + 3]
    (figure,) = figures
    for panels, names in zip(_columns(figure), expected):
        assert [_bars(ax) for ax in panels] == [len(names)] * PANELS
        assert _ticks(panels[-1]) == names  # the bottom panel names each bar
        assert set(_ticks(panels[0])) == {""}


def test_plot_layers_all_draws_every_row(figures, tmp_path):
    out = tmp_path / "costs.svg"
    assert main(["stats", str(ROOT / "specs" / "alexnet.arch"),
                 str(ROOT / "specs" / "vgg16.arch"), "--plot", str(out),
                 "--plot-layers", "all"]) == 0
    reports = [report_stats(graph_of(name)) for name in ("alexnet", "vgg16")]
    (figure,) = figures
    for panels, report in zip(_columns(figure), reports):
        names = [row.name for row in report.rows if not row.train_only]
        assert len(names) > len(_conv_and_linear(report))
        assert _bars(panels[0]) == len(names) and _ticks(panels[-1]) == names


def test_rolled_up_rows_are_named_by_their_group(figures):
    from archdsl.backends.plot_costs import plot_costs
    plot_costs([report_stats(graph_of("vgg16"), 1)])
    (figure,) = figures
    assert _ticks(_columns(figure)[0][-1]) == ["features", "classifier"]


@pytest.mark.parametrize("column", ["single", "double"])
def test_tick_labels_are_legible_in_a_column(figures, column):
    from archdsl.backends.plot_costs import plot_costs
    plot_costs([report_stats(graph_of(name)) for name in ("alexnet", "vgg16")], column=column)
    (figure,) = figures
    for panels in _columns(figure):
        labels = panels[-1].get_xticklabels()
        assert labels and all(label.get_fontsize() >= 6 for label in labels)
        assert all(label.get_rotation() == 90 for label in labels)


def test_plot_layers_takes_only_cost_or_all(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["stats", str(ROOT / "specs" / "alexnet.arch"), "--plot",
              str(tmp_path / "c.svg"), "--plot-layers", "some"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
